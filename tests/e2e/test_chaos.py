"""The short fixed-seed chaos soak: every kind of fault strikes once, nothing breaks.

The whole system runs as in `make chaos` (test servers in the soak's process,
two leader-elected controllers and the node plugin as child processes) for one
minute of faults; then every invariant must hold and the system must settle.
"""

import json
import subprocess
import sys
from pathlib import Path

from testbed.chaos.invariants import DESCRIPTIONS
from testbed.chaos.plan import BY_NAME

SEED = 17
#: Start, one minute of faults, settling, shutdown: generous for a loaded 2-core machine.
RUN_TIMEOUT_S = 600


def test_a_one_minute_soak_with_every_kind_of_fault_ends_with_no_violation(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "testbed.chaos", "--minutes", "1", "--seed", str(SEED),
         "--quiet", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    outcome = json.loads(output.read_text())
    assert outcome["seed"] == SEED
    assert outcome["violations_total"] == 0
    assert "result: PASS (0 violations)" in done.stdout
    never = [name for name, fault in outcome["faults"].items() if fault["injected"] == 0]
    assert never == [], f"never injected: {never}"
    assert set(outcome["faults"]) == set(BY_NAME)
    unchecked = [name for name, inv in outcome["invariants"].items() if inv["checks"] == 0]
    assert unchecked == [] and set(outcome["invariants"]) == set(DESCRIPTIONS)
    claims = outcome["claims"]
    assert claims["created"] > 0 and claims["deleted"] > 0 and claims["expanded"] > 0
    assert outcome["settle_s"] is not None
    assert sum(outcome["restarts"].values()) > 0
