from app.api import sites  # noqa: F401 - registers the site-tree routes on the blueprint
from app.api.views import bp

__all__ = ["bp"]
