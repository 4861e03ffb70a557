"""The huey instance.  SQLite (its own file under the state directory) by default; Redis when
``MD_REDIS_URL`` / ``redis_url`` is set.  Run the consumer with ``huey_consumer workers.huey``.

Schedules: huey keeps UTC (``utc=True``).  Work that belongs to a property's day (water,
rent, apportionment, bills, the meters' clock sync) runs hourly and does, per property, what
is due by that property's local time.  The few box-wide nightly jobs (backup, ledger check)
use ``local_crontab``: a crontab read on the box's local clock (configuration ``TIMEZONE``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab

from app import clock
from app.config import load_config


def local_crontab(
    minute: str = "*", hour: str = "*", day: str = "*", month: str = "*", day_of_week: str = "*"
) -> Callable[[dt.datetime], bool]:
    """A huey crontab matched against the box's local wall clock instead of UTC.

    huey's scheduler hands naive UTC times (``utc=True``); each is turned into the local time
    of the configured zone before the crontab is matched, so ``hour="2"`` is 02:xx local
    whatever the OS time zone is."""
    match = crontab(minute, hour, day, month, day_of_week)

    def validate(timestamp: dt.datetime) -> bool:
        return match(clock.local_naive(timestamp))

    return validate


def make_huey(config: dict[str, Any] | None = None) -> Huey:
    config = config or load_config()
    clock.set_default_zone(config.get("TIMEZONE"))
    immediate = bool(config.get("HUEY_IMMEDIATE"))
    if config.get("REDIS_URL"):
        return RedisHuey("meterdesk", url=config["REDIS_URL"], immediate=immediate, utc=True)
    state_dir = config["STATE_DIR"]
    os.makedirs(state_dir, exist_ok=True)
    return SqliteHuey(
        "meterdesk", filename=os.path.join(state_dir, "huey.db"), immediate=immediate, utc=True
    )


huey = make_huey()


@huey.on_startup()
def _bind_database() -> None:
    """Consumer start-up: bind the database from the same configuration as the web app."""
    from app.db import db, init_db

    if db.obj is None:
        init_db(load_config()["DATABASE_URL"])
