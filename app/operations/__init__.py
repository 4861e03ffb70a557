"""Console pages for scheduled operations: job history, apportionment, monthly bills."""

from app.operations.views import bp

__all__ = ["bp"]
