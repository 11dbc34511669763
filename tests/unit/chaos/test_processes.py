"""Supervised child processes and delayed actions of the soak."""

import sys
import time
from pathlib import Path

from testbed.chaos.faults import Timers
from testbed.chaos.processes import RESTART_DELAY_S, Child


def _child(tmp_path: Path, code: str) -> Child:
    return Child(role="probe", argv=[sys.executable, "-c", code], log_path=tmp_path / "c.log")


def test_a_child_that_exits_is_started_again_with_its_exit_code_as_the_reason(
    tmp_path: Path,
) -> None:
    child = _child(tmp_path, "raise SystemExit(3)")
    child.start()
    assert child.process is not None
    child.process.wait(timeout=60)
    now = time.monotonic()
    assert child.supervise(now) is None  # seen exiting; restarted after the delay
    assert child.supervise(now + RESTART_DELAY_S) == "exited 3"
    assert (child.starts, child.exits) == (2, [3])
    child.stop()


def test_a_killed_child_is_started_again_only_after_its_delay(tmp_path: Path) -> None:
    child = _child(tmp_path, "import time; time.sleep(600)")
    child.start()
    assert child.kill(restart_after_s=30)
    assert not child.running() and child.exits == [-9]
    assert child.supervise(time.monotonic()) is None
    assert child.supervise(time.monotonic() + 31) == "killed"
    assert child.running()
    child.stop()
    assert not child.running()


def test_a_child_that_is_not_running_cannot_be_killed(tmp_path: Path) -> None:
    assert not _child(tmp_path, "pass").kill(restart_after_s=1)


def test_timers_run_what_is_due_in_order_and_everything_at_the_end() -> None:
    timers, ran = Timers(), []
    timers.after(0, "first", lambda: ran.append("first"))
    timers.after(600, "late", lambda: ran.append("late"))
    timers.after(0, "second", lambda: ran.append("second"))
    timers.run_due()
    assert ran == ["first", "second"] and timers.pending() == ["late"]
    timers.run_due(everything=True)
    assert ran == ["first", "second", "late"] and timers.pending() == []
