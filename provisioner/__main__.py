"""`python -m provisioner` is the same as the `glusterfs-provisioner` command."""

from provisioner.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
