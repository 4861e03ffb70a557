"""Operating the appliance: what the install/upgrade scripts, the systemd units and the
``meterdesk`` operations commands call.

- ``runlock``: which meterdesk processes run on this box (flock files under the state dir).
- ``backup``: online SQLite backups (mysqldump on MariaDB), retention and verified restore.
- ``check``: ``meterdesk check``, the configuration problems a site can have.
- ``dbcopy``: ``meterdesk db copy``, moving a site between databases without losing a row.
- ``health``: the ``/healthz`` report and waiting for it after a restart (upgrades).
- ``worker``: the task consumer as the ``meterdesk-worker`` unit runs it.

The click commands in ``app.cli`` are thin wrappers around these functions.
"""
