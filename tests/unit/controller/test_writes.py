"""The reconcilers' writes: each one is checked against the lease before anything is
sent, and the reconcilers hold no other way to write."""

import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from provisioner.controller import writes as w
from provisioner.controller.deletion import VolumeReconciler
from provisioner.controller.expansion import Expander
from provisioner.controller.provision import ClaimReconciler
from provisioner.heketi.client import HeketiClient
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.types import Volume
from provisioner.kube.api import KubeApi, Obj
from provisioner.storageclass import parse_parameters
from provisioner.volumes import VolumeService
from tests.unit.fake_heketi import FakeHeketi

HEKETI = HeketiConfig(url="http://heketi:8080")
PARAMS = parse_parameters({"resturl": HEKETI.url, "volumetype": "replicate:3"})
PVC: Obj = {"metadata": {"name": "data", "namespace": "apps", "uid": "u", "resourceVersion": "7"}}
PV: Obj = {"metadata": {"name": "pvc-u", "uid": "p", "resourceVersion": "3"}}
CLAIM_PATH = "/api/v1/namespaces/apps/persistentvolumeclaims/data"
PV_PATH = "/api/v1/persistentvolumes/pvc-u"

#: What the reconcilers must not reach but through `Writes`: the write methods of the
#: Kubernetes adapter, the provisioning core and the Heketi client.
WRITE_METHODS = frozenset(
    {"create", "update", "merge_patch", "json_patch", "delete"}
    | {"ensure_volume", "ensure_clone", "expand_volume", "delete_volume"}
    | {"create_volume", "clone_volume"}
)


class RecordingApi:
    """The KubeApi write methods `Writes` uses; records (verb, path)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def _answer(self, verb: str, path: str) -> Obj:
        self.sent.append((verb, path))
        return {"metadata": {"resourceVersion": "8"}}

    def create(self, path: str, body: Mapping[str, Any]) -> Obj:
        return self._answer("create", path)

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> Obj:
        return self._answer("merge_patch", path)

    def json_patch(self, path: str, operations: Sequence[Mapping[str, Any]]) -> Obj:
        return self._answer("json_patch", path)

    def delete(self, path: str, *, body: Mapping[str, Any] | None = None) -> Obj:
        return self._answer("delete", path)


class NoClaimsCached:
    def get(self, key: str) -> Obj | None:
        return None


Write = Callable[[w.Writes, Volume], object]
#: Every write of the facade: how to make it, and the request it sends (the Kubernetes
#: verb and path, or the Heketi client method).
WRITES: dict[str, tuple[Write, tuple[str, str] | str]] = {
    "patch_claim": (
        lambda x, _: x.patch_claim(PVC, [{"op": "add", "path": "/spec/volumeName", "value": "v"}]),
        ("json_patch", CLAIM_PATH),
    ),
    "patch_claim_status": (
        lambda x, _: x.patch_claim_status(PVC, {"conditions": []}),
        ("merge_patch", f"{CLAIM_PATH}/status"),
    ),
    "create_pv": (lambda x, _: x.create_pv(PV), ("create", "/api/v1/persistentvolumes")),
    "patch_pv": (lambda x, _: x.patch_pv(PV, {"metadata": {}}), ("merge_patch", PV_PATH)),
    "delete_pv": (lambda x, _: x.delete_pv(PV), ("delete", PV_PATH)),
    "ensure_volume": (
        lambda x, _: x.ensure_volume(
            heketi=HEKETI, name="new", size_gib=1, params=PARAMS, gid=2000, unused_name=True
        ),
        "create_volume",
    ),
    "ensure_clone": (
        lambda x, source: x.ensure_clone(
            heketi=HEKETI,
            name="copy",
            source_id=source.id,
            params=PARAMS,
            size_gib=None,
            unused_name=True,
        ),
        "clone_volume",
    ),
    "expand_volume": (
        lambda x, volume: x.expand_volume(
            heketi=HEKETI, volume_id=volume.id, size_gib=2, earlier=None, before_send=print
        ),
        "expand_volume",
    ),
    "delete_volume": (
        lambda x, volume: x.delete_volume(heketi=HEKETI, volume_id=volume.id),
        "delete_volume",
    ),
}

WRITING_HEKETI_CALLS = frozenset(s for _, s in WRITES.values() if isinstance(s, str))


def _setup(*, leading: bool) -> tuple[w.Writes, RecordingApi, FakeHeketi, Volume]:
    api, heketi = RecordingApi(), FakeHeketi()
    volume = heketi.add("existing", 1)
    writes = w.Writes(
        api=api,  # type: ignore[arg-type]
        volumes=VolumeService(clients=lambda _: heketi),
        claims=NoClaimsCached(),  # type: ignore[arg-type]
        leading=lambda: leading,
    )
    return writes, api, heketi, volume


def test_the_table_holds_every_write_of_the_facade() -> None:
    writes, _, _, _ = _setup(leading=True)
    public = {n for n in dir(writes) if not n.startswith("_") and callable(getattr(writes, n))}
    assert public == set(WRITES)


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_is_refused_before_anything_is_sent_when_not_leading(write: str) -> None:
    writes, api, heketi, volume = _setup(leading=False)
    make, _ = WRITES[write]
    with pytest.raises(w.NotLeading):
        make(writes, volume)
    assert api.sent == [] and heketi.calls == []


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_sends_its_one_request_while_leading(write: str) -> None:
    writes, api, heketi, volume = _setup(leading=True)
    make, request = WRITES[write]
    make(writes, volume)
    if isinstance(request, str):
        assert api.sent == []
        assert [name for name, _ in heketi.calls if name in WRITING_HEKETI_CALLS] == [request]
    else:
        assert api.sent == [request] and heketi.calls == []


def test_a_claim_write_waits_for_the_watch_to_show_it() -> None:
    writes, _, _, _ = _setup(leading=True)
    writes.patch_claim(PVC, [])
    assert writes.expectations.waiting("apps/data", "7") > 0  # the version it replaced
    assert writes.expectations.waiting("apps/data", "8") == 0  # the version it made


def _types_in(hint: object) -> Iterator[object]:
    """`hint` and every type it is made of (Callable[[A], B] → A, B; X | None → X)."""
    yield hint
    for arg in typing.get_args(hint):
        if isinstance(arg, list):
            for item in arg:
                yield from _types_in(item)
        else:
            yield from _types_in(arg)


def _writers(cls: type) -> dict[str, list[str]]:
    """Per constructor parameter of `cls`, the write methods its types offer."""
    found: dict[str, list[str]] = {}
    for name, hint in typing.get_type_hints(cls.__init__).items():
        for part in _types_in(hint):
            if part is not w.Writes and isinstance(part, type):
                methods = sorted(m for m in WRITE_METHODS if hasattr(part, m))
                if methods:
                    found.setdefault(name, []).extend(methods)
    return found


def test_the_writer_check_sees_the_writers_it_keeps_out() -> None:
    for writer in (KubeApi, VolumeService, HeketiClient):
        assert _writers(type("Holder", (), {"__init__": _holding(writer)}))


def _holding(writer: type) -> Callable[..., None]:
    def __init__(self: object, *, held: writer) -> None:  # type: ignore[valid-type]
        return None

    return __init__


@pytest.mark.parametrize("reconciler", [ClaimReconciler, Expander, VolumeReconciler])
def test_a_reconciler_can_write_only_through_the_guarded_facade(reconciler: type) -> None:
    hints = typing.get_type_hints(reconciler.__init__)
    assert hints["writes"] is w.Writes
    assert _writers(reconciler) == {}
