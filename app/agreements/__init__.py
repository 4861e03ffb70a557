from app.agreements.views import bp

__all__ = ["bp"]
