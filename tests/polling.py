"""Waiting for a condition in tests: poll, never sleep as synchronisation."""

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

#: Poll interval: short enough that a test never waits long past its condition.
POLL_INTERVAL_S = 0.02


def wait_for(
    what: str, probe: Callable[[], T | None], *, timeout: float, interval: float = POLL_INTERVAL_S
) -> T:
    """Poll `probe` every `interval` seconds until it returns a truthy value (returned);
    fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
