"""`python -m provisioner.csi.cgroup_exec CGROUP_DIR -- COMMAND...`: run COMMAND in a cgroup.

Moves itself into the cgroup v2 directory CGROUP_DIR (writing its PID to
`cgroup.procs`), then replaces itself with COMMAND, so COMMAND and everything it
starts (the GlusterFS FUSE client) live outside the plugin container's cgroup.
"""

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(
            "usage: python -m provisioner.csi.cgroup_exec CGROUP_DIR -- COMMAND...", file=sys.stderr
        )
        return 2
    cgroup_dir, command = argv[0], list(argv[2:])
    try:
        with open(os.path.join(cgroup_dir, "cgroup.procs"), "w", encoding="ascii") as procs:
            procs.write(str(os.getpid()))
    except OSError as error:
        print(f"cannot join cgroup {cgroup_dir}: {error.strerror}", file=sys.stderr)
        return 1
    os.execvp(command[0], command)  # noqa: S606 - argv list from the mounter, no shell
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
