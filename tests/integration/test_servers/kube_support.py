"""Object builders and client bundles for the Kubernetes API test server's contract tests."""

import itertools
import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch

from provisioner.names import DRIVER_NAME
from testbed.kube.server import KubeTestServer

JSON = dict[str, Any]
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


@dataclass(frozen=True)
class Api:
    """The generated API classes of the real client, all pointed at one server."""

    api_client: client.ApiClient
    core: client.CoreV1Api
    storage: client.StorageV1Api
    events: client.EventsV1Api
    coordination: client.CoordinationV1Api


def api_for(server: KubeTestServer) -> Api:
    api_client = server.api_client()
    return Api(
        api_client,
        client.CoreV1Api(api_client),
        client.StorageV1Api(api_client),
        client.EventsV1Api(api_client),
        client.CoordinationV1Api(api_client),
    )


def new_namespace(api: Api) -> str:
    name = unique("ns")
    api.core.create_namespace({"metadata": {"name": name}})
    return name


def pvc_body(
    name: str,
    *,
    size: str = "1Gi",
    labels: dict[str, str] | None = None,
    class_name: str | None = "glusterfs",
    volume_name: str | None = None,
    finalizers: list[str] | None = None,
) -> JSON:
    spec: JSON = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if class_name is not None:
        spec["storageClassName"] = class_name
    if volume_name is not None:
        spec["volumeName"] = volume_name
    meta: JSON = {"name": name, "labels": labels or {}}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


def pv_body(
    name: str,
    *,
    size: str = "1Gi",
    claim: tuple[str, str] | None = None,
    claim_uid: str | None = None,
    reclaim: str = "Delete",
) -> JSON:
    spec: JSON = {
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": size},
        "csi": {"driver": DRIVER_NAME, "volumeHandle": f"handle-{name}"},
        "persistentVolumeReclaimPolicy": reclaim,
        "storageClassName": "glusterfs",
    }
    if claim is not None:
        spec["claimRef"] = {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "namespace": claim[0],
            "name": claim[1],
        }
        if claim_uid is not None:
            spec["claimRef"]["uid"] = claim_uid
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": spec,
    }


def sc_body(name: str, *, default: bool = False, parameters: dict[str, str] | None = None) -> JSON:
    meta: JSON = {"name": name}
    if default:
        meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": meta,
        "provisioner": DRIVER_NAME,
        "parameters": parameters or {"resturl": "http://h:8080"},
    }


def status_of(err: client.ApiException) -> JSON:
    """The Status object the server answered with."""
    body: JSON = json.loads(err.body)
    return body


def watch_events(
    list_fn: Any,
    *args: Any,
    resource_version: str | None,
    count: int,
    timeout: int = 5,
    **kwargs: Any,
) -> list[tuple[str, JSON]]:
    """The first `count` (type, raw object) events of a watch from `resource_version`.

    Returns early with fewer events when the server ends the watch after `timeout` seconds.
    """
    seen: list[tuple[str, JSON]] = []
    stream = watch.Watch()
    for event in stream.stream(
        list_fn, *args, resource_version=resource_version, timeout_seconds=timeout, **kwargs
    ):
        seen.append((event["type"], event["raw_object"]))
        if len(seen) >= count:
            stream.stop()
            break
    return seen
