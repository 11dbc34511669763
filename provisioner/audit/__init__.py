"""`glusterfs-provisioner audit`: find what provisioning left behind, delete orphans on request.

Read-only by default. It compares one Heketi server with the cluster and reports:

- **orphaned volumes**: Heketi volumes named the way we name them (``pvc-<uid>`` or a
  class ``volumenameprefix`` pattern) that no PersistentVolume references and whose claim
  does not exist any more;
- **missing volumes**: PVs of our driver (that belong to this Heketi) whose Heketi volume
  is gone;
- **pending claims**: claims of our driver pending longer than ``--pending-after``, with
  the reason and message of their most recent Event;
- **GID collisions**: one supplemental GID held by more than one volume.

Heketi records no creation time, so ``--delete-orphans --older-than D`` judges age by
its own observations: each delete run records in a ConfigMap when it first saw a volume
orphaned, and only deletes a volume that has been orphaned in every run since a sighting
at least ``D`` old, and that is still unreferenced when re-checked just before deletion.
"""

from provisioner.audit.command import register, run

__all__ = ["register", "run"]
