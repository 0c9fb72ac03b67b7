"""Inbound authentication: which configured client key, if any, a request carries.

Keys arrive in ``x-api-key`` or ``Authorization: Bearer``. They are looked up by
their SHA-256 digest in a dict built once per worker: O(1) in the number of keys,
an exact match, and constant-time with respect to the secret (what is hashed and
compared are digests, so timing says nothing about how close a guess was). The
check fails closed and returns only a label that is safe to log, never the key.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

from app.errors import AuthenticationFailed

ANONYMOUS = "anonymous"


def presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def authenticate(headers: Mapping[str, str], digests: Mapping[bytes, str],
                 allow_unauthenticated: bool) -> str:
    """The label of the client key in ``headers``; raises AuthenticationFailed."""
    key = presented_key(headers)
    if key is None:
        if allow_unauthenticated:
            return ANONYMOUS
        raise AuthenticationFailed("missing gateway key: send it in x-api-key or "
                                   "Authorization: Bearer")
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    label = digests.get(digest)
    if label is not None:
        return label
    if allow_unauthenticated and not digests:
        return ANONYMOUS
    raise AuthenticationFailed("invalid gateway key")
