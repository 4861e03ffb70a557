from app.tenants.views import bp

__all__ = ["bp"]
