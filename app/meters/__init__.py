from app.meters.views import bp

__all__ = ["bp"]
