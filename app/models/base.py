from __future__ import annotations

from peewee import Model

from app.clock import utcnow
from app.db import db

__all__ = ["BaseModel", "utcnow"]


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False
