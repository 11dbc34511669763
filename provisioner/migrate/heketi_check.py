"""Asking the old class's Heketi whether it knows a volume (plan's confirmation)."""

from dataclasses import dataclass, field

from provisioner import errors
from provisioner.core.storageclass import ProvisioningParams
from provisioner.core.volumes import heketi_config
from provisioner.heketi.config import shown_url
from provisioner.heketi.errors import HeketiError, HeketiNotFound
from provisioner.heketi.registry import HeketiClients
from provisioner.kube.secrets import SecretError, SecretKeys
from provisioner.migrate.intree import Source


@dataclass
class HeketiCheck:
    """Confirms Heketi volume ids through the run's Heketi clients, closed by `close`."""

    secrets: SecretKeys
    clients: HeketiClients = field(default_factory=HeketiClients)
    #: Gluster volume options of each volume confirmed so far (for the TLS check).
    _options: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def problems(self, source: Source, params: ProvisioningParams) -> list[str]:
        """Blockers: the key cannot be read, Heketi does not know the id or names it
        differently, or Heketi cannot be asked."""
        where = shown_url(params.rest_url)
        try:
            client = self.clients(heketi_config(params, key=self._key(params)))
            volume = client.get_volume(source.heketi_id)
        except SecretError as exc:
            return [f"{exc}: our controller could not delete the volume later"]
        except HeketiNotFound:
            return [f"Heketi at {where} does not know volume id {source.heketi_id}"]
        except (HeketiError, errors.ProvisionerError) as exc:
            return [f"could not ask Heketi at {where} about {source.heketi_id}: {exc}"]
        self._options[source.heketi_id] = volume.options
        if volume.name != source.volume:
            return [
                f"Heketi at {where} names volume {source.heketi_id} {volume.name!r}, "
                f"but the PV mounts {source.volume!r}"
            ]
        return []

    def options(self, source: Source) -> tuple[str, ...]:
        """The `glustervolumeoptions` Heketi listed for `source` (asked by `problems`)."""
        return self._options.get(source.heketi_id, ())

    def _key(self, params: ProvisioningParams) -> str | None:
        if not params.rest_auth_enabled:
            return None
        if params.secret_namespace and params.secret_name:
            return self.secrets.key(params.secret_namespace, params.secret_name)
        return params.rest_user_key

    def close(self) -> None:
        self.clients.close()
        self._options.clear()
