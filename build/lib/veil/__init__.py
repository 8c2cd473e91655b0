"""Veil: cloak face photos against face-recognition scrapers."""

__version__ = "0.1.0"
