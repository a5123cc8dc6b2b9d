"""structlog set-up: JSON lines with request, tenant and job ids bound from context.

Nothing here ever receives a header or a key: handlers bind ids, never credentials. As a last
guard (the solver surface takes its key in the query, `?api=KEY`), `redact_secrets` masks an
`api=` query value and anything shaped like an API key in every line, stdlib records included.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from gateway.config import LogSettings

_SECRETS = re.compile(r"((?:[?&]|\b)api=)[^&\s\"']+|ocrg_[A-Za-z0-9_-]{8,}")
REDACTED = "[redacted]"


def _mask(match: re.Match[str]) -> str:
    return (match.group(1) or "") + REDACTED


def redact(text: str) -> str:
    """`text` with `api=` query values and API keys masked."""
    return _SECRETS.sub(_mask, text)


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """structlog processor: mask secrets in every string of the event (and its exception)."""
    return {key: redact(value) if isinstance(value, str) else value for key, value in event.items()}


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def configure_logging(settings: LogSettings) -> None:
    level = logging.getLevelName(settings.level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if settings.json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactingFilter())
