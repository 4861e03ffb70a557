from app.gateways.views import bp

__all__ = ["bp"]
