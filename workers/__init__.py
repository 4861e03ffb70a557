"""Background work: ``workers.huey`` is the consumer target; tasks live in workers.tasks."""

from workers.queue import huey
from workers import tasks  # noqa: F401,E402  (registers the tasks)

__all__ = ["huey"]
