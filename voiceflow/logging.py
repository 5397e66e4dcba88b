"""Structured logs: session and turn ids on every event, readable on a terminal, JSON for machines.

Secrets never reach a log line: every event passes through the redactor of the agent whose task
logged it (:mod:`voiceflow.redaction`), after exception formatting.

Ids travel in context variables (bound by the session and by each reply task), so a provider's
own ``structlog.get_logger()`` calls carry them too, without being passed anything.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

from voiceflow.redaction import redact_log_event

LogFormat = Literal["console", "json"]


def configure_logging(fmt: LogFormat = "console", level: str = "info") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact_log_event,  # last before rendering: covers messages, fields and tracebacks
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # sys.stderr looked up at each log call, not once here: whoever replaced it meanwhile
        # (a test runner capturing output, an embedding application) gets the lines, and a
        # stream closed since is never written to.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)
