"""StorageClasses of this driver (from the watch cache) and their parameters."""

from provisioner import errors
from provisioner.controller.informer import Informer
from provisioner.kube.api import Obj
from provisioner.storageclass import ProvisioningParams, parse_parameters


class StorageClasses:
    """The cached StorageClasses whose `provisioner` is `driver`."""

    def __init__(self, classes: Informer, *, driver: str) -> None:
        self._classes = classes
        self.driver = driver

    def get(self, name: str) -> Obj | None:
        """The class called `name`, whichever its provisioner (None if absent)."""
        return self._classes.get(name) if name else None

    def ours(self, name: str) -> Obj | None:
        """The class called `name` if this driver provisions it."""
        storage_class = self.get(name)
        return storage_class if storage_class is not None and self.is_ours(storage_class) else None

    def is_ours(self, storage_class: Obj) -> bool:
        return storage_class.get("provisioner") == self.driver

    @staticmethod
    def params(storage_class: Obj) -> ProvisioningParams:
        """The typed parameters of a class (InvalidArgument naming the one at fault)."""
        return parse_parameters(storage_class.get("parameters") or {})

    def params_if_ours(self, name: str) -> ProvisioningParams | None:
        """The parameters of our class `name`; None when it is gone, not ours, or invalid."""
        storage_class = self.ours(name)
        if storage_class is None:
            return None
        try:
            return self.params(storage_class)
        except errors.InvalidArgument:
            return None
