"""The informer's list/watch loop against a scripted API (the seam is KubeApi)."""

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from provisioner.controller.informer import Informer, InformerSettings, slim
from provisioner.controller.workqueue import BackoffPolicy
from provisioner.kube.api import KubeGone, KubeUnavailable

FAST = InformerSettings(reconnect_backoff=BackoffPolicy(base_seconds=0.01, cap_seconds=0.02))


def pvc(name: str, rv: str, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "apps", "resourceVersion": rv, **extra}}


class Stream:
    def __init__(self, events: Sequence[Any]) -> None:
        self._events = events

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for event in self._events:
            if isinstance(event, Exception):
                raise event
            yield event

    def close(self) -> None:
        return


class ScriptedApi:
    """Answers lists and watches from scripts; records what was asked."""

    def __init__(self, lists: list[dict[str, Any]], watches: list[Any]) -> None:
        self.lists, self.watches = lists, watches
        self.asked: list[tuple[str, dict[str, str]]] = []
        self.done = threading.Event()

    def list(self, path: str, *, query: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        self.asked.append(("list", dict(query)))
        return self.lists.pop(0)

    def watch(self, path: str, *, query: Sequence[tuple[str, str]], read_timeout: float) -> Stream:
        self.asked.append(("watch", dict(query)))
        if not self.watches:
            self.done.set()
            raise KubeUnavailable(0, "script finished")
        step = self.watches.pop(0)
        if isinstance(step, Exception):
            raise step
        return Stream(step)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def on_add(self, obj: dict[str, Any]) -> None:
        self.seen.append(("add", obj["metadata"]["name"]))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.seen.append(("update", new["metadata"]["name"]))

    def on_delete(self, obj: dict[str, Any]) -> None:
        self.seen.append(("delete", obj["metadata"]["name"]))


def run(api: ScriptedApi) -> tuple[Informer, Recorder]:
    recorder = Recorder()
    informer = Informer(
        api,
        path="/api/v1/persistentvolumeclaims",
        handler=recorder,
        name="pvcs",
        settings=FAST,
    )
    informer.start()
    assert api.done.wait(5)
    informer.stop()
    return informer, recorder


def page(items: list[dict[str, Any]], rv: str, token: str = "") -> dict[str, Any]:
    return {"items": items, "metadata": {"resourceVersion": rv, "continue": token}}


def test_list_pages_then_watch_from_the_lists_version_and_bookmarks_only_move_it() -> None:
    api = ScriptedApi(
        lists=[page([pvc("a", "3")], "9", token="next"), page([pvc("b", "4")], "9")],
        watches=[
            [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}],
            [{"type": "MODIFIED", "object": pvc("a", "13")}],
        ],
    )
    _, recorder = run(api)
    watches = [q for verb, q in api.asked if verb == "watch"]
    assert watches[0]["resourceVersion"] == "9"
    assert watches[1]["resourceVersion"] == "12"  # re-watch after a normal end
    assert watches[2]["resourceVersion"] == "13"
    assert recorder.seen == [("add", "a"), ("add", "b"), ("update", "a")]
    assert [q.get("continue") for verb, q in api.asked if verb == "list"] == [None, "next"]


def test_an_expired_version_in_the_stream_relists_and_delivers_the_difference() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    api = ScriptedApi(
        lists=[page([pvc("a", "3"), pvc("b", "4")], "9"), page([pvc("b", "20")], "21")],
        watches=[[gone], []],
    )
    informer, recorder = run(api)
    assert recorder.seen == [("add", "a"), ("add", "b"), ("update", "b"), ("delete", "a")]
    assert informer.keys() == ["apps/b"] and informer.relists == 2


def test_a_410_answer_to_the_watch_request_relists() -> None:
    api = ScriptedApi(
        lists=[page([], "9"), page([pvc("n", "30")], "31")], watches=[KubeGone(410, ""), []]
    )
    informer, recorder = run(api)
    assert recorder.seen == [("add", "n")]
    assert informer.relists == 2


def test_a_dropped_connection_rewatches_from_the_last_version_without_a_relist() -> None:
    api = ScriptedApi(
        lists=[page([], "9")],
        watches=[
            [{"type": "ADDED", "object": pvc("a", "10")}, KubeUnavailable(0, "connection reset")],
            [],
        ],
    )
    informer, _ = run(api)
    watches = [q["resourceVersion"] for verb, q in api.asked if verb == "watch"]
    assert watches[:2] == ["9", "10"]
    assert informer.relists == 1


def test_deletions_are_delivered_with_the_last_known_object() -> None:
    api = ScriptedApi(
        lists=[page([pvc("a", "3", labels={"x": "y"})], "9")],
        watches=[[{"type": "DELETED", "object": pvc("a", "10")}]],
    )
    informer, recorder = run(api)
    assert recorder.seen == [("add", "a"), ("delete", "a")]
    assert len(informer) == 0


def test_slim_drops_managed_fields_and_the_last_applied_configuration() -> None:
    obj = pvc(
        "a",
        "1",
        managedFields=[{"manager": "kubectl"}],
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}", "k": "v"},
    )
    assert slim(obj)["metadata"] == {
        "name": "a",
        "namespace": "apps",
        "resourceVersion": "1",
        "annotations": {"k": "v"},
    }
