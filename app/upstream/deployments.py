"""Which deployment serves which SAP model: configured URLs plus discovery (spec §4).

The :class:`DeploymentRegistry` holds an immutable ``{sap model name: (Target, ...)}``
map. Configured URLs are in it from the start; subaccounts without
``deployment_models`` (or models listed without URLs) are filled by
``GET {AI_API_URL}/v2/lm/deployments``, RUNNING ones only, from a background
refresher (one greenlet per worker under gevent) so discovery never runs on the
request path. A failed refresh keeps the last good map; :meth:`request_refresh` asks
the refresher to run now (after an inference 404). The order in which targets are
tried is the balancer's business (``app/upstream/balancer.py``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import requests

from app.config import Subaccount
from app.errors import GatewayError
from app.model_names import family_of
from app.upstream.oauth import TokenProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Target:
    """One deployment of one model in one subaccount/resource group."""

    url: str
    model: str
    subaccount: str
    resource_group: str
    tokens: TokenProvider = field(repr=False)
    tenant_id: str = ""

    @property
    def deployment_id(self) -> str:
        return self.url.rsplit("/", 1)[-1]


class DeploymentRegistry:
    def __init__(self, subaccounts: Iterable[Subaccount],
                 providers: Mapping[str, TokenProvider], session: requests.Session, *,
                 timeout: tuple[float, float] = (5.0, 30.0), send_tenant: bool = False) -> None:
        self._subaccounts = tuple(subaccounts)
        self._providers = providers
        self._session = session
        self._timeout = timeout
        self._send_tenant = send_tenant
        self._static: dict[str, tuple[Target, ...]] = {}
        for sub in self._subaccounts:
            for model, urls in sub.deployment_models.items():
                for url in urls:
                    self._add(self._static, self._target(sub, model, url))
        self._discovered: dict[str, dict[str, tuple[Target, ...]]] = {}
        # subaccount -> why its last discovery failed (no secrets: status or error class)
        self.discovery_errors: dict[str, str] = {}
        self._map: Mapping[str, tuple[Target, ...]] = dict(self._static)
        self._ready = threading.Event()
        if not self.needs_discovery:
            self._ready.set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ request path

    @property
    def needs_discovery(self) -> bool:
        return any(sub.discover for sub in self._subaccounts)

    def models(self) -> Mapping[str, tuple[Target, ...]]:
        return self._map

    def wait_ready(self, timeout: float) -> bool:
        """Block (a greenlet, under gevent) until the first discovery finished."""
        return self._ready.wait(timeout)

    def targets(self, model: str) -> tuple[Target, ...]:
        return self._map.get(model, ())

    # ------------------------------------------------------------------ discovery

    def start(self, interval: float) -> None:
        """Start the background refresher (once per worker)."""
        if not self.needs_discovery or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._refresh_loop, args=(interval,),
                                        name="deployment-discovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_refresh(self) -> None:
        """Wake the refresher now (a deployment answered 404: it may be gone)."""
        self._wake.set()

    def _refresh_loop(self, interval: float) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.refresh()
            self._wake.wait(interval)

    def refresh(self) -> None:
        """Re-discover every subaccount that needs it; keep the last good map on failure."""
        for sub in self._subaccounts:
            if not sub.discover:
                continue
            try:
                found = self._discover(sub)
            except Exception as exc:  # noqa: BLE001 - a refresher must survive anything
                self.discovery_errors[sub.name] = _describe(exc)
                log.warning("deployment discovery for subaccount %s failed: %s", sub.name,
                            self.discovery_errors[sub.name])
                continue
            self.discovery_errors.pop(sub.name, None)
            self._discovered[sub.name] = found
            log.info("discovered %d model(s) in subaccount %s: %s", len(found), sub.name,
                     ", ".join(sorted(found)) or "none")
        merged: dict[str, tuple[Target, ...]] = dict(self._static)
        for found in self._discovered.values():
            for model, targets in found.items():
                known = {t.url for t in merged.get(model, ())}
                merged[model] = merged.get(model, ()) + tuple(
                    t for t in targets if t.url not in known)
        self._map = merged
        self._ready.set()

    def _discover(self, sub: Subaccount) -> dict[str, tuple[Target, ...]]:
        tokens = self._providers[sub.service_key.cache_key]
        resp = self._session.get(
            sub.service_key.api_url + "/v2/lm/deployments",
            params={"scenarioId": "foundation-models", "status": "RUNNING", "$top": "10000"},
            headers={"Authorization": "Bearer " + tokens.token(),
                     "AI-Resource-Group": sub.resource_group},
            timeout=self._timeout,
        )
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}")
        wanted = {m for m, urls in sub.deployment_models.items() if not urls}
        found: dict[str, tuple[Target, ...]] = {}
        resources = resp.json().get("resources") or []
        resources = sorted(resources, key=lambda r: str(r.get("createdAt") or ""))
        for res in resources:
            model, url = _running_model(res)
            if not model or not url or family_of(model) == "other":
                continue
            if sub.deployment_models and model not in wanted:
                continue
            self._add(found, self._target(sub, model, url))
        return found

    # ------------------------------------------------------------------ helpers

    def _target(self, sub: Subaccount, model: str, url: str) -> Target:
        return Target(url=url.rstrip("/"), model=model, subaccount=sub.name,
                      resource_group=sub.resource_group,
                      tokens=self._providers[sub.service_key.cache_key],
                      tenant_id=sub.service_key.tenant_id if self._send_tenant else "")

    @staticmethod
    def _add(into: dict[str, tuple[Target, ...]], target: Target) -> None:
        into[target.model] = into.get(target.model, ()) + (target,)


def _running_model(res: Mapping) -> tuple[str | None, str | None]:
    if res.get("status") != "RUNNING" or res.get("targetStatus", "RUNNING") != "RUNNING":
        return None, None
    if res.get("scenarioId", "foundation-models") != "foundation-models":
        return None, None
    resources = (res.get("details") or {}).get("resources") or {}
    backend = resources.get("backend_details") or resources.get("backendDetails") or {}
    model = (backend.get("model") or {}).get("name")
    return model, res.get("deploymentUrl") or None


def _describe(exc: Exception) -> str:
    if isinstance(exc, requests.RequestException):
        return type(exc).__name__
    if isinstance(exc, GatewayError):
        return exc.message
    return str(exc) or type(exc).__name__
