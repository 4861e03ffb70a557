from __future__ import annotations

import datetime as dt

from peewee import Model

from app.db import db


def utcnow() -> dt.datetime:
    """Naive UTC, whole seconds: the same value on SQLite and MySQL."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False
