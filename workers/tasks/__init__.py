from workers.tasks import backup, batch, collect, control, ledger, operations, readings, sms, sweep  # noqa: F401
