"""Schema migrations: peewee's runner over the numbered files in ``migrations/``."""

from __future__ import annotations

from pathlib import Path

from playhouse.migrations import Runner
from playhouse.schema_diff import diff_models

from app.db import db

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def runner() -> Runner:
    return Runner(db.obj, directory=str(MIGRATIONS_DIR), table_name="schema_migration")


def upgrade() -> list[str]:
    """Apply pending migrations; returns their names."""
    return runner().up()


def pending() -> list[str]:
    return [m.name for m in runner().status() if not m.applied and m.path]


def status() -> list[tuple[str, str]]:
    return [(m.name, str(m.applied) if m.applied else "pending") for m in runner().status()]


def drift() -> str:
    """Differences between the models and the migrated database ('' when they agree)."""
    from app.models import MODELS

    diff = diff_models(db.obj, MODELS)
    return str(diff) if diff else ""
