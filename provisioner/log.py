"""structlog, configured once: JSON lines in clusters, console output on a tty."""

import logging
import sys
from typing import Any

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    """A logger on the current sys.stderr, looked up per logger (follows a swapped stream)."""
    return structlog.PrintLogger(file=sys.stderr)


def configure(*, level: str = "info", json: bool | None = None) -> None:
    """Set up structlog for the process. `json=None` picks console on a tty."""
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    use_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger bound with the component name."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(component=name)
    return logger
