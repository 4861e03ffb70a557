"""People, the audit log and property settings in the console."""

from app.admin.views import bp

__all__ = ["bp"]
