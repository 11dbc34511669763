"""Which Heketi a CSI Controller call talks to, and with which credentials.

CSI passes StorageClass parameters only to CreateVolume (and GetCapacity);
DeleteVolume, ControllerExpandVolume and ValidateVolumeCapabilities carry just
the volume id and the `secrets` map that the kubernetes-csi sidecars fill from
the Secret named by the class's `csi.storage.k8s.io/*-secret-name/-namespace`
parameters. So the Heketi URL a volume lives on must be knowable without the
class: it is the secret's `resturl`, else the plugin's `--heketi-url`.
CreateVolume refuses a class whose `resturl` differs from that URL, because a
later DeleteVolume would ask the wrong Heketi.

Secret keys (all values as in the Secret's `data`/`stringData`):
  key       the Heketi key of the user (same key as the in-tree Secret type
            kubernetes.io/glusterfs); absent = no Authorization header
  resturl   Heketi URL (optional when the plugin runs with --heketi-url)
  restuser  Heketi user (optional; default --heketi-user, i.e. admin)
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from provisioner import errors
from provisioner.core.storageclass import DEFAULT_REST_USER, ProvisioningParams, parse_rest_url
from provisioner.heketi.config import HeketiConfig

SECRET_KEY: Final = "key"  # noqa: S105 - a key name, not a secret
SECRET_URL: Final = "resturl"  # noqa: S105 - a key name
SECRET_USER: Final = "restuser"  # noqa: S105 - a key name

#: Parameter keys with this prefix belong to the kubernetes-csi sidecars
#: (secret references, fstype, and --extra-create-metadata's PVC/PV names).
RESERVED_PREFIX: Final = "csi.storage.k8s.io/"
PVC_NAME_PARAMETER: Final = "csi.storage.k8s.io/pvc/name"
PVC_NAMESPACE_PARAMETER: Final = "csi.storage.k8s.io/pvc/namespace"


@dataclass(frozen=True)
class HeketiDefaults:
    """The plugin's own Heketi connection (flags), used when a request names none."""

    url: str | None = None
    user: str = DEFAULT_REST_USER
    key: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.url is not None:
            object.__setattr__(self, "url", parse_rest_url(self.url, source="--heketi-url"))

    def owns(self, url: str) -> bool:
        """Whether `url` is the plugin's own Heketi (so its key and CA apply)."""
        return self.url is not None and self.url == url


@dataclass(frozen=True)
class ClassParameters:
    """CreateVolume/GetCapacity parameters split into the class's and the sidecars'."""

    parameters: dict[str, str]
    claim_namespace: str | None = None
    claim_name: str | None = None


def split_parameters(parameters: Mapping[str, str]) -> ClassParameters:
    """Drop the sidecars' reserved keys, keeping the claim name they may carry."""
    own = {k: v for k, v in parameters.items() if not k.startswith(RESERVED_PREFIX)}
    return ClassParameters(
        parameters=own,
        claim_namespace=parameters.get(PVC_NAMESPACE_PARAMETER) or None,
        claim_name=parameters.get(PVC_NAME_PARAMETER) or None,
    )


def volume_url(secrets: Mapping[str, str], defaults: HeketiDefaults) -> str:
    """The Heketi URL of calls that carry no class parameters."""
    raw = secrets.get(SECRET_URL, "").strip()
    if raw:
        return parse_rest_url(raw, source=f"secret key {SECRET_URL!r}")
    if defaults.url is None:
        raise errors.InvalidArgument(
            "no Heketi URL for this volume: put 'resturl' in the Secret the CO passes "
            "(StorageClass parameters csi.storage.k8s.io/provisioner-secret-name and "
            "csi.storage.k8s.io/controller-expand-secret-name) or start the plugin with "
            "--heketi-url"
        )
    return defaults.url


def heketi_for_volume(secrets: Mapping[str, str], defaults: HeketiDefaults) -> HeketiConfig:
    """Connection for DeleteVolume, ControllerExpandVolume, ValidateVolumeCapabilities."""
    url = volume_url(secrets, defaults)
    own = defaults.owns(url)
    key = secrets.get(SECRET_KEY) or (defaults.key if own else None)
    return HeketiConfig(
        url=url,
        user=secrets.get(SECRET_USER) or defaults.user,
        key=key,
        auth_enabled=key is not None,
        ca_bundle=defaults.ca_file if own else None,
    )


def with_url(parameters: Mapping[str, str], url: str) -> dict[str, str]:
    """`parameters` with `resturl` set to `url` when the class gives none."""
    if any(k.lower() == "resturl" and v.strip() for k, v in parameters.items()):
        return dict(parameters)
    return {**{k: v for k, v in parameters.items() if k.lower() != "resturl"}, "resturl": url}


def heketi_for_class(
    params: ProvisioningParams, secrets: Mapping[str, str], defaults: HeketiDefaults
) -> HeketiConfig:
    """Connection for CreateVolume: the class's settings, the secret's key."""
    url = volume_url(secrets, defaults)
    if params.rest_url != url:
        raise errors.InvalidArgument(
            f"StorageClass 'resturl' {params.rest_url} differs from the Heketi URL "
            f"DeleteVolume will use ({url}, from the secret's 'resturl' or --heketi-url): "
            "make them equal, or drop 'resturl' from the class"
        )
    key = _class_key(params, secrets, defaults)
    own = defaults.owns(url)
    return HeketiConfig(
        url=url,
        user=secrets.get(SECRET_USER) or params.rest_user,
        key=key if params.rest_auth_enabled else None,
        auth_enabled=params.rest_auth_enabled,
        ca_bundle=params.rest_ca_file or (defaults.ca_file if own else None),
    )


def _class_key(
    params: ProvisioningParams, secrets: Mapping[str, str], defaults: HeketiDefaults
) -> str | None:
    key = secrets.get(SECRET_KEY) or params.rest_user_key
    if key is None and defaults.owns(params.rest_url):
        key = defaults.key
    if key is None and params.uses_secret and params.rest_auth_enabled:
        raise errors.InvalidArgument(
            "StorageClass parameters 'secretNamespace'/'secretName' are read only by the "
            "glusterfs-provisioner controller; with the CSI sidecars add "
            f"csi.storage.k8s.io/provisioner-secret-name: {params.secret_name} and "
            f"csi.storage.k8s.io/provisioner-secret-namespace: {params.secret_namespace} "
            "to the class so the key arrives with the request"
        )
    return key


def heketi_for_capacity(params: ProvisioningParams, defaults: HeketiDefaults) -> HeketiConfig:
    """Connection for GetCapacity (no secrets: the plugin's key for its own Heketi)."""
    own = defaults.owns(params.rest_url)
    key = params.rest_user_key or (defaults.key if own else None)
    return HeketiConfig(
        url=params.rest_url,
        user=params.rest_user,
        key=key if params.rest_auth_enabled else None,
        auth_enabled=params.rest_auth_enabled,
        ca_bundle=params.rest_ca_file or (defaults.ca_file if own else None),
    )
