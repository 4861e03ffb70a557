"""Background work: ``workers.huey`` is the consumer target; tasks live in workers.tasks."""

from workers import tasks  # noqa: F401,E402  (registers the tasks)
from workers.queue import huey

__all__ = ["huey"]
