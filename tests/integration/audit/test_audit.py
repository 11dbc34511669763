"""`glusterfs-provisioner audit` against the Heketi and Kubernetes test servers."""

import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioner import cli, errors, names
from provisioner.audit import command, ledger
from provisioner.audit.findings import AuditSettings, ClusterState
from provisioner.audit.run import run_audit
from provisioner.heketi.client import HeketiClient, HeketiConfig
from provisioner.heketi.types import Durability, VolumeCreateRequest
from provisioner.kube.api import KubeApi
from provisioner.volumes import VolumeService
from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer

KEY = "audit-admin-key"
DRIVER = names.DRIVER_NAME


@dataclass
class Planted:
    heketi: HeketiTestServer
    kube: KubeTestServer
    client: HeketiClient
    healthy: str  # heketi id of a volume with PV + claim
    orphan: str  # heketi id of a volume with neither
    in_flight: str  # heketi id of a volume whose claim exists but has no PV yet
    foreign: str  # heketi id of a volume not named by us
    missing_pv: str  # name of a PV whose volume is gone
    pending_claim: str  # ns/name of a claim pending with an Event


def _create(client: HeketiClient, name: str, gid: int = 0) -> str:
    request = VolumeCreateRequest(
        size_gib=1, name=name, durability=Durability(type="none"), gid=gid
    )
    return client.create_volume(request).id


def _pv(name: str, handle: str, *, url: str, gid: int, claim: tuple[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {names.ANN_HEKETI_URL: url, names.ANN_GID: str(gid)},
        },
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "glusterfs",
            "csi": {"driver": DRIVER, "volumeHandle": handle},
            "claimRef": {"namespace": claim[0], "name": claim[1]},
        },
    }


def _pvc(name: str, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "glusterfs",
            "resources": {"requests": {"storage": "1Gi"}},
            **spec,
        },
    }


def _plant(heketi: HeketiTestServer, kube: KubeTestServer) -> Planted:
    client = HeketiClient(HeketiConfig(url=heketi.url, key=KEY, poll_initial=0.01))
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    kube.create(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "glusterfs"},
            "provisioner": DRIVER,
            "parameters": {"resturl": heketi.url},
        }
    )
    bound = kube.create(_pvc("bound"))
    healthy = _create(client, f"pvc-{bound['metadata']['uid']}", gid=2001)
    kube.create(
        _pv(
            f"pvc-{bound['metadata']['uid']}",
            healthy,
            url=heketi.url,
            gid=2001,
            claim=("team", "bound"),
        )
    )
    orphan = _create(client, f"pvc-{uuid.uuid4()}", gid=2001)  # also collides with healthy
    waiting = kube.create(_pvc("waiting"))
    in_flight = _create(client, f"pvc-{waiting['metadata']['uid']}", gid=2002)
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "waiting.1", "namespace": "team"},
            "involvedObject": {
                "kind": "PersistentVolumeClaim",
                "namespace": "team",
                "name": "waiting",
                "uid": waiting["metadata"]["uid"],
            },
            "reason": "ProvisioningFailed",
            "message": "Heketi has no space for 1 GiB",
            "type": "Warning",
            "lastTimestamp": "2030-01-01T00:00:00Z",
        }
    )
    foreign = _create(client, "vol_0123456789abcdef0123456789abcdef")
    kube.create(_pv("pvc-lost", "f" * 32, url=heketi.url, gid=2003, claim=("team", "lost")))
    return Planted(
        heketi, kube, client, healthy, orphan, in_flight, foreign, "pvc-lost", "team/waiting"
    )


@pytest.fixture
def planted() -> Iterator[Planted]:
    with HeketiTestServer(admin_key=KEY) as heketi, KubeTestServer() as kube:
        world = _plant(heketi, kube)
        yield world
        world.client.close()


def _config(world: Planted, *extra: str) -> command.AuditCommandConfig:
    return command.config_from_args(
        cli.build_parser().parse_args(
            [
                "audit",
                "--heketi-url",
                world.heketi.url,
                "--pending-after",
                "0s",
                "--state-namespace",
                "team",
                *extra,
            ]
        )
    )


def _execute(world: Planted, *extra: str, now: float | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = command.execute(
        _config(world, *extra),
        api_client=world.kube.api_client(),
        environ={"HEKETI_KEY": KEY},
        out=out,
        now=(lambda: now) if now is not None else time.time,
    )
    return code, out.getvalue()


def test_audit_reports_each_kind_of_finding_as_json(planted: Planted) -> None:
    code, text = _execute(planted, "-o", "json")
    report = json.loads(text)
    assert code == command.EXIT_FINDINGS
    assert [v["id"] for v in report["orphaned_volumes"]] == [planted.orphan]
    assert [m["pv"] for m in report["missing_volumes"]] == [planted.missing_pv]
    pending = {p["claim"]: p for p in report["pending_claims"]}
    assert pending[planted.pending_claim]["reason"] == "ProvisioningFailed"
    assert pending[planted.pending_claim]["message"] == "Heketi has no space for 1 GiB"
    assert [c["gid"] for c in report["gid_collisions"]] == [2001]


def test_audit_table_names_every_section(planted: Planted) -> None:
    _, text = _execute(planted)
    for title in (
        "Orphaned Heketi volumes",
        "PVs whose Heketi volume is gone",
        "Claims stuck pending",
        "GID collisions",
    ):
        assert title in text
    assert planted.orphan in text and planted.foreign not in text


def test_audit_without_delete_changes_nothing_anywhere(planted: Planted) -> None:
    kube_before = len(planted.kube.requests)
    heketi_before = len(planted.heketi.requests)
    _execute(planted)
    kube_verbs = {r.verb for r in planted.kube.requests[kube_before:]}
    heketi_methods = {r.method for r in planted.heketi.requests[heketi_before:]}
    assert kube_verbs <= {"get", "list"}
    assert heketi_methods == {"GET"}
    assert len(planted.heketi.volumes()) == 4


def test_first_delete_run_only_records_sightings(planted: Planted) -> None:
    _, text = _execute(planted, "--delete-orphans", "--older-than", "1h", "-o", "json")
    report = json.loads(text)
    assert report["deleted"] == []
    assert [w["id"] for w in report["waiting"]] == [planted.orphan]
    state = planted.kube.get("configmaps", ledger.DEFAULT_STATE_CONFIGMAP, "team")
    assert state is not None and planted.orphan in state["data"][ledger.STATE_KEY]
    assert {v["id"] for v in planted.heketi.volumes()} >= {planted.orphan}


@pytest.mark.parametrize(
    "stored",
    ["{not json", "[]", '{"URL": []}', '{"URL": {"v": "yesterday"}}'],
    ids=["not-json", "a-list", "url-entry-a-list", "time-not-a-number"],
)
def test_a_corrupt_ledger_is_a_clear_failure_that_deletes_nothing(
    planted: Planted, stored: str
) -> None:
    planted.kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ledger.DEFAULT_STATE_CONFIGMAP, "namespace": "team"},
            "data": {ledger.STATE_KEY: stored.replace("URL", planted.heketi.url)},
        }
    )
    with pytest.raises(errors.FailedPrecondition, match="delete the ConfigMap"):
        _execute(planted, "--delete-orphans", "--older-than", "1h", now=time.time() + 7200)
    assert planted.orphan in {v["id"] for v in planted.heketi.volumes()}


def test_orphan_seen_long_enough_ago_is_printed_then_deleted(planted: Planted) -> None:
    start = time.time()
    _execute(planted, "--delete-orphans", "--older-than", "1h", now=start)
    _, text = _execute(planted, "--delete-orphans", "--older-than", "1h", now=start + 3601)
    assert text.index("Deleting orphaned Heketi volumes") < text.index("Deleted orphaned volumes")
    remaining = {v["id"] for v in planted.heketi.volumes()}
    assert planted.orphan not in remaining
    assert {planted.healthy, planted.in_flight, planted.foreign} <= remaining


def test_orphan_not_seen_for_the_whole_window_is_kept(planted: Planted) -> None:
    start = time.time()
    _execute(planted, "--delete-orphans", "--older-than", "2h", now=start)
    _, text = _execute(planted, "--delete-orphans", "--older-than", "2h", now=start + 3600)
    assert planted.orphan in {v["id"] for v in planted.heketi.volumes()}
    assert "Orphans not yet old enough to delete" in text


def test_orphan_that_gained_a_pv_since_its_sighting_is_not_deleted(planted: Planted) -> None:
    start = time.time()
    _execute(planted, "--delete-orphans", "--older-than", "1h", now=start)
    planted.kube.create(
        _pv(
            "pvc-adopted",
            planted.orphan,
            url=planted.heketi.url,
            gid=2004,
            claim=("team", "adopted"),
        )
    )
    _execute(planted, "--delete-orphans", "--older-than", "1h", now=start + 7200)
    assert planted.orphan in {v["id"] for v in planted.heketi.volumes()}
    state = planted.kube.get("configmaps", ledger.DEFAULT_STATE_CONFIGMAP, "team")
    assert state is not None and planted.orphan not in state["data"][ledger.STATE_KEY]


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    kubeconfig = tmp_path / "kubeconfig"
    cluster = {"name": "t", "cluster": {"server": server}}
    context = {"name": "t", "context": {"cluster": "t", "user": "t"}}
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "t",
                "clusters": [cluster],
                "users": [{"name": "t", "user": {}}],
                "contexts": [context],
            }
        )
    )
    return kubeconfig


def _run_cli(argv: list[str]) -> int:
    """The audit command as `glusterfs-provisioner` runs it (logging left as the tests set it)."""
    args = cli.build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


def test_cli_reads_the_key_from_a_secret_and_exits_one_on_findings(
    planted: Planted,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import base64

    planted.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/glusterfs",
            "metadata": {"name": "heketi", "namespace": "team"},
            "data": {"key": base64.b64encode(KEY.encode()).decode()},
        }
    )
    kubeconfig = _kubeconfig(tmp_path, planted.kube.url)
    monkeypatch.delenv("HEKETI_KEY", raising=False)
    code = _run_cli(
        [
            "audit",
            "--kubeconfig",
            str(kubeconfig),
            "--heketi-url",
            planted.heketi.url,
            "--heketi-secret",
            "team/heketi",
            "-o",
            "json",
        ]
    )
    assert code == command.EXIT_FINDINGS
    assert json.loads(capsys.readouterr().out)["orphaned_volumes"][0]["id"] == planted.orphan


def test_wrong_heketi_key_is_a_clear_error_without_the_key(
    planted: Planted,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kubeconfig = _kubeconfig(tmp_path, planted.kube.url)
    monkeypatch.setenv("HEKETI_KEY", "wrong-sentinel-key-0xDEAD")
    code = _run_cli(
        [
            "audit",
            "--kubeconfig",
            str(kubeconfig),
            "--heketi-url",
            planted.heketi.url,
        ]
    )
    captured = capsys.readouterr()
    assert code == command.EXIT_BACKEND
    assert "HeketiAuthError" in captured.err
    assert "wrong-sentinel-key-0xDEAD" not in captured.err + captured.out


class _ClaimCreatedDuringTheRead(ledger.KubeReader):
    """Kubernetes reads while a provisioner works: right after this read, a new claim
    and then its Heketi volume appear (the order the provisioner creates them in)."""

    def __init__(self, world: Planted) -> None:
        super().__init__(KubeApi(world.kube.api_client()))
        self._world = world
        self.volume_id = ""

    def snapshot(self) -> ClusterState:
        state = super().snapshot()
        if not self.volume_id:
            claim = self._world.kube.create(_pvc("racing"))
            self.volume_id = _create(self._world.client, f"pvc-{claim['metadata']['uid']}")
        return state


def test_volume_of_a_claim_created_during_the_audit_is_not_an_orphan(planted: Planted) -> None:
    reader = _ClaimCreatedDuringTheRead(planted)
    settings = AuditSettings(
        driver_name=DRIVER, heketi_url=planted.heketi.url, pending_after_seconds=3600
    )
    report = run_audit(
        volumes=VolumeService(clients=lambda _: planted.client),
        heketi=planted.client.config,
        kube=reader,
        settings=settings,
    )
    assert reader.volume_id
    assert [o.id for o in report.orphaned_volumes] == [planted.orphan]
