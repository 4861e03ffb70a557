"""gunicorn settings for the meterdesk web console (the meterdesk-web unit and `make run`).

A few threaded workers: SQLite allows one writer at a time, so more processes would only wait
on each other; a MariaDB site gets a few more.  The listen address is ``listen`` from the
configuration (``MD_LISTEN`` overrides it).  Override the rest with GUNICORN_CMD_ARGS,
``MD_WEB_WORKERS`` and ``MD_WEB_THREADS``.

The master process holds the ``web`` run lock (app.ops.runlock) while it lives, so that
``meterdesk backup restore`` and ``meterdesk db copy`` can tell that the console is running.
"""

import os

from app.config import load_config

_config = load_config()
_sqlite = str(_config["DATABASE_URL"]).startswith("sqlite")

wsgi_app = "app:create_app()"
bind = str(_config.get("LISTEN") or "127.0.0.1:8000")
worker_class = "gthread"
workers = int(
    os.environ.get("MD_WEB_WORKERS") or _config.get("WEB_WORKERS") or (2 if _sqlite else 4)
)
threads = int(os.environ.get("MD_WEB_THREADS") or _config.get("WEB_THREADS") or 4)
timeout = 60
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = "127.0.0.1"
# No control socket (gunicorn 25+ would create ~/.gunicorn/gunicorn.ctl); signals suffice.
control_socket_disable = True
# Journal lines carry their own time stamps.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'


def on_starting(server):
    """Take the web run lock before the first worker starts (refuse a second console)."""
    from app.ops import runlock

    try:
        server._meterdesk_lock = runlock.acquire(_config["STATE_DIR"], "web")
    except runlock.AlreadyRunning as exc:
        raise SystemExit(f"{exc}; stop it first") from None


def on_exit(server):
    lock = getattr(server, "_meterdesk_lock", None)
    if lock is not None:
        lock.release()
