"""Tasks: operations (filled in by the operations work)."""
