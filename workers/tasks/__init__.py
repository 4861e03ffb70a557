from workers.tasks import collect, control, ledger, readings  # noqa: F401
