from workers.tasks import control, ledger, readings  # noqa: F401
