"""Tasks: backup (filled in by the backup work)."""
