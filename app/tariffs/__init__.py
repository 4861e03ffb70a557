"""Tariffs in the console: list, editor (flat, time of use, tiered), versions, bulk assignment."""

from app.tariffs.views import bp

__all__ = ["bp"]
