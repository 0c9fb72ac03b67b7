"""The HTTP transport to SAP AI Core: one pooled Session per worker, explicit timeouts.

:func:`build_session` makes a keep-alive pool sized for the worker's concurrent
streams, with no urllib3 status retries (they skip POST anyway) and no per-request
environment lookups (``trust_env`` off; proxy and CA bundle read once here).
Before a kept-alive connection is reused, its socket goes through the session's
:data:`ConnectionProbe`: readable now means SAP AI Core closed it (or sent something
unasked), so a new one is opened. urllib3 asks a zero-timeout ``select.poll``, which
gevent patches into a switch to its hub: every other ready greenlet then runs before the
request is even sent, 15 ms at the median with 50 Claude Code streams in the benchmark.
The gevent workers pass a probe that answers at once (``gunicorn.conf.py``);
:func:`readable_now` is the stdlib one for everything else.
:class:`UpstreamClient` posts one call to one :class:`Target`: adds the bearer
token and ``AI-Resource-Group``, re-authenticates once on a 401, and turns
transport failures into gateway errors. Client headers are never forwarded.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import time
from datetime import timedelta
from typing import Callable

import requests
from requests.adapters import HTTPAdapter
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.wait import wait_for_read

from app.errors import BadGateway, GatewayTimeout
from app.upstream.deployments import Target

log = logging.getLogger(__name__)

CLIENT_TYPE = "sap-aicore-gateway"


#: True when an idle kept-alive connection's socket is readable right now (closed by the
#: server, or unasked bytes): it is not reused.
ConnectionProbe = Callable[[socket.socket], bool]


def readable_now(sock: socket.socket) -> bool:
    """What urllib3 itself asks before reusing a connection (a zero-timeout poll)."""
    return wait_for_read(sock, timeout=0.0)


def _probed_pool_classes(probe: ConnectionProbe) -> dict:
    """urllib3 pool classes whose connections ask ``probe`` whether they are still usable."""

    class Probed:
        @property
        def is_connected(self) -> bool:
            return self.sock is not None and not probe(self.sock)

    class ProbedHTTPConnection(Probed, HTTPConnection):
        pass

    class ProbedHTTPSConnection(Probed, HTTPSConnection):
        pass

    class ProbedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = ProbedHTTPConnection

    class ProbedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = ProbedHTTPSConnection

    return {"http": ProbedHTTPConnectionPool, "https": ProbedHTTPSConnectionPool}


class GatewayAdapter(HTTPAdapter):
    """requests' adapter with TLS trust settled once per connection pool, and idle
    connections checked by a :data:`ConnectionProbe` before reuse.

    The stock adapter checks the CA bundle path on disk (``exists``/``isdir``) on
    every request; here a configured bundle goes into one SSL context when the pool
    manager is built, and the per-pool certificate settings are applied once.
    """

    def __init__(self, ca_bundle: str | None = None, probe: ConnectionProbe = readable_now,
                 **kwargs) -> None:
        self._ssl_context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
        self._pool_classes = _probed_pool_classes(probe)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        if self._ssl_context is not None:
            kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = self._pool_classes
        return manager

    def cert_verify(self, conn, url, verify, cert) -> None:
        settled = (verify, cert)
        if getattr(conn, "_gateway_trust", None) != settled:
            super().cert_verify(conn, url, verify, cert)
            conn._gateway_trust = settled


def build_session(pool_size: int, ca_bundle: str | None = None, *,
                  probe: ConnectionProbe = readable_now) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    adapter = GatewayAdapter(ca_bundle, probe, pool_connections=16, pool_maxsize=pool_size,
                             max_retries=0, pool_block=False)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if proxy:
        session.proxies = {"https": proxy}
    return session


class UpstreamClient:
    """Inference calls go straight to the session's transport adapter with a request
    prepared here: the URL is already canonical, there are no cookies, redirects or
    hooks, so ``Session.request``'s merging and re-parsing (about 0.3 ms a call in
    the profile) buys nothing on this path."""

    def __init__(self, session: requests.Session, *, connect_timeout: float,
                 read_timeout: float, stream_headers_timeout: float) -> None:
        """``read_timeout``: the whole answer of a non-streamed call; ``stream_headers_timeout``:
        the response headers of a streamed one (its body's silences are the EventSource's)."""
        self.session = session
        self._timeout = (connect_timeout, read_timeout)
        self._stream_timeout = (connect_timeout, stream_headers_timeout)
        self._proxies = dict(session.proxies)
        self._verify = session.verify

    def post(self, target: Target, suffix: str, payload: bytes, *,
             stream: bool) -> requests.Response:
        """POST ``payload`` to ``target.url + suffix``; one re-auth on 401."""
        url = target.url + suffix
        token = target.tokens.token()
        resp = self._send(url, target, token, payload, stream)
        if resp.status_code == 401:
            resp.close()
            log.info("SAP AI Core answered 401 for %s; refreshing the token once",
                     target.deployment_id)
            target.tokens.invalidate(token)
            resp = self._send(url, target, target.tokens.token(), payload, stream)
        return resp

    def _send(self, url: str, target: Target, token: str, payload: bytes,
              stream: bool) -> requests.Response:
        headers = {
            "Authorization": "Bearer " + token,
            "AI-Resource-Group": target.resource_group,
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "AI-Client-Type": CLIENT_TYPE,
        }
        if target.tenant_id:
            headers["AI-Tenant-Id"] = target.tenant_id
        request = PreparedRequest()
        request.method = "POST"
        request.url = url
        request.headers = CaseInsensitiveDict(headers)
        request.headers["Content-Length"] = str(len(payload))
        request.body = payload
        adapter = self.session.get_adapter(url)
        sent = time.perf_counter()
        try:
            resp = adapter.send(request, stream=stream, verify=self._verify,
                                proxies=self._proxies,
                                timeout=self._stream_timeout if stream else self._timeout)
        except requests.Timeout:
            raise GatewayTimeout(f"SAP AI Core did not answer in time for {target.model}") from None
        except requests.RequestException as exc:
            log.warning("cannot reach deployment %s: %s", target.deployment_id,
                        type(exc).__name__)
            raise BadGateway(f"SAP AI Core is unreachable for {target.model}") from None
        # The body is sent: a stream must not keep it alive through ``resp.request`` for its
        # whole life (long Claude Code sessions post megabytes; a worker carries ~1,000 streams).
        resp.request = None
        # what Session.send would set: sending the call to the arrival of the answer's headers
        resp.elapsed = timedelta(seconds=time.perf_counter() - sent)
        return resp
