"""Whether each Heketi answers, also while nobody provisions.

`glusterfs_provisioner_heketi_up` follows the last request to each Heketi. On a quiet
cluster there is none, and an SRE would learn that Heketi is gone only from the first
claim that waits. So every `interval` this asks `GET /hello` (public in Heketi
v10.4.1: `main.go` serves it beside the authenticated router) of each Heketi named by a
StorageClass of this driver that no request reached within the interval. The answer
goes through the same request observer as every other request, so it lands in the
same metrics.
"""

import threading
from dataclasses import replace
from typing import Final

from provisioner import errors
from provisioner.controller.classes import StorageClasses
from provisioner.controller.informer import Informer
from provisioner.core.volumes import heketi_config
from provisioner.heketi.config import HeketiConfig, HeketiSettings
from provisioner.heketi.registry import HeketiClients
from provisioner.heketi.session import server_of
from provisioner.log import get_logger
from provisioner.metrics import HeketiRequestMetrics

log = get_logger("heketi_watch")

#: Prometheus scrapes every 30 s; a fresher answer than that shows nothing more.
DEFAULT_INTERVAL_SECONDS: Final = 30.0
#: How long stop() waits for a check in flight (its request has its own timeout).
STOP_WAIT_SECONDS: Final = 5.0


class HeketiWatch:
    """A thread that says hello to idle Heketi servers; `stop()` ends it and its sessions."""

    def __init__(
        self,
        class_cache: Informer,
        *,
        driver: str,
        settings: HeketiSettings,
        observer: HeketiRequestMetrics,
        interval: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        self._classes = StorageClasses(class_cache, driver=driver)
        self._class_cache = class_cache
        # One try per round: the next round is the retry, and a dead Heketi must not
        # hold up the check of the others for the whole retry budget.
        self._settings = replace(settings, retry_attempts=1)
        self._observer = observer
        self._interval = interval
        # Its own clients (no key: /hello needs none), so the provisioning clients'
        # sessions are never replaced by a probe's.
        self._clients = HeketiClients(observer=observer)
        self._stopping = threading.Event()
        #: Heketi URLs whose last hello failed (warned about once).
        self._silent: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="heketi-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT_SECONDS)
        self._clients.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self.check_idle()
            self._stopping.wait(self._interval)

    def check_idle(self) -> None:
        """Say hello to each Heketi of our classes not heard from within the interval."""
        for config in self.configs():
            if self._stopping.is_set():
                return
            if self._observer.heard_from(server_of(config.base_url), within=self._interval):
                continue
            self._say_hello(config)

    def _say_hello(self, config: HeketiConfig) -> None:
        """One `GET /hello`; a warning when a Heketi stops answering, not every round."""
        url = config.base_url
        try:
            self._clients(config).hello()
        except errors.ProvisionerError as error:
            report = log.debug if url in self._silent else log.warning
            report("Heketi does not answer", url=url, error=str(error))
            self._silent.add(url)
            return
        if url in self._silent:
            self._silent.discard(url)
            log.info("Heketi answers again", url=url)

    def configs(self) -> list[HeketiConfig]:
        """One connection per Heketi URL of our (valid) StorageClasses."""
        found: dict[str, HeketiConfig] = {}
        for storage_class in self._class_cache.items():
            params = self._classes.params_if_ours(str(storage_class["metadata"]["name"]))
            if params is not None and params.rest_url:
                config = self._settings.applied_to(heketi_config(params, key=None))
                found.setdefault(config.base_url, config)
        return list(found.values())
