"""The overview page (项目总览): the console home."""

from app.overview.views import bp

__all__ = ["bp"]
