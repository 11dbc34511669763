"""TLS volumes: the FUSE client's command line, and the client log read after a failed mount."""

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from provisioner import errors
from provisioner.csi import gluster_tls, recovery
from provisioner.csi.gluster_tls import TlsDir
from provisioner.csi.mounter import GlusterSource, Result, SystemMounter

TLS = TlsDir(Path("/etc/glusterfs-tls"))
SOURCE = GlusterSource(servers=("g1", "g2"), volume="vol_1")
TARGET = Path("/var/lib/kubelet/plugins/x/globalmount")
CLIENTS = "--xlator-option=*-client-*.transport.socket"
#: What glusterfs 10.3 wrote on this machine when the key was missing (socket.c).
MISSING_KEY_LOG = (
    "[2026-12-07 22:58:44.382685 +0000] E [socket.c:4413:ssl_setup_connection_params] "
    "0-vol_1-client-0: could not load private key at /etc/glusterfs-tls/glusterfs.key\n"
    "[2026-12-07 22:58:44.382705 +0000] E [socket.c:224:ssl_dump_error_stack] "
    "0-vol_1-client-0:   error:80000002:system library::No such file or directory\n"
)


def test_the_client_gets_every_server_the_volume_its_log_and_the_three_tls_files() -> None:
    argv = gluster_tls.glusterfs_argv(
        SOURCE.servers, SOURCE.volume, TARGET, read_only=False, flags=(),
        log_file=Path("/l/vol_1.log"), tls=TLS,
    )  # fmt: skip
    assert argv == [
        "glusterfs", "--process-name", "fuse", "--volfile-server=g1", "--volfile-server=g2",
        "--volfile-id=/vol_1", "--log-file=/l/vol_1.log",
        f"{CLIENTS}.ssl-own-cert=/etc/glusterfs-tls/glusterfs.pem",
        f"{CLIENTS}.ssl-private-key=/etc/glusterfs-tls/glusterfs.key",
        f"{CLIENTS}.ssl-ca-list=/etc/glusterfs-tls/glusterfs.ca",
        str(TARGET),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "read_only", "expected"),
    [
        ((), True, ["--read-only"]),
        (("ro", "rw"), True, ["--read-only"]),
        (("acl", "enable-ino32", "resolve-gids"), False,
         ["--acl", "--enable-ino32", "--resolve-gids"]),
        (("fopen-keep-cache", "_netdev"), False, ["--fopen-keep-cache=true"]),
        (("noatime", "nosuid", "nodev"), False, ["--fuse-mountopts=noatime,nosuid,nodev"]),
        (("log-level=WARNING", "attribute-timeout=0.5", "lru-limit=10"), False,
         ["--log-level=WARNING", "--attribute-timeout=0.5", "--lru-limit=10"]),
        (("fetch-attempts=3",), False, ["--volfile-max-fetch-attempts=3"]),
        (("transport=rdma",), False, ["--volfile-server-transport=rdma"]),
    ],
    ids=["read-only", "ro-once", "switches", "optional-value", "kernel-options", "values",
         "fetch-attempts", "transport"],
)  # fmt: skip
def test_mount_options_become_the_arguments_mount_glusterfs_would_give(
    flags: tuple[str, ...], read_only: bool, expected: list[str]
) -> None:
    argv = gluster_tls.glusterfs_argv(
        ("g1",), "v", TARGET, read_only=read_only, flags=flags, log_file=Path("/l/v.log"), tls=TLS
    )
    middle = [arg for arg in argv[4:-1] if not arg.startswith(("--volfile-id", "--log-file",
                                                               "--xlator-option"))]  # fmt: skip
    assert middle == expected
    volume_id = "--volfile-id=/v.rdma" if "transport=rdma" in flags else "--volfile-id=/v"
    assert volume_id in argv


@pytest.mark.parametrize(
    "path", ["relative/dir", "/a/../b", "/a,b", "/a=b", "/a b", "/a*"],
    ids=["relative", "not-normalised", "comma", "equals", "space", "glob"],
)  # fmt: skip
def test_a_tls_dir_that_could_smuggle_options_is_refused(path: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="--gluster-tls-dir"):
        TlsDir(Path(path))


class ScriptedRunner:
    """Records every command; the client writes `log` to its log file and exits `code`."""

    def __init__(self, *, code: int, log: str, log_file: Path) -> None:
        self.code, self.log, self.log_file = code, log, log_file
        self.argvs: list[list[str]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float) -> Result:
        self.argvs.append(list(argv))
        if argv[0] in ("glusterfs", "mount") and "--bind" not in argv:
            with self.log_file.open("a") as log:
                log.write(self.log)
        return Result(tuple(argv), self.code, "", "Mount failed. Check the log file")


def test_a_missing_key_is_failed_precondition_naming_the_file_and_the_secret(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "vol_1.log"
    log_file.write_text("an earlier mount: could not load our cert at /old/glusterfs.pem\n")
    runner = ScriptedRunner(code=1, log=MISSING_KEY_LOG, log_file=log_file)
    with pytest.raises(errors.FailedPrecondition) as raised:
        SystemMounter(runner=runner, tls=TLS).mount_gluster(
            SOURCE, TARGET, read_only=False, flags=(), log_file=log_file
        )
    assert str(raised.value) == (
        "volume vol_1 uses TLS and the GlusterFS client's private key "
        f"/etc/glusterfs-tls/glusterfs.key is missing (client log {log_file}); put the "
        "client's glusterfs.pem, glusterfs.key and glusterfs.ca into the Secret glusterfs-tls, "
        "which the node plugin mounts at /etc/glusterfs-tls (deploy/components/gluster-tls)"
    )
    assert runner.argvs[0][0] == "glusterfs"


def test_without_a_tls_dir_a_tls_volume_names_the_built_in_path_and_the_flag(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "vol_1.log"
    log = "E [socket.c:4405:ssl_setup_connection_params] 0-vol_1-client-0: could not load our "
    runner = ScriptedRunner(code=1, log=log + "cert at /usr/lib/ssl/glusterfs.pem\n",
                            log_file=log_file)  # fmt: skip
    with pytest.raises(errors.FailedPrecondition) as raised:
        SystemMounter(runner=runner).mount_gluster(
            SOURCE, TARGET, read_only=False, flags=(), log_file=log_file
        )
    message = str(raised.value)
    assert "certificate /usr/lib/ssl/glusterfs.pem" in message
    assert "start the node plugin with --gluster-tls-dir (GLUSTER_TLS_DIR)" in message
    assert runner.argvs[0][:3] == ["mount", "-t", "glusterfs"]


def test_a_missing_ca_list_names_the_ca_file_of_the_tls_dir(tmp_path: Path) -> None:
    tls = TlsDir(tmp_path)
    (tmp_path / "glusterfs.ca").write_text("not a certificate")
    log_file = tmp_path / "v.log"
    problem = gluster_tls.tls_problem(log_file, since=0, volume="v", tls=tls)
    assert problem is None  # no log yet
    log_file.write_text("E [socket.c:4421:ssl_setup_connection_params] 0-v-client-0: "
                        "could not load CA list\n")  # fmt: skip
    problem = gluster_tls.tls_problem(log_file, since=0, volume="v", tls=tls)
    assert problem is not None
    assert f"CA list {tmp_path}/glusterfs.ca cannot be loaded" in str(problem)


def test_a_failed_mount_without_a_tls_message_stays_internal_with_the_clients_words(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "v.log"
    runner = ScriptedRunner(code=1, log="E [MSGID: 114058] failed to get the port number\n",
                            log_file=log_file)  # fmt: skip
    with pytest.raises(errors.Internal, match=r"Mount failed\. Check the log file"):
        SystemMounter(runner=runner, tls=TLS).mount_gluster(
            SOURCE, TARGET, read_only=False, flags=(), log_file=log_file
        )


def test_a_client_that_daemonised_but_does_not_answer_is_unmounted(tmp_path: Path) -> None:
    log_file, target = tmp_path / "v.log", tmp_path / "mnt"
    target.mkdir()  # a plain directory: its inode is not 1, as a dead client's mount point
    runner = ScriptedRunner(code=0, log=MISSING_KEY_LOG, log_file=log_file)
    with pytest.raises(errors.FailedPrecondition, match="private key"):
        SystemMounter(runner=runner, tls=TLS).mount_gluster(
            SOURCE, target, read_only=False, flags=(), log_file=log_file
        )
    assert runner.argvs[-1] == ["umount", "--no-canonicalize", str(target)]
    assert os.stat(target).st_ino != 1


def test_the_cgroup_escape_also_starts_the_fuse_client_itself_outside_the_container() -> None:
    seen: list[list[str]] = []

    def inner(argv: Sequence[str], *, timeout: float) -> Result:
        seen.append(list(argv))
        return Result(tuple(argv), 0, "", "")

    runner = recovery.CgroupEscapeRunner(inner, cgroup_dir=Path("/sys/fs/cgroup/fuse"))
    client = ["glusterfs", "--process-name", "fuse", "--volfile-id=v", "/t"]
    assert runner(client, timeout=5).argv == tuple(client)
    assert seen[0][-len(client) - 1 :] == ["--", *client]
    assert "provisioner.csi.cgroup_exec" in seen[0]
