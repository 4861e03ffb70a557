from app.readings.views import bp, review_count

__all__ = ["bp", "review_count"]
