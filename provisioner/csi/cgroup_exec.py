"""`python -m provisioner.csi.cgroup_exec CGROUP_DIR... -- COMMAND...`: run COMMAND in cgroups.

Moves itself into every cgroup directory given (writing its PID to each one's
`cgroup.procs`: one directory on a cgroup v2 node, one per hierarchy on a cgroup v1
node), checks that each move took, then replaces itself with COMMAND, so COMMAND
and everything it starts (the GlusterFS FUSE client) live outside the plugin
container's cgroups.
"""

import os
import sys
from collections.abc import Sequence

USAGE = "usage: python -m provisioner.csi.cgroup_exec CGROUP_DIR... -- COMMAND..."


def join(cgroup_dir: str, pid: int) -> None:
    """Move `pid` into `cgroup_dir`; OSError when the kernel refused or the PID is not there."""
    procs = os.path.join(cgroup_dir, "cgroup.procs")
    descriptor = os.open(procs, os.O_WRONLY)  # never created: a cgroup has it, a directory not
    try:
        os.write(descriptor, str(pid).encode("ascii"))
    finally:
        os.close(descriptor)
    with open(procs, encoding="ascii") as file:
        if str(pid) not in file.read().split():
            raise OSError(0, "the process is not listed in its cgroup.procs after the move")


def main(argv: Sequence[str]) -> int:
    split = list(argv).index("--") if "--" in argv else -1
    if split < 1 or split == len(argv) - 1:
        print(USAGE, file=sys.stderr)
        return 2
    cgroup_dirs, command = list(argv[:split]), list(argv[split + 1 :])
    for cgroup_dir in cgroup_dirs:
        try:
            join(cgroup_dir, os.getpid())
        except OSError as error:
            print(f"cannot join cgroup {cgroup_dir}: {error.strerror}", file=sys.stderr)
            return 1
    os.execvp(command[0], command)  # noqa: S606 - argv list from the mounter, no shell
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
