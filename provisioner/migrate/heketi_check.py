"""Asking the old class's Heketi whether it knows a volume (plan's confirmation)."""

from collections.abc import Callable
from dataclasses import dataclass, field

from provisioner import errors
from provisioner.heketi.client import HeketiClient
from provisioner.heketi.config import shown_url
from provisioner.heketi.errors import HeketiError, HeketiNotFound
from provisioner.kube.secrets import SecretError, SecretKeys
from provisioner.migrate.intree import Source
from provisioner.storageclass import ProvisioningParams
from provisioner.volumes import heketi_config

ClientFactory = Callable[[ProvisioningParams, str | None], HeketiClient]


def _client(params: ProvisioningParams, key: str | None) -> HeketiClient:
    return HeketiClient(heketi_config(params, key=key))


@dataclass
class HeketiCheck:
    """Confirms Heketi volume ids; one client per (URL, user), closed by `close`."""

    secrets: SecretKeys
    factory: ClientFactory = _client
    _clients: dict[tuple[str, str], HeketiClient] = field(default_factory=dict)

    def problems(self, source: Source, params: ProvisioningParams) -> list[str]:
        """Blockers: the key cannot be read, Heketi does not know the id or names it
        differently, or Heketi cannot be asked."""
        where = shown_url(params.rest_url)
        try:
            client = self._client_for(params)
            volume = client.get_volume(source.heketi_id)
        except SecretError as exc:
            return [f"{exc}: our controller could not delete the volume later"]
        except HeketiNotFound:
            return [f"Heketi at {where} does not know volume id {source.heketi_id}"]
        except (HeketiError, errors.ProvisionerError) as exc:
            return [f"could not ask Heketi at {where} about {source.heketi_id}: {exc}"]
        if volume.name != source.volume:
            return [
                f"Heketi at {where} names volume {source.heketi_id} {volume.name!r}, "
                f"but the PV mounts {source.volume!r}"
            ]
        return []

    def _client_for(self, params: ProvisioningParams) -> HeketiClient:
        cache_key = (params.rest_url, params.rest_user)
        if cache_key not in self._clients:
            self._clients[cache_key] = self.factory(params, self._key(params))
        return self._clients[cache_key]

    def _key(self, params: ProvisioningParams) -> str | None:
        if not params.rest_auth_enabled:
            return None
        if params.secret_namespace and params.secret_name:
            return self.secrets.key(params.secret_namespace, params.secret_name)
        return params.rest_user_key

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
