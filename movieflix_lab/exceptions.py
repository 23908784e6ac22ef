"""The base of every error MovieFlix Lab reports to a person."""

from __future__ import annotations

__all__ = ["ConfigError", "MovieflixError"]


class MovieflixError(Exception):
    """An error with a one-line message that says what is wrong and what to do.

    The CLI prints ``str(error)`` alone (no traceback unless ``--debug``), so the message
    must stand on its own.
    """


class ConfigError(MovieflixError):
    """A setting is missing or invalid."""
