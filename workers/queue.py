"""The huey instance.  SQLite (its own file under the state directory) by default; Redis when
``MD_REDIS_URL`` / ``redis_url`` is set.  Run the consumer with ``huey_consumer workers.huey``."""

from __future__ import annotations

import os
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey

from app.config import load_config


def make_huey(config: dict[str, Any] | None = None) -> Huey:
    config = config or load_config()
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
