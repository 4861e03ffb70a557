"""Scheduled operations (filled in by the scheduled-operations work).  ``OPERATIONS_MODELS``
lists its models."""

OPERATIONS_MODELS: list = []
