"""OAuth client-credentials tokens for SAP AI Core, cached per worker (spec §2).

One :class:`TokenProvider` per service key. A token is reused until
``fetched_at + expires_in - margin`` with ``margin = min(300, expires_in / 10)``.
At most one fetch runs at a time however many requests wait (single flight: the
lock is created when the provider is, which is after gevent patched the worker).
A failure is remembered for a few seconds so an IdP outage is not hammered, and
an old token that is still valid keeps being used. The clock is injected.
Secrets and tokens are never logged.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import requests

from app import metrics
from app.config import ServiceKey
from app.errors import GatewayError, IdentityServiceDown, IdentityServiceRefused

log = logging.getLogger(__name__)

FAILURE_MEMORY_SECONDS = 5.0
DEFAULT_EXPIRES_IN = 3600


@dataclass(frozen=True)
class Token:
    value: str
    usable_until: float  # refresh from here on (expiry minus the safety margin)
    expires_at: float  # still accepted by SAP AI Core until here


class TokenProvider:
    """Fetches and caches the bearer token of one service key."""

    def __init__(self, key: ServiceKey, session: requests.Session, *,
                 timeout: tuple[float, float] = (5.0, 15.0),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._key = key
        self._session = session
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._failure: tuple[float, Exception] | None = None
        self._basic = "Basic " + base64.b64encode(
            f"{key.client_id}:{key.client_secret}".encode()).decode()
        self.fetch_count = 0

    def token(self) -> str:
        """A valid access token, fetching one if needed (single flight)."""
        current = self._token
        if current is not None and self._clock() < current.usable_until:
            return current.value
        with self._lock:
            current = self._token
            now = self._clock()
            if current is not None and now < current.usable_until:
                return current.value
            try:
                if self._failure is not None and now - self._failure[0] < FAILURE_MEMORY_SECONDS:
                    raise self._failure[1].with_traceback(None)
                try:
                    self._token = self._fetch()
                except GatewayError as exc:
                    self._failure = (self._clock(), exc)
                    raise
            except GatewayError:
                # the identity service failed: a token inside its safety margin still works
                if current is not None and self._clock() < current.expires_at:
                    return current.value
                raise
            self._failure = None
            return self._token.value

    def invalidate(self, failed_token: str) -> None:
        """Forget the cached token, but only if it is the one that just failed."""
        with self._lock:
            if self._token is not None and self._token.value == failed_token:
                self._token = None

    def _fetch(self) -> Token:
        self.fetch_count += 1
        metrics.token_refresh()
        started = self._clock()
        try:
            resp = self._session.post(
                self._key.token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": self._basic, "Accept": "application/json"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            log.warning("token fetch for client %s failed: %s", _short(self._key.client_id),
                        type(exc).__name__)
            raise IdentityServiceDown("upstream authentication failed: the SAP identity "
                                      "service is unreachable") from None
        if resp.status_code != 200:
            log.warning("token fetch for client %s answered HTTP %s",
                        _short(self._key.client_id), resp.status_code)
            if resp.status_code >= 500:
                raise IdentityServiceDown(f"upstream authentication failed: the SAP identity "
                                          f"service is unavailable ({resp.status_code})")
            raise IdentityServiceRefused(f"upstream authentication failed: the SAP identity "
                                         f"service answered {resp.status_code}")
        try:
            data = resp.json()
            value = data["access_token"]
            if not isinstance(value, str) or not value:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise IdentityServiceDown("upstream authentication failed: no access_token in "
                                      "the identity service's answer") from None
        expires_in = data.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) \
                or not math.isfinite(expires_in) or expires_in <= 0:
            expires_in = DEFAULT_EXPIRES_IN
        margin = min(300.0, expires_in / 10)
        log.info("fetched SAP token for client %s (jti %s, expires in %ss)",
                 _short(self._key.client_id), str(data.get("jti", ""))[:6], int(expires_in))
        return Token(value, started + expires_in - margin, started + expires_in)


def _short(client_id: str) -> str:
    """A loggable hint of a client id (not a secret, but keep lines short)."""
    return client_id[:12] + "…" if len(client_id) > 12 else client_id
