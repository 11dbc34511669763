"""A Warning Event on the plugin's Node object, for what the node's operator must see.

The node plugin otherwise never calls the Kubernetes API (kubelet calls it); it
writes one Event when something about the node itself needs a person, e.g. FUSE
clients that cannot be kept out of the container's cgroups. The Event follows
kubelet's own for Nodes (pkg/kubelet/events, client-go's NodeRecorder): namespace
`default`, `involvedObject.uid` set to the node's name (what `kubectl describe node`
searches for), name `<node>.<unix nanoseconds in hex>`.
"""

import datetime
import threading
import time
from typing import Final

from provisioner import errors, log
from provisioner.kube.api import KubeApi, KubeError, Obj, path_for
from provisioner.kube.client import api_client

_log = log.get_logger("csi.node_events")

#: Namespace of Events about cluster-scoped objects, as kubelet and client-go use it.
NODE_EVENT_NAMESPACE: Final = "default"
#: `source.component` / `reportingComponent`: shown by `kubectl describe node` ("From").
COMPONENT: Final = "glusterfs-provisioner-node"
#: The API rejects longer messages.
MAX_MESSAGE: Final = 1024


def node_warning(node_id: str, *, reason: str, message: str) -> Obj:
    """The core/v1 Event body of a Warning about Node `node_id`."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{node_id}.{time.time_ns():x}", "namespace": NODE_EVENT_NAMESPACE},
        "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": node_id, "uid": node_id},
        "type": "Warning",
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "source": {"component": COMPONENT, "host": node_id},
        "reportingComponent": COMPONENT,
        "reportingInstance": node_id,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def send_warning(api: KubeApi, node_id: str, *, reason: str, message: str) -> None:
    """Create the Event (KubeError when the API refuses it)."""
    path = path_for(plural="events", namespace=NODE_EVENT_NAMESPACE)
    api.create(path, node_warning(node_id, reason=reason, message=message))


def warn_in_background(
    node_id: str, *, reason: str, message: str, kubeconfig: str | None
) -> threading.Thread:
    """Send the Event from a thread (start-up never waits on the API); log the outcome."""

    def send() -> None:
        try:
            with api_client(kubeconfig) as client:
                send_warning(KubeApi(client), node_id, reason=reason, message=message)
        except (errors.InvalidArgument, KubeError) as error:
            _log.warning("no Event on the node", node_id=node_id, reason=reason, error=str(error))
            return
        _log.info("Event sent on the node", node_id=node_id, reason=reason)

    thread = threading.Thread(target=send, name="node-event", daemon=True)
    thread.start()
    return thread
