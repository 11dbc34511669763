"""The py-spy breakdown: each sampled stack lands in one activity and one kind."""

import pytest

from bench import profile
from bench.hosts import heketi_route

WORKER = "Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982);Controller._work (provisioner/controller/controller.py:270)"  # noqa: E501


@pytest.mark.parametrize(
    ("tail", "activity", "kind"),
    [
        pytest.param("KubeApi.request (provisioner/kube/api.py:145);loads (json/__init__.py:346)",
                     "worker: Kubernetes requests", "JSON", id="kube-json"),
        pytest.param("HeketiClient._get (provisioner/heketi/client.py:261);"
                     "parse_headers (http/client.py:231);Parser.parse (email/parser.py:41)",
                     "worker: Heketi requests", "HTTP", id="heketi-headers"),
        pytest.param("HeketiClient._slot (provisioner/heketi/client.py:320);"
                     "BoundedSemaphore.release (threading.py:500)",
                     "worker: Heketi requests", "locks, queues, threads", id="heketi-slot"),
        pytest.param("ClaimReconciler._provision (provisioner/controller/provision.py:170)",
                     "worker: the rest of a reconcile", "the rest", id="reconcile"),
    ],
)  # fmt: skip
def test_a_stack_is_charged_to_its_activity_and_innermost_kind(
    tail: str, activity: str, kind: str
) -> None:
    assert profile.classify(f"{WORKER};{tail}".split(";")) == (activity, kind)


def test_shares_add_up_to_every_sample() -> None:
    lines = [
        f"{WORKER};KubeApi.request (provisioner/kube/api.py:145) 3",
        "Thread.run (threading.py:982);EventRecorder._run (provisioner/controller/events.py:160) 1",
    ]

    result = profile.breakdown(lines)

    assert result["samples"]["total"] == 4
    assert result["activity"] == {"worker: Kubernetes requests": 75.0, "Event sender": 25.0}
    assert sum(result["kind"].values()) == 100.0


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/volumes", "/volumes"),
        ("/volumes/0f3c", "/volumes/{id}"),
        ("/volumes/0f3c/expand", "/volumes/{id}/expand"),
        ("/queue/abc?x=1", "/queue/{id}"),
    ],
)
def test_heketi_requests_are_counted_by_route_so_lists_stand_apart(path: str, route: str) -> None:
    assert heketi_route(path) == route
