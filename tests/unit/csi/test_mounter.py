"""The mounter's command lines, mountinfo parsing and runner, with a fake runner."""

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import structlog

from provisioner import errors
from provisioner.csi import mounter
from provisioner.csi.mount_table import MountInfo, MountTable, ReportedOnce, parse_mountinfo
from provisioner.csi.mounter import GlusterSource, PathState, Result, SystemMounter

SOURCE = GlusterSource(servers=("g1.example.com", "g2.example.com", "10.0.0.3"), volume="vol_1")
STAGING = Path("/var/lib/kubelet/plugins/kubernetes.io/csi/d/abc/globalmount")
TARGET = Path("/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/pvc/mount")


class FakeRunner:
    """Records every command; answers with scripted exit codes (default 0)."""

    def __init__(self, *, failures: dict[str, Result] | None = None) -> None:
        self.calls: list[tuple[list[str], float]] = []
        self.failures = failures or {}

    def __call__(self, argv: Sequence[str], *, timeout: float) -> Result:
        self.calls.append((list(argv), timeout))
        key = " ".join(argv)
        for fragment, result in self.failures.items():
            if fragment in key:
                return result
        return Result(tuple(argv), 0, "", "")

    @property
    def argvs(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls]


def failed(stderr: str, code: int = 32) -> Result:
    return Result(("mount",), code, "", stderr)


def test_gluster_mount_names_backup_servers_log_file_and_flags() -> None:
    runner = FakeRunner()
    SystemMounter(runner=runner).mount_gluster(
        SOURCE, STAGING, read_only=False, flags=("noatime", "log-level=WARNING"),
        log_file=Path("/var/log/glusterfs/csi/vol_1.log"),
    )  # fmt: skip
    assert runner.calls == [
        (
            [
                "mount", "-t", "glusterfs", "-o",
                "backup-volfile-servers=g2.example.com:10.0.0.3,"
                "log-file=/var/log/glusterfs/csi/vol_1.log,noatime,log-level=WARNING",
                "g1.example.com:/vol_1", str(STAGING),
            ],
            mounter.MOUNT_TIMEOUT,
        )
    ]  # fmt: skip


def test_read_only_gluster_mount_adds_ro_once_and_drops_rw() -> None:
    argv = mounter.gluster_mount_argv(
        GlusterSource(servers=("g1",), volume="v"), STAGING, read_only=True,
        flags=("rw", "ro", "acl"), log_file=Path("/l/v.log"),
    )  # fmt: skip
    assert argv == ["mount", "-t", "glusterfs", "-o", "log-file=/l/v.log,ro,acl", "g1:/v",
                    str(STAGING)]  # fmt: skip


def test_single_server_mount_has_no_backup_volfile_servers() -> None:
    argv = mounter.gluster_mount_argv(
        GlusterSource(servers=("g1",), volume="v"), STAGING, read_only=False, flags=(),
        log_file=Path("/l/v.log"),
    )  # fmt: skip
    assert "backup-volfile-servers" not in argv[4]


def test_read_write_publish_is_one_bind_mount() -> None:
    runner = FakeRunner()
    SystemMounter(runner=runner).bind_mount(STAGING, TARGET, read_only=False)
    assert runner.argvs == [["mount", "--bind", str(STAGING), str(TARGET)]]


def test_read_only_publish_binds_then_remounts_read_only() -> None:
    runner = FakeRunner()
    SystemMounter(runner=runner).bind_mount(STAGING, TARGET, read_only=True)
    assert runner.argvs == [
        ["mount", "--bind", str(STAGING), str(TARGET)],
        ["mount", "-o", "remount,bind,ro", str(TARGET)],
    ]


def test_a_failed_read_only_remount_removes_the_writable_bind() -> None:
    runner = FakeRunner(failures={"remount": failed("mount: permission denied")})
    with pytest.raises(errors.Internal, match=r"making .* read-only failed"):
        SystemMounter(runner=runner).bind_mount(STAGING, TARGET, read_only=True)
    assert runner.argvs[-1] == ["umount", "--no-canonicalize", str(TARGET)]


def test_unmount_runs_umount_without_canonicalising_the_path_with_its_timeout() -> None:
    runner = FakeRunner()
    SystemMounter(runner=runner).unmount(TARGET)
    assert runner.calls == [(["umount", "--no-canonicalize", str(TARGET)], mounter.UMOUNT_TIMEOUT)]


def test_a_failing_command_raises_internal_with_its_own_explanation() -> None:
    runner = FakeRunner(failures={"glusterfs": failed("Mount failed. Check the log file")})
    with pytest.raises(errors.Internal) as raised:
        SystemMounter(runner=runner).mount_gluster(
            SOURCE, STAGING, read_only=False, flags=(), log_file=Path("/l.log")
        )
    assert str(raised.value) == (
        f"mounting g1.example.com:/vol_1 at {STAGING} failed (exit 32): "
        "Mount failed. Check the log file"
    )


MOUNTINFO = (
    b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    b"43 22 0:39 / /var/lib/kubelet/plugins/x/globalmount rw,relatime shared:20 - fuse.glusterfs "
    b"g1:/vol_1 rw,user_id=0,group_id=0,default_permissions,allow_other,max_read=131072\n"
    b"44 22 0:39 / /var/lib/kubelet/pods/a\\040b/mount ro,relatime - fuse.glusterfs g1:/vol_1 "
    b"rw,user_id=0\n"
    b"45 22 0:40 /sub\\134dir /mnt/tab\\011and\\012newline rw - tmpfs tmp\\040fs rw\n"
)


def test_mountinfo_lines_are_parsed_with_optional_fields_skipped() -> None:
    entries = parse_mountinfo(MOUNTINFO).entries
    assert entries[1] == MountInfo(
        mount_id=43, parent_id=22, root="/", mount_point="/var/lib/kubelet/plugins/x/globalmount",
        options=("rw", "relatime"), fs_type="fuse.glusterfs", source="g1:/vol_1",
        super_options=("rw", "user_id=0", "group_id=0", "default_permissions", "allow_other",
                       "max_read=131072"),
    )  # fmt: skip
    assert not entries[1].read_only and entries[2].read_only


def test_mountinfo_octal_escapes_are_decoded() -> None:
    entries = parse_mountinfo(MOUNTINFO).entries
    assert entries[2].mount_point == "/var/lib/kubelet/pods/a b/mount"
    assert (entries[3].root, entries[3].mount_point, entries[3].source) == (
        "/sub\\dir", "/mnt/tab\tand\nnewline", "tmp fs",
    )  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [b"\r", b"\x0b", b"\x0c", b"\x1c", b"\xc2\x85", "\u2028".encode(), b"\xff\xfe", b"trail "],
    ids=["cr", "vt", "ff", "fs", "nel", "line-separator", "not-utf8", "trailing-space"],
)
def test_a_mount_point_keeps_every_byte_the_kernel_passes_through(raw: bytes) -> None:
    point = b"/tmp/odd" + raw.replace(b" ", b"\\040")
    line = b"60 1 0:70 / " + point + b" rw - tmpfs none rw\n"
    (entry,) = parse_mountinfo(MOUNTINFO + line).entries[4:]
    assert os.fsencode(entry.mount_point) == b"/tmp/odd" + raw


def test_an_unparsable_line_is_skipped_and_the_others_still_parse() -> None:
    table = parse_mountinfo(b"43 22 0:39 / /mnt rw\n" + MOUNTINFO)
    assert [entry.mount_id for entry in table.entries] == [22, 43, 44, 45]
    assert table.skipped == (b"43 22 0:39 / /mnt rw",)


def test_an_unparsable_line_is_logged_once_however_often_the_table_is_read(
    tmp_path: Path,
) -> None:
    table = tmp_path / "mountinfo"
    table.write_bytes(b"bad line one\n" + MOUNTINFO + b"bad line two\n")
    system = SystemMounter(runner=FakeRunner(), mountinfo=table)
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert len(system.table().entries) == 4
    skipped = [
        entry for entry in logs if entry["event"] == "mountinfo line skipped: cannot parse it"
    ]
    assert [entry["line"] for entry in skipped] == ["bad line one", "bad line two"]
    assert {entry["log_level"] for entry in skipped} == {"warning"}


def test_the_lines_reported_as_skipped_are_bounded_oldest_forgotten_first() -> None:
    reported = ReportedOnce(limit=2)
    assert [reported.first_time(line) for line in (b"a", b"b", b"a", b"c", b"b")] == [
        True, True, False, True, True,
    ]  # fmt: skip


def test_mount_at_returns_the_topmost_of_stacked_mounts(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(
        "50 1 0:1 / /k/t rw - tmpfs a rw\n"
        "51 50 0:2 / /k/t ro - fuse.glusterfs g1:/v rw\n"
        "52 1 0:3 / /k/other rw - tmpfs b rw\n"
    )
    snapshot = SystemMounter(runner=FakeRunner(), mountinfo=table).table()
    found = snapshot.at(Path("/k/t"))
    assert found is not None and found.mount_id == 51
    assert [mount.mount_id for mount in snapshot.all_at(Path("/k/t"))] == [50, 51]
    assert snapshot.at(Path("/k/none")) is None


def test_mount_at_finds_a_mount_reached_through_a_symlinked_parent(tmp_path: Path) -> None:
    real = tmp_path / "data" / "kubelet"
    real.mkdir(parents=True)
    (tmp_path / "kubelet").symlink_to(real)  # e.g. /var/lib/kubelet -> /data/kubelet
    table = tmp_path / "mountinfo"
    table.write_text(f"51 1 0:2 / {real}/t rw - fuse.glusterfs g1:/v rw\n")
    found = SystemMounter(mountinfo=table).table().at(tmp_path / "kubelet" / "t")
    assert found is not None and found.mount_id == 51


def test_the_real_mountinfo_of_this_process_parses() -> None:
    entries = SystemMounter().table().entries
    assert any(entry.mount_point == "/" for entry in entries)


@pytest.mark.parametrize(
    ("mount_source", "matches"),
    [
        ("g1.example.com:/vol_1", True),
        ("10.0.0.3:/vol_1", True),
        ("g1.example.com:/vol_2", False),
        ("other:/vol_1", False),
    ],
    ids=["primary", "backup-server", "other-volume", "other-server"],
)
def test_a_gluster_source_matches_its_volume_from_any_of_its_servers(
    mount_source: str, matches: bool
) -> None:
    entry = MountInfo(1, 1, "/", "/m", ("rw",), "fuse.glusterfs", mount_source, ("rw",))
    assert SOURCE.matches(entry) is matches


def test_a_bind_of_another_filesystem_never_matches_a_gluster_source() -> None:
    entry = MountInfo(1, 1, "/", "/m", ("rw",), "nfs", "g1.example.com:/vol_1", ("rw",))
    assert not SOURCE.matches(entry)


def test_path_state_tells_missing_from_healthy(tmp_path: Path) -> None:
    assert mounter.probe_with_timeout(tmp_path, timeout=5) is PathState.HEALTHY
    assert mounter.probe_with_timeout(tmp_path / "gone", timeout=5) is PathState.MISSING


def test_the_subprocess_runner_enforces_its_timeout() -> None:
    with pytest.raises(errors.DeadlineExceeded, match=r"sleep did not finish within 0\.2s"):
        mounter.SubprocessRunner()(["sleep", "5"], timeout=0.2)


def test_the_subprocess_runner_reports_a_missing_program() -> None:
    with pytest.raises(errors.FailedPrecondition, match="is not installed on this node"):
        mounter.SubprocessRunner()(["no-such-mount-helper-xyz"], timeout=5)


def test_the_subprocess_runner_returns_exit_code_and_output_without_a_shell() -> None:
    result = mounter.SubprocessRunner()(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=5)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.output() == "err"


def test_a_call_that_does_not_answer_in_time_gives_none_not_a_blocked_caller() -> None:
    release = threading.Event()
    try:
        assert mounter.answer_within(release.wait, timeout=0.05, name="blocked") is None
    finally:
        release.set()


def test_a_call_that_answers_in_time_gives_its_value_or_raises_its_error() -> None:
    assert mounter.answer_within(lambda: 42, timeout=5, name="quick") == 42
    with pytest.raises(FileNotFoundError):
        mounter.answer_within(lambda: os.statvfs("/no/such/path"), timeout=5, name="missing")


class _RecordingMounter:
    def __init__(self) -> None:
        self.unmounts: list[Path] = []

    def unmount(self, target: Path) -> None:
        self.unmounts.append(target)


def _stack(*fs_types: str) -> MountTable:
    return MountTable(
        entries=tuple(
            MountInfo(i, 1, "/", "/k/t", ("rw",), fs, "g1:/v", ("rw",))
            for i, fs in enumerate(fs_types)
        )
    )


def test_unmount_ours_peels_off_every_gluster_mount_stacked_at_the_path() -> None:
    recording = _RecordingMounter()
    mounter.unmount_ours(recording, _stack("fuse.glusterfs", "fuse.glusterfs"), Path("/k/t"))  # type: ignore[arg-type]
    assert recording.unmounts == [Path("/k/t"), Path("/k/t")]


def test_unmount_ours_refuses_a_path_where_another_filesystem_is_mounted() -> None:
    recording = _RecordingMounter()
    with pytest.raises(errors.FailedPrecondition, match=r"has a nfs mount .* did not make"):
        mounter.unmount_ours(recording, _stack("fuse.glusterfs", "nfs"), Path("/k/t"))  # type: ignore[arg-type]
    assert recording.unmounts == []
