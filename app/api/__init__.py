from app.api import devices, sites, tenants  # noqa: F401 - register their routes on the blueprint
from app.api.views import bp

__all__ = ["bp"]
