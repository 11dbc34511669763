"""Where the controller's CPU goes: py-spy's raw (collapsed) stacks by activity and kind.

`python -m bench.run --profile DIR` writes one file of collapsed stacks per phase
(`DIR/burst.txt`, ...); `python -m bench.profile DIR/burst.txt` prints two tables:

- *activity* — what the thread was doing, from the outermost frame we recognise:
  a worker's Kubernetes writes, its Heketi requests, the rest of a reconcile; the
  watch streams; the Event sender; leader election;
- *kind* — what the code was, from the innermost frame we recognise: HTTP
  (http.client, urllib3, requests, header parsing, sockets), JSON, JWT signing,
  logging, locks and queues, building objects, the rest.

Every sample counts once in each table, so each sums to 100 %.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

#: Activity rules, tried from the outermost frame inwards: the first match wins.
ACTIVITIES: tuple[tuple[str, str], ...] = (
    ("EventRecorder._run", "Event sender"),
    ("LeaderElector.", "leader election"),
    ("WatchStream.__iter__", "watch streams: reading and decoding"),
    ("Informer._apply", "watch streams: cache and handlers"),
    ("Informer.", "watch streams: lists"),
    ("HeketiClient.", "worker: Heketi requests"),
    ("KubeApi.", "worker: Kubernetes requests"),
    ("Controller._work", "worker: the rest of a reconcile"),
)
#: Kind rules, tried from the innermost frame outwards: the first match wins.
KINDS: tuple[tuple[str, str], ...] = (
    ("json/", "JSON"),
    ("orjson", "JSON"),
    ("jwt/", "JWT signing"),
    ("heketi/auth.py", "JWT signing"),
    ("structlog/", "logging"),
    ("logging/", "logging"),
    ("provisioner/log.py", "logging"),
    ("threading.py", "locks, queues, threads"),
    ("queue.py", "locks, queues, threads"),
    ("http/client.py", "HTTP"),
    ("email/", "HTTP"),
    ("urllib3/", "HTTP"),
    ("requests/", "HTTP"),
    ("socket.py", "HTTP"),
    ("kubernetes/client/", "HTTP"),
    ("urllib/parse.py", "HTTP"),
    ("controller/objects.py", "building objects"),
    ("heketi/types.py", "building objects"),
)
OTHER = "the rest"
#: Frames every thread has at its root: they say nothing about the kind of work.
THREAD_ROOTS = ("Thread._bootstrap", "Thread.run ")


def read_stacks(lines: Iterable[str]) -> Iterable[tuple[list[str], int]]:
    """(frames outermost first, samples) of each line `frame;frame;... count`."""
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            yield stack.split(";"), int(count)


def classify(frames: Sequence[str]) -> tuple[str, str]:
    """(activity, kind) of one sampled stack."""
    activity = next(
        (label for pattern, label in ACTIVITIES if any(pattern in frame for frame in frames)),
        OTHER,
    )
    inner = [f for f in reversed(frames) if not f.startswith(THREAD_ROOTS)]
    kind = next(
        (label for frame in inner for pattern, label in KINDS if pattern in frame),
        OTHER,
    )
    return activity, kind


def breakdown(lines: Iterable[str]) -> dict[str, dict[str, float]]:
    """Percent of samples by activity and by kind; `samples` holds the total."""
    activities: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for frames, count in read_stacks(lines):
        activity, kind = classify(frames)
        activities[activity] += count
        kinds[kind] += count
    total = sum(activities.values())
    if not total:
        return {"samples": {"total": 0.0}, "activity": {}, "kind": {}}

    def shares(counter: Counter[str]) -> dict[str, float]:
        return {k: round(100 * v / total, 1) for k, v in counter.most_common()}

    return {
        "samples": {"total": float(total)},
        "activity": shares(activities),
        "kind": shares(kinds),
    }


def markdown(result: dict[str, dict[str, float]]) -> str:
    lines = [f"{int(result['samples']['total'])} samples", ""]
    for table in ("activity", "kind"):
        lines += [f"| {table.capitalize()} | Share of CPU samples |", "|---|---:|"]
        lines += [f"| {label} | {share} % |" for label, share in result[table].items()]
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    paths = list(sys.argv[1:] if argv is None else argv)
    if not paths:
        print("usage: python -m bench.profile DIR/<phase>.txt ...", file=sys.stderr)
        return 2
    for path in paths:
        print(f"## {path}\n")
        with Path(path).open(encoding="utf-8") as handle:
            print(markdown(breakdown(handle)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
