"""``GET /metrics``: Prometheus text exposition of every worker's metrics (see app/metrics.py).

Prometheus has no gateway client key, so this route does not ask for one. Instead
the peer (``request.remote_addr``, which honours trusted proxies) must be in the
``metrics.allow_from`` networks (default: loopback only) and, when a
``metrics.token`` is configured, send it as ``Authorization: Bearer``. A request
that came through a proxy the gateway does not resolve (``X-Forwarded-For`` present,
address not rewritten by ``trusted_proxies``) has an unknown client: behind an nginx
on the same host every peer looks like loopback, so it is refused unless a token is
configured. Anything refused is a 403 JSON error. A successful scrape is logged at DEBUG only (the record
is ``quiet``); it is still counted in ``gateway_requests_total``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from flask import Blueprint, Response, g, request

from app import errors, metrics
from app.config import Settings
from app.forwarded import PEER_KEY
from app.runtime import current

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    g.record.quiet = True
    environ = request.environ
    check_access(current().settings, request.remote_addr, request.headers.get("Authorization"),
                 proxied="HTTP_X_FORWARDED_FOR" in environ and PEER_KEY not in environ)
    return Response(metrics.current().exposition(), content_type=metrics.CONTENT_TYPE)


def check_access(settings: Settings, peer: str | None, authorization: str | None, *,
                 proxied: bool = False) -> None:
    """Raise :class:`PermissionDenied` unless the peer and its bearer token may scrape;
    ``proxied``: the request came through a proxy whose client is unknown."""
    if not _peer_allowed(peer, settings.metrics_allow_from):
        raise errors.PermissionDenied("metrics are not available to this address")
    expected = settings.metrics_token_digest
    if proxied and expected is None:
        raise errors.PermissionDenied("metrics through a proxy need trusted_proxies or a "
                                      "metrics token")
    if expected is not None:
        scheme, _, token = (authorization or "").partition(" ")
        given = hashlib.sha256(token.strip().encode("utf-8")).digest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
            raise errors.PermissionDenied("metrics need the configured bearer token")


def _peer_allowed(peer: str | None, networks) -> bool:
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)
