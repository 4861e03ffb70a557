from workers.tasks import backup, batch, collect, control, ledger, operations, readings, sms  # noqa: F401
