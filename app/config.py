"""Configuration: defaults -> /etc/meterdesk/config.toml -> MD_* environment -> test config.

`load_config` is a pure function of its inputs (the file path and the environment are
arguments) so that tests can exercise every layer.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_FILE = "/etc/meterdesk/config.toml"

DEFAULTS: dict[str, Any] = {
    # Where the box keeps its state: SQLite database, huey queue, secret key, backups.
    "STATE_DIR": "var",
    # peewee database URL; empty means sqlite:///<STATE_DIR>/meterdesk.db
    "DATABASE_URL": "",
    # Redis URL for the task queue; empty means SQLite huey under STATE_DIR.
    "REDIS_URL": "",
    "TIMEZONE": "Asia/Shanghai",
    "LANGUAGE": "zh_CN",
    "LISTEN": "127.0.0.1:8000",
    # Session lifetime for staff logins, in minutes.
    "SESSION_MINUTES": 480,
    "HUEY_IMMEDIATE": False,
    # A reading waiting for review (held jump, register fall) longer than this many days
    # raises a staff alert.
    "HELD_ALERT_DAYS": 3,
}

# Keys whose environment values are integers / booleans.
_INT_KEYS = {"SESSION_MINUTES", "HELD_ALERT_DAYS"}
_BOOL_KEYS = {"HUEY_IMMEDIATE"}


def _coerce(key: str, value: str) -> Any:
    if key in _INT_KEYS:
        return int(value)
    if key in _BOOL_KEYS:
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return value


def load_config(
    test_config: Mapping[str, Any] | None = None,
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the merged configuration.

    Layers, later wins: DEFAULTS, the TOML file (keys are case-insensitive, e.g.
    ``database_url = "mysql://..."``), ``MD_<KEY>`` environment variables, ``test_config``.
    """
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = dict(DEFAULTS)
    path = config_file or environ.get("MD_CONFIG_FILE") or DEFAULT_CONFIG_FILE
    if path and Path(path).is_file():
        with open(path, "rb") as fh:
            for key, value in tomllib.load(fh).items():
                config[key.upper()] = value
    for key, value in environ.items():
        if key.startswith("MD_") and key != "MD_CONFIG_FILE":
            name = key[3:]
            config[name] = _coerce(name, value)
    if test_config:
        config.update(test_config)
    state_dir = Path(config["STATE_DIR"])
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{state_dir / 'meterdesk.db'}"
    return config


def private_value(path: str | os.PathLike[str], make: Callable[[], str]) -> str:
    """The value kept in ``path``; on first use ``make()`` it and store it readable by the
    owner only (0600)."""
    p = Path(path)
    if p.exists():
        return p.read_text().strip()
    p.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def ensure_secret_key(state_dir: str | os.PathLike[str]) -> str:
    """Read the secret key from the state directory, creating it (mode 0600) on first start."""
    return private_value(Path(state_dir) / "secret_key", lambda: secrets.token_hex(32))
