"""Logging: structlog events, JSON lines when not on a terminal, console otherwise.

Secrets are kept out twice: they are never passed to a log call, and every event goes
through :func:`redact_secrets`, which replaces any registered secret value that slipped
into a field (a token echoed in a vendor error body, say) with ``***``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRETS: set[str] = set()
_MIN_SECRET_LENGTH = 6


def register_secret(value: str) -> None:
    """Never let ``value`` reach a log line."""
    if len(value) >= _MIN_SECRET_LENGTH:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if not _SECRETS:
        return event_dict
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = redact(value)
        elif not isinstance(value, int | float | bool | type(None)):
            event_dict[key] = redact(str(value))
    return event_dict


def configure_logging(
    *, level: str = "info", format: str = "auto", stream: TextIO | None = None
) -> None:
    """structlog events, and the standard library's records (APScheduler's, botocore's...)
    rendered by the same processors, so the stream has one format only."""
    out = stream or sys.stderr
    as_json = format == "json" or (format == "auto" and not out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    threshold = logging.getLevelNamesMapping()[level.upper()]
    stamped: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendered: list[structlog.typing.Processor] = [
        structlog.processors.format_exc_info,
        redact_secrets,
        renderer,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *stamped, *rendered],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_logger_name,
                *stamped,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendered],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    # The libraries' INFO records ("Found credentials in environment variables", "Running
    # job ...") say nothing the daemon's own events do not; level "debug" shows them all.
    root.setLevel(threshold if threshold <= logging.DEBUG else max(threshold, logging.WARNING))


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
