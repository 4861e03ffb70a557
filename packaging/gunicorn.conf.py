"""gunicorn settings for the meterdesk web console.

A few threaded workers: SQLite allows one writer at a time, so more processes would only
wait on each other.  Override with GUNICORN_CMD_ARGS or MD_LISTEN.
"""

import os

bind = os.environ.get("MD_LISTEN", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("MD_WEB_WORKERS", "2"))
threads = int(os.environ.get("MD_WEB_THREADS", "4"))
timeout = 60
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = "127.0.0.1"
