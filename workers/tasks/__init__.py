from workers.tasks import backup, collect, control, ledger, operations, readings, sms  # noqa: F401
