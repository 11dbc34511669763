"""`glusterfs-provisioner migrate`: in-tree GlusterFS PVs → CSI PVs of this driver.

Read-only `plan` first; `apply` re-creates each PV (the PV source is immutable) under
the same name for the same Gluster volume, the claim staying bound with the same UID.
Every step is derived from what the cluster shows, and the original PV is recorded on
the claim before anything changes, so a rerun finishes an interrupted run and
`rollback` can restore it. Never imports the controller package.
"""

from provisioner.migrate.command import register, run

__all__ = ["register", "run"]
