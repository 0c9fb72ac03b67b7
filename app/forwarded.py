"""Believe ``X-Forwarded-For`` / ``X-Forwarded-Proto`` only from configured proxies (WSGI middleware).

gunicorn gives the app the TCP peer as ``REMOTE_ADDR``; behind nginx that is nginx.
:class:`TrustedProxies` wraps the Flask app (``create_app`` installs it only when the
``trusted_proxies`` setting is not empty) and, only when the peer is one of those
networks, rewrites two environ keys in place before Flask sees them:

* ``REMOTE_ADDR``: walk ``X-Forwarded-For`` from the right (the entry the nearest proxy
  appended) and stop at the first address that is not a trusted proxy: that is the client.
  Everything left of it may have been written by the client itself and is ignored. If every
  entry is trusted the left-most one wins; a malformed entry ends the walk at the last hop
  already verified; at most :data:`MAX_HOPS` entries are looked at.
* ``wsgi.url_scheme``: the right-most ``X-Forwarded-Proto`` value, if it is ``http`` or
  ``https``.

The peer's own address is kept under ``gateway.proxy_peer``. A peer outside the trusted
networks changes nothing, whatever it sends. This module is stdlib only; the networks are
parsed once, when the middleware is built (once per worker), never per request.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Iterable, Union

#: How many ``X-Forwarded-For`` entries, counted from the right, are ever examined.
MAX_HOPS = 32
SCHEMES = ("http", "https")
PEER_KEY = "gateway.proxy_peer"

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def parse_address(value: str) -> Address | None:
    """One forwarded entry as an address: ``a.b.c.d[:port]``, ``v6``, ``[v6][:port]``; else None.

    An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, as dual-stack sockets report IPv4
    peers) is returned as the IPv4 address.
    """
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and not _is_port_suffix(text[end + 1:])):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has at least two colons
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port_suffix(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()


class TrustedProxies:
    """WSGI middleware: rewrite ``REMOTE_ADDR`` and the scheme for requests from trusted proxies."""

    def __init__(self, app: Callable[..., Any], networks: Iterable[str]) -> None:
        self.app = app
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in networks)

    def is_trusted(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def client_address(self, peer: Address, forwarded_for: str) -> Address:
        """The right-most untrusted address of the chain ``forwarded_for`` + ``peer``."""
        client = peer
        for entry in reversed(forwarded_for.rsplit(",", MAX_HOPS)[-MAX_HOPS:]):
            address = parse_address(entry)
            if address is None:
                break
            client = address
            if not self.is_trusted(address):
                break
        return client

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Any:
        remote = environ.get("REMOTE_ADDR") or ""
        peer = parse_address(remote)
        if peer is not None and self.is_trusted(peer):
            forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
            if forwarded_for:
                client = self.client_address(peer, forwarded_for)
                if client != peer:
                    environ[PEER_KEY] = remote
                    environ["REMOTE_ADDR"] = str(client)
            proto = environ.get("HTTP_X_FORWARDED_PROTO")
            if proto:
                scheme = proto.rsplit(",", 1)[-1].strip().lower()
                if scheme in SCHEMES:
                    environ["wsgi.url_scheme"] = scheme
        return self.app(environ, start_response)
