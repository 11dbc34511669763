"""Names that stay fixed once chosen: the driver name, our finalizers, annotations and
labels, the volume-context keys, and the annotations that record where a volume lives.

Changing any of these strands existing volumes: PVs, finalizers and Heketi
volumes created by an earlier release would no longer be recognised as ours.
They are documented in docs/reference.md ("Fixed names").
"""

from typing import Final

from provisioner.core.storageclass import ProvisioningParams

#: CSI driver name, the StorageClass `provisioner` value and PV `spec.csi.driver`.
#: Overridable by `--driver-name`; this is the default.
DRIVER_NAME: Final = "glusterfs.csi.heketi.io"

#: Prefix of every annotation, label and finalizer we own.
DOMAIN: Final = DRIVER_NAME

#: Finalizer on our PVs: the backing Heketi volume is deleted before the PV goes.
PV_FINALIZER: Final = f"{DOMAIN}/delete-volume"

#: Finalizer on a PVC while we are provisioning for it: records the intent before
#: Heketi is called, so a claim deleted mid-provisioning (even across a restart)
#: gets its backing volume deleted instead of leaked.
PVC_FINALIZER: Final = f"{DOMAIN}/provisioning"

#: PV annotations that let deletion work without the StorageClass.
ANN_HEKETI_URL: Final = f"{DOMAIN}/heketi-url"
ANN_HEKETI_USER: Final = f"{DOMAIN}/heketi-user"
ANN_SECRET_NAMESPACE: Final = f"{DOMAIN}/secret-namespace"
ANN_SECRET_NAME: Final = f"{DOMAIN}/secret-name"
ANN_HEKETI_VOLUME_NAME: Final = f"{DOMAIN}/heketi-volume-name"
ANN_HEKETI_CA: Final = f"{DOMAIN}/heketi-ca"

#: PVC annotation written with PVC_FINALIZER (the intent, before Heketi is called):
#: the GID chosen for the claim's volume, so a restarted controller neither hands it
#: to another claim nor picks a different one on retry.
ANN_CLAIM_GID: Final = f"{DOMAIN}/gid"

#: PV annotation while an expand of its volume may be running in Heketi (JSON: target
#: size, when it was sent or its outcome lost, Heketi's queue entry if known, and which
#: controller sent it); written before the expand is sent, removed with the capacity
#: update. A restarted controller sends no second expand until that one has ended.
ANN_EXPAND_IN_FLIGHT: Final = f"{DOMAIN}/expand-in-flight"

#: `migrate`: PV annotation on a CSI PV made from an in-tree one (value: the in-tree
#: plugin, `kubernetes.io/glusterfs`); claim annotation holding the in-tree PV as it was
#: before migration and the CSI PV that replaces it (JSON), written before anything is
#: changed, so an interrupted run can finish and `rollback` can restore it.
ANN_MIGRATED_FROM: Final = f"{DOMAIN}/migrated-from"
ANN_MIGRATION_RECORD: Final = f"{DOMAIN}/in-tree-pv"
#: StorageClass annotation on the twin `migrate classes` makes of an in-tree class.
ANN_TWIN_OF: Final = f"{DOMAIN}/twin-of"

#: The in-tree plugin's names (kubernetes.io/glusterfs, removed in Kubernetes 1.26).
IN_TREE_PLUGIN: Final = "kubernetes.io/glusterfs"
ANN_IN_TREE_HEKETI_ID: Final = "gluster.kubernetes.io/heketi-volume-id"
ANN_IN_TREE_CREATED_BY: Final = "kubernetes.io/createdby"
LABEL_IN_TREE_PROVISIONED_FOR: Final = "gluster.kubernetes.io/provisioned-for-pvc"
IN_TREE_DYNAMIC_ENDPOINTS_PREFIX: Final = "glusterfs-dynamic-"
#: Finalizer kube-apiserver/kube-controller-manager keep on every PV while it is Bound.
PV_PROTECTION_FINALIZER: Final = "kubernetes.io/pv-protection"
#: Finalizer kube-controller-manager's PV controller (1.33+, HonorPVReclaimPolicy) keeps on
#: a dynamically provisioned in-tree PV whose reclaim policy is Delete, and removes itself
#: once the policy is Retain (pv_controller_base.go `modifyDeletionFinalizers`).
IN_TREE_DELETION_FINALIZER: Final = "kubernetes.io/pv-controller"
#: The finalizers Kubernetes itself puts on a PV: migrate lifts them, never others.
KUBE_PV_FINALIZERS: Final = (PV_PROTECTION_FINALIZER, IN_TREE_DELETION_FINALIZER)
ANN_DEFAULT_CLASS: Final = "storageclass.kubernetes.io/is-default-class"

#: On a claim being provisioned as a clone: the Heketi id of the volume it clones, written
#: with the intent (the source claim is checked once, before Heketi is called).
ANN_CLONE_OF: Final = f"{DOMAIN}/clone-of"

#: Well-known Kubernetes annotations we read or write.
ANN_PROVISIONED_BY: Final = "pv.kubernetes.io/provisioned-by"
ANN_GID: Final = "pv.beta.kubernetes.io/gid"
ANN_STORAGE_PROVISIONER: Final = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER: Final = "volume.beta.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_CLASS: Final = "volume.beta.kubernetes.io/storage-class"
ANN_SELECTED_NODE: Final = "volume.kubernetes.io/selected-node"

#: Keys of a CSI volume_context / PV volumeAttributes read by NodeStageVolume.
CTX_SERVERS: Final = "servers"
CTX_VOLUME: Final = "volume"
#: Informational volume_context key of the CSI Controller service: the volume's GID
#: (for a pod's supplementalGroups; the node plugin does not need it).
CTX_GID: Final = "gid"
#: volume_context / PV volumeAttributes key on a clone: the Heketi id of the volume it
#: was cloned from (it shares that volume's GID; the audit knows them as one family).
CTX_CLONE_OF: Final = "clone-of"
#: The volume_context keys this plugin compares; a CO adds its own (external-provisioner:
#: `storage.kubernetes.io/csiProvisionerIdentity`), which ValidateVolumeCapabilities ignores.
CTX_KEYS: Final = frozenset({CTX_SERVERS, CTX_VOLUME, CTX_GID})

#: Heketi volume names we create start with this (see volume_naming.heketi_volume_name).
HEKETI_NAME_PREFIX: Final = "pvc-"


# The Heketi coordinates a PV of ours carries in its annotations.
#
# Deleting or expanding a volume must work after its StorageClass is gone, so the
# controller records where the volume lives (URL, user, Secret reference, CA
# file, Heketi volume name) on the claim's intent and on the PV; `migrate` writes
# the same set on PVs it brings across, so our controller can manage them. The
# key itself is never recorded: only the Secret that holds it.
def heketi_annotations(params: ProvisioningParams, *, volume_name: str) -> dict[str, str]:
    """What expanding and deleting the volume need when the StorageClass is gone."""
    ann = {
        ANN_HEKETI_URL: params.rest_url,
        ANN_HEKETI_USER: params.rest_user,
        ANN_HEKETI_VOLUME_NAME: volume_name,
    }
    if params.secret_namespace and params.secret_name:
        ann[ANN_SECRET_NAMESPACE] = params.secret_namespace
        ann[ANN_SECRET_NAME] = params.secret_name
    if params.rest_ca_file:
        ann[ANN_HEKETI_CA] = params.rest_ca_file
    return ann
