"""Tasks: sms (filled in by the sms work)."""
