"""Scans for the Heketi key (plain, base64, or inside a JWT) and for crashes.

Logs are read incrementally (each check reads what was appended since the last
one); Events and every object but Secrets are read whole from the store.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Final

from testbed.chaos.invariants import Violation
from testbed.kube.server import KubeTestServer

#: Any JSON Web Token: base64url JSON header "{...", payload "{...", signature.
JWT: Final = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")
#: Object kinds searched for the key (Secrets hold it by design).
SEARCHED: Final = (
    "persistentvolumeclaims",
    "persistentvolumes",
    "storageclasses",
    "events",
    "leases",
)
#: A log line that tells of an exception nobody handled: structlog's `exception` field
#: (log.exception, e.g. "reconcile crashed"), or a bare Python traceback.
_CRASH: Final = re.compile(r'"exception":|^Traceback \(most recent call last\)')


class Scanner:
    def __init__(self, *, key: str, logs: list[Path]) -> None:
        self._needles = (key, base64.b64encode(key.encode()).decode())
        self._logs = logs
        self._read: dict[Path, tuple[int, int]] = {}  # bytes, lines read so far

    def leaks_in(self, where: str, text: str) -> list[Violation]:
        found = [
            Violation("no_secret_leak", where, "the Heketi key" if i == 0 else "the key, base64")
            for i, needle in enumerate(self._needles)
            if needle in text
        ]
        if JWT.search(text):
            found.append(Violation("no_secret_leak", where, "a JWT"))
        return found

    def scan_objects(self, kube: KubeTestServer) -> list[Violation]:
        found = []
        for plural in SEARCHED:
            for obj in kube.list(plural):
                meta = obj.get("metadata") or {}
                where = f"{plural}/{meta.get('namespace', '')}/{meta.get('name')}"
                found.extend(self.leaks_in(where, json.dumps(obj)))
        return found

    def scan_logs(self) -> list[Violation]:
        """Leaks and crashes in what the logs gained since the last scan."""
        found = []
        for path in self._logs:
            for number, line in self._new_lines(path):
                where = f"{path.name}:{number}"
                found.extend(self.leaks_in(where, line))
                if _CRASH.search(line):
                    found.append(Violation("no_crash", where, _summary(line)))
        return found

    def _new_lines(self, path: Path) -> list[tuple[int, str]]:
        if not path.exists():
            return []
        start, seen = self._read.get(path, (0, 0))
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        lines = complete.decode(errors="replace").splitlines()
        self._read[path] = (start + len(complete), seen + len(lines))
        return list(enumerate(lines, start=seen + 1))


def _summary(line: str) -> str:
    """The event and the last line of the exception, not the whole traceback."""
    try:
        record = json.loads(line)
    except ValueError:
        return line[:200]
    exception = str(record.get("exception", "")).strip().splitlines()
    return f"{record.get('event')}: {exception[-1] if exception else ''}"[:300]
