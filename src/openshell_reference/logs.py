"""One line per event on stderr: ``level=info event=name key=value ...``.

Values that hold spaces, quotes or ``=`` are double-quoted. Anything that looks
like PEM private key material is replaced before it can reach a line.
``--log-level debug`` shows the libraries' records too; urllib3's request lines
appear only at ``trace``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import IO

# The supervisor runs in sandboxes as one self-contained file, so the line
# format is defined there and shared with the gateway from there.
from .supervisor import format_event, redact

__all__ = [
    "LOG_LEVELS",
    "LogfmtFormatter",
    "configure_logging",
    "event",
    "format_event",
    "redact",
]

LOGGER_NAME = "openshell_reference"
TRACE = 5
LOG_LEVELS: Mapping[str, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_LEVEL_NAMES = {
    TRACE: "trace",
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}


class LogfmtFormatter(logging.Formatter):
    """Format our events and any library's log records as logfmt lines."""

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVEL_NAMES.get(record.levelno, record.levelname.lower())
        fields = getattr(record, "fields", None)
        if fields is not None:
            return format_event(level, record.getMessage(), fields)
        library_fields: dict[str, object] = {
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            library_fields["error"] = f"{type(error).__name__}: {error}"
        return format_event(level, "library_log", library_fields)


def configure_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    """Send every log record of this process to ``stream`` as logfmt lines."""
    logging.addLevelName(TRACE, "TRACE")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(LOG_LEVELS[level])
    quiet = logging.NOTSET if LOG_LEVELS[level] <= TRACE else logging.INFO
    logging.getLogger("urllib3").setLevel(quiet)


def event(level: str, name: str, /, **fields: object) -> None:
    """Log one event with its fields at ``level`` (trace, debug, info, ...)."""
    logging.getLogger(LOGGER_NAME).log(
        LOG_LEVELS[level], name, extra={"fields": fields}
    )
