"""An authenticated `ApiClient` from a kubeconfig file or the in-cluster service account."""

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration

from provisioner import errors


def api_client(kubeconfig: str | None) -> ApiClient:
    """The client for `kubeconfig`, or the in-cluster config when it is None/empty."""
    configuration = Configuration()
    try:
        if kubeconfig:
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        else:
            kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
    except (kube_config.ConfigException, OSError) as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "in-cluster config"
        raise errors.InvalidArgument(f"cannot load {where}: {exc}") from exc
    return ApiClient(configuration)
