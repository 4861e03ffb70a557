from app.sites.views import bp

__all__ = ["bp"]
