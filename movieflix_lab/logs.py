"""Where the kit's log lines go: one handler on stderr for the kit, Quix and librdkafka.

Without it, a warning from a logger with no handler reaches stderr through Python's "last
resort" as a bare line, and librdkafka's own lines (``GETPID [thrd:...]: Failed to acquire
idempotence PID ... retrying``) landed in the middle of ``make demo``'s progress output.
:func:`configure_logging` (every CLI command calls it) gives the ``movieflix_lab`` and
``quixstreams`` loggers one handler, and lowers librdkafka's reports of a condition it is
already retrying (a coordinator loading, a leader moving) to DEBUG: the client recovers on
its own, and a lasting failure still surfaces as an error of the call that needed it.
"""

from __future__ import annotations

import logging
import re

from rich.console import Console
from rich.logging import RichHandler

__all__ = ["LIBRDKAFKA_LOGGER", "TransientKafka", "configure_logging"]

#: The logger every client of :mod:`movieflix_lab.kafka.client` hands librdkafka.
LIBRDKAFKA_LOGGER = "movieflix_lab.kafka.librdkafka"
#: The loggers that carry librdkafka's lines (Quix hands its clients its own).
_KAFKA_LOGGERS = (LIBRDKAFKA_LOGGER, "quixstreams")
#: librdkafka reporting what it retries by itself.
TRANSIENT = re.compile(
    r"retrying|Coordinator load in progress|Not coordinator|Coordinator not available"
    r"|Not leader for partition|Leader not available|NOT_LEADER|COORDINATOR_LOAD",
    re.IGNORECASE,
)


class TransientKafka(logging.Filter):
    """Lowers librdkafka's lines about conditions it retries by itself to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and TRANSIENT.search(record.getMessage()):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_HANDLER: logging.Handler | None = None


def configure_logging(*, debug: bool = False, console: Console | None = None) -> None:
    """Warnings and errors of the kit, Quix and librdkafka on stderr, one line each
    (with ``debug``: everything from INFO up, and the retried conditions too). Idempotent."""
    global _HANDLER
    level = logging.DEBUG if debug else logging.WARNING
    if _HANDLER is None:
        _HANDLER = RichHandler(
            console=console or Console(stderr=True), show_time=False, show_path=False,
            markup=False, rich_tracebacks=False,
        )  # fmt: skip
        _HANDLER.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    elif console is not None and isinstance(_HANDLER, RichHandler):
        _HANDLER.console = console
    _HANDLER.setLevel(level)
    for name in ("movieflix_lab", "quixstreams"):
        logger = logging.getLogger(name)
        if _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)
        logger.setLevel(logging.INFO if debug else logging.WARNING)
    for name in _KAFKA_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TransientKafka) for f in logger.filters):
            logger.addFilter(TransientKafka())
    if debug:
        logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(logging.DEBUG)
