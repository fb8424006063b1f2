"""Secrets and personal data never reach a log line: bearer tokens, anything shaped like a
JWT, password values, and the query, variables and extensions of GraphQL GET requests (the
access log prints query strings, and variables may carry a password)."""

from __future__ import annotations

import logging
import re

_RULES = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+"), "[jwt]"),
    (re.compile(r"""(?i)(["']?password["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,&}]+)"""),
     r'\1"[redacted]"'),
    (re.compile(r"(?i)([?&](?:query|variables|extensions)=)[^&\s\"]*"), r"\1[redacted]"),
]


def scrub(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = ScrubFilter()
LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "chirp")


def install() -> None:
    """On every handler of the root, uvicorn's and ours (a filter on a handler sees the
    records every logger propagates to it)."""
    for name in LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
