"""Nightly online backup of the database (app.ops.backup) with retention."""

from __future__ import annotations

import logging

from app.config import load_config
from app.ops.backup import BackupError, backup_now
from workers.queue import huey, local_crontab

log = logging.getLogger("meterdesk.backup")


@huey.periodic_task(local_crontab(minute="37", hour="2"))  # 02:37 on the box's local clock
@huey.lock_task("backup")
def backup_task() -> str | None:
    """Back up the database into BACKUP_DIR and keep the BACKUP_KEEP newest copies.

    Returns the new file's path, or None when no backup could be made (the reason is logged:
    a MariaDB site without mysqldump, a full disk...).  Not retried: tomorrow's run is the
    retry, and ``meterdesk check`` reports a backup older than two days.
    """
    try:
        result = backup_now(load_config())
    except BackupError as exc:
        log.error("nightly backup failed: %s", exc)
        return None
    log.info(
        "backup %s (%d bytes, %.1f s); %d old backup(s) removed",
        result.path,
        result.size,
        result.seconds,
        len(result.removed),
    )
    return str(result.path)
