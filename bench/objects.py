"""Kubernetes objects the benchmarks create, as plain JSON dicts."""

import uuid
from typing import Any

from provisioner.core import annotations

#: Namespace of the Heketi Secret (and the controller's Lease when electing).
SYSTEM_NAMESPACE = "bench-system"
#: The Secret holding the Heketi admin key, as the in-tree plugin's classes name it.
SECRET_NAME = "heketi-admin"
#: StorageClass every benchmark claim uses.
CLASS_NAME = "glusterfs"
#: Heketi admin key of the benchmark's Heketi test server (a throw-away value).
ADMIN_KEY = "bench-admin-key"
#: Size of every benchmark claim.
CLAIM_SIZE = "1Gi"
#: Finalizer the API server's admission puts on every claim in a default cluster.
PVC_PROTECTION = "kubernetes.io/pvc-protection"
#: First GID of the seeded volumes (the in-tree plugin's default gidMin).
GID_MIN = 2000


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def heketi_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": SYSTEM_NAMESPACE},
        "type": "kubernetes.io/glusterfs",
        "stringData": {"key": ADMIN_KEY},
    }


def storage_class(*, heketi_url: str, driver: str = annotations.DRIVER_NAME) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": CLASS_NAME},
        "provisioner": driver,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
        "parameters": {
            "resturl": heketi_url,
            "restuser": "admin",
            "secretNamespace": SYSTEM_NAMESPACE,
            "secretName": SECRET_NAME,
            "volumetype": "replicate:3",
        },
    }


def base_objects(*, heketi_url: str) -> list[dict[str, Any]]:
    """What any scenario needs first: the system namespace, the Secret, the class."""
    return [namespace(SYSTEM_NAMESPACE), heketi_secret(), storage_class(heketi_url=heketi_url)]


def claim(*, name: str, ns: str, volume_name: str | None = None) -> dict[str, Any]:
    """A claim on the benchmark class; pre-bound to `volume_name` when given."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": CLASS_NAME,
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": CLAIM_SIZE}},
    }
    if volume_name is not None:
        spec["volumeName"] = volume_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        # As the API server's admission (StorageObjectInUseProtection, on by default)
        # leaves every new claim.
        "metadata": {"name": name, "namespace": ns, "finalizers": [PVC_PROTECTION]},
        "spec": spec,
    }


def claims(*, ns: str, count: int, prefix: str = "claim") -> list[dict[str, Any]]:
    return [claim(name=f"{prefix}-{i:05d}", ns=ns) for i in range(count)]


def provisioned_volume(
    *, claim_ns: str, claim_name: str, claim_uid: str, gid: int, heketi_url: str
) -> dict[str, Any]:
    """A PV as the controller makes it for a claim (DESIGN.md, "Flow of one claim")."""
    heketi_name = f"{annotations.HEKETI_NAME_PREFIX}{claim_uid}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{claim_uid}",
            "annotations": {
                annotations.ANN_PROVISIONED_BY: annotations.DRIVER_NAME,
                annotations.ANN_GID: str(gid),
                annotations.ANN_HEKETI_URL: heketi_url,
                annotations.ANN_HEKETI_USER: "admin",
                annotations.ANN_SECRET_NAMESPACE: SYSTEM_NAMESPACE,
                annotations.ANN_SECRET_NAME: SECRET_NAME,
                annotations.ANN_HEKETI_VOLUME_NAME: heketi_name,
            },
            "finalizers": [annotations.PV_FINALIZER],
        },
        "spec": {
            "capacity": {"storage": CLAIM_SIZE},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": CLASS_NAME,
            "volumeMode": "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim_ns,
                "name": claim_name,
                "uid": claim_uid,
            },
            "csi": {
                "driver": annotations.DRIVER_NAME,
                "volumeHandle": uuid.uuid4().hex,
                "volumeAttributes": {
                    annotations.CTX_SERVERS: "gluster-1.bench,gluster-2.bench,gluster-3.bench",
                    annotations.CTX_VOLUME: heketi_name,
                },
            },
        },
    }
