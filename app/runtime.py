"""Per-worker state: built once, after gevent patched the worker, never per request.

:class:`Runtime` owns everything that outlives a request: the parsed settings,
the pooled requests Session, one :class:`TokenProvider` per service key, the
deployment registry (and its discovery refresher), the balancer's cooldowns, per-model sanitizer profiles
and the self-healing rules learned from upstream 400s.

gunicorn's ``post_worker_init`` hook calls :func:`init_worker`; pytest and
``flask run`` get one lazily through :func:`current`. :func:`reset_after_fork`
drops state inherited from a parent process. Nothing here imports Flask.
"""

from __future__ import annotations

import logging
import threading
from typing import Mapping

from app.config import Settings, worker_settings
from app.log import configure_logging, setup_usage_log
from app.model_names import Resolution, resolve
from app.translate.gemini.request import GeminiProfile, gemini_profile_for
from app.translate.gpt.request import GptProfile, gpt_profile_for
from app.translate.profiles import ModelProfile, profile_for
from app.upstream.balancer import Balancer
from app.upstream.client import ConnectionProbe, UpstreamClient, build_session, readable_now
from app.upstream.deployments import DeploymentRegistry
from app.upstream.events import ReadWaiterFactory
from app.upstream.oauth import TokenProvider

log = logging.getLogger(__name__)

FIRST_DISCOVERY_WAIT_SECONDS = 30.0


class Runtime:
    builds = 0  # how many Runtime objects this process built (tests assert on it)

    def __init__(self, settings: Settings, read_waiter: ReadWaiterFactory | None = None,
                 connection_probe: ConnectionProbe = readable_now) -> None:
        """``read_waiter``: how upstream streams wait for their socket (the server's; see
        ``app.upstream.events``), else the socket's own timeout. ``connection_probe``: how a
        kept-alive upstream connection is checked before reuse (``app.upstream.client``)."""
        Runtime.builds += 1
        self.settings = settings
        self.read_waiter = read_waiter
        self.connection_probe = connection_probe
        self.session = build_session(settings.upstream_pool_size, settings.ca_bundle,
                                     probe=connection_probe)
        token_timeout = (settings.token_connect_timeout, settings.token_read_timeout)
        self.token_providers: dict[str, TokenProvider] = {}
        for sub in settings.subaccounts:
            key = sub.service_key
            if key.cache_key not in self.token_providers:
                self.token_providers[key.cache_key] = TokenProvider(
                    key, self.session, timeout=token_timeout)
        self.registry = DeploymentRegistry(
            settings.subaccounts, self.token_providers, self.session,
            timeout=(settings.connect_timeout, 30.0), send_tenant=settings.send_tenant_header)
        self.balancer = Balancer()
        self.upstream = UpstreamClient(
            self.session, connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            stream_headers_timeout=settings.first_event_timeout)
        self._usage_handler = setup_usage_log(settings.token_usage_log,
                                              settings.token_usage_log_rotation,
                                              settings.token_usage_log_keep_days)
        self._profiles: dict[str, object] = {}  # SAP model -> its family's profile
        self._learned: dict[str, frozenset[str]] = {}
        self._learned_lock = threading.Lock()

    def start(self) -> None:
        self.registry.start(self.settings.discovery_refresh_seconds)

    def close(self) -> None:
        self.registry.stop()
        self.session.close()
        if self._usage_handler is not None:
            setup_usage_log("")

    # ------------------------------------------------------------------ models

    def available_models(self) -> Mapping:
        if self.registry.needs_discovery:
            self.registry.wait_ready(FIRST_DISCOVERY_WAIT_SECONDS)
        return self.registry.models()

    def resolve_model(self, client_id: str) -> Resolution | None:
        return resolve(client_id, self.available_models(), self.settings.model_aliases)

    def profile(self, sap_name: str) -> ModelProfile:
        """The Claude sanitizer profile of an SAP model (built once per model)."""
        return self._profile(sap_name, profile_for)

    def gpt_profile(self, sap_name: str) -> GptProfile:
        return self._profile(sap_name, gpt_profile_for)

    def gemini_profile(self, sap_name: str) -> GeminiProfile:
        return self._profile(sap_name, gemini_profile_for)

    def _profile(self, sap_name: str, build):
        profile = self._profiles.get(sap_name)
        if profile is None:  # overrides were validated when the configuration was loaded
            profile = build(sap_name, self.settings.model_profiles.get(sap_name))
            self._profiles[sap_name] = profile
        return profile

    # ------------------------------------------------------------------ self-healing memory

    def learned_rules(self, deployment_url: str) -> frozenset[str]:
        return self._learned.get(deployment_url, frozenset())

    def learn_rule(self, deployment_url: str, rule_key: str) -> None:
        with self._learned_lock:
            self._learned[deployment_url] = self.learned_rules(deployment_url) | {rule_key}


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def init_worker(settings: Settings | None = None, *,
                read_waiter: ReadWaiterFactory | None = None,
                connection_probe: ConnectionProbe = readable_now) -> Runtime:
    """Build this worker's runtime (gunicorn ``post_worker_init``, which passes the gevent
    worker's ``read_waiter`` and ``connection_probe``)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            settings = settings or worker_settings()
            configure_logging(settings.log_level, settings.log_format)
            _runtime = Runtime(settings, read_waiter, connection_probe)
            _runtime.start()
        return _runtime


def current() -> Runtime:
    runtime = _runtime
    if runtime is None:
        return init_worker()
    return runtime


def installed() -> Runtime | None:
    """This process's runtime if one was built, without building one."""
    return _runtime


def install(runtime: Runtime | None) -> None:
    """Use ``runtime`` as this process's runtime (the app factory and tests)."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None and _runtime is not runtime:
            _runtime.close()
        _runtime = runtime
        if runtime is not None:
            runtime.start()


def reset_after_fork() -> None:
    """Forget any runtime inherited from the master (gunicorn ``post_fork``)."""
    global _runtime, _runtime_lock
    _runtime = None
    _runtime_lock = threading.Lock()
