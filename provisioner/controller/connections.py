"""Which Heketi a claim or volume lives on, and with which key (from its Secret).

A claim's connection comes from its class; once provisioned, the URL, user and
Secret are recorded on the PVC and PV, so deleting or expanding works when the
class is gone. Every connection gets the process's `HeketiSettings`.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from provisioner import errors
from provisioner.controller.classes import StorageClasses
from provisioner.controller.objects import annotations_of
from provisioner.core import annotations
from provisioner.core.storageclass import ProvisioningParams
from provisioner.core.volumes import heketi_config
from provisioner.heketi.config import HeketiConfig, HeketiSettings
from provisioner.heketi.errors import HeketiAuthError
from provisioner.kube.api import Obj
from provisioner.kube.secrets import SecretKeys


class Connections:
    """Heketi connection settings for classes and for the objects provisioned with them."""

    def __init__(
        self, *, secrets: SecretKeys, classes: StorageClasses, settings: HeketiSettings
    ) -> None:
        self._secrets = secrets
        self._classes = classes
        self._settings = settings

    def for_class(self, params: ProvisioningParams) -> HeketiConfig:
        """Connection settings for a class, the key read from its Secret (or inline)."""
        key = params.rest_user_key
        if params.rest_auth_enabled and params.secret_namespace and params.secret_name:
            key = self._secrets.key(params.secret_namespace, params.secret_name)
        return self._settings.applied_to(heketi_config(params, key=key))

    def for_object(self, obj: Obj, *, class_name: str) -> HeketiConfig:
        """Connection settings recorded on a PV/PVC, usable when the class is gone."""
        ann = annotations_of(obj)
        url = ann.get(annotations.ANN_HEKETI_URL)
        if not url:
            raise errors.FailedPrecondition(
                f"annotation {annotations.ANN_HEKETI_URL} is missing: cannot tell which Heketi "
                "holds the volume"
            )
        key: str | None = None
        if ann.get(annotations.ANN_SECRET_NAMESPACE) and ann.get(annotations.ANN_SECRET_NAME):
            key = self._secrets.key(
                ann[annotations.ANN_SECRET_NAMESPACE], ann[annotations.ANN_SECRET_NAME]
            )
        else:
            key = self._inline_key(class_name, url)
        config = HeketiConfig(
            url=url,
            user=ann.get(annotations.ANN_HEKETI_USER) or "admin",
            key=key,
            ca_bundle=ann.get(annotations.ANN_HEKETI_CA),
        )
        return self._settings.applied_to(config)

    @contextmanager
    def rereading_key_if_refused(self, namespace: str | None, name: str | None) -> Iterator[None]:
        """Heketi refused the key from Secret namespace/name: forget the cached copy, so the
        retry reads the Secret afresh (a rotated key is used at once, not after the TTL)."""
        try:
            yield
        except HeketiAuthError:
            if namespace and name:
                self._secrets.invalidate(namespace, name)
            raise

    def rereading_object_key_if_refused(self, obj: Obj) -> AbstractContextManager[None]:
        """`rereading_key_if_refused` for the Secret recorded on a PV/PVC."""
        ann = annotations_of(obj)
        return self.rereading_key_if_refused(
            ann.get(annotations.ANN_SECRET_NAMESPACE), ann.get(annotations.ANN_SECRET_NAME)
        )

    def _inline_key(self, class_name: str, url: str) -> str | None:
        """A deprecated inline `restuserkey` of the class, if it still exists and matches."""
        params = self._classes.params_if_ours(class_name)
        if params is None or params.rest_url != url:
            return None
        return params.rest_user_key
