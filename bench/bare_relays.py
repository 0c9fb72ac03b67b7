"""Bare relays: the least a gateway must do, in the gateway's own stack, for ``bench.stack``.

Each is a WSGI app that gunicorn's gevent workers serve as they serve the gateway. For
``POST /v1/messages`` it parses the body (msgspec, as the gateway), drops ``model`` and
``stream``, adds ``anthropic_version``, serializes it (orjson), posts it to one fake SAP AI
Core deployment with a fixed bearer token, and relays the answer: a stream's payload bytes
as they arrive (the upstream's chunked framing undone, gunicorn chunks them anew), or the
whole answer. No client auth, no validation, no sanitizing, no failover, no translation, no
logs, no metrics: what is left is the cost of the stack itself.

* :data:`flask_requests`: a Flask view and a ``requests`` session (the gateway's design);
* :data:`wsgi_requests`: the same ``requests`` call from a plain WSGI function (no Flask);
* :data:`wsgi_socket`: a plain WSGI function and a kept-alive loopback socket per call, with
  the request written and the response head read by hand (no Flask, no ``requests``).

Configured by the environment: ``BARE_UPSTREAM`` (the deployment URL, plain http on loopback)
and ``BARE_TOKEN``. Benchmark code only; the gateway never imports it.
"""

from __future__ import annotations

import os
import socket
from typing import Callable, Iterable, Iterator
from urllib.parse import urlsplit

import msgspec
import orjson
import requests
from flask import Flask, Response, request

from app.wire.chunked import ChunkedDecoder

UPSTREAM = os.environ.get("BARE_UPSTREAM", "http://127.0.0.1:9/v2/inference/deployments/d")
TOKEN = os.environ.get("BARE_TOKEN", "")
BEDROCK_VERSION = "bedrock-2023-05-31"
TIMEOUT = (5.0, 60.0)  # connect, read (s)

_decode = msgspec.json.Decoder().decode
_session = requests.Session()
_session.trust_env = False
_session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=1000, max_retries=0))

StartResponse = Callable[[str, list], object]


def _upstream_call(raw: bytes) -> tuple[str, bytes]:
    """The URL suffix and the body as the deployment takes it: ``(suffix, payload)``."""
    body = _decode(raw)
    stream = body.pop("stream", False) is True
    body.pop("model", None)
    body["anthropic_version"] = BEDROCK_VERSION
    return ("/invoke-with-response-stream" if stream else "/invoke"), orjson.dumps(body)


def _post(suffix: str, payload: bytes) -> requests.Response:
    return _session.post(UPSTREAM + suffix, data=payload, stream=True, timeout=TIMEOUT, headers={
        "Authorization": "Bearer " + TOKEN, "AI-Resource-Group": "default",
        "Content-Type": "application/json"})


def _relay(resp: requests.Response) -> Iterator[bytes]:
    try:
        yield from resp.raw.stream(65536, decode_content=False)
    finally:
        resp.close()


flask_requests = Flask(__name__)


@flask_requests.post("/v1/messages")
def _flask_view() -> Response:
    suffix, payload = _upstream_call(request.get_data())
    resp = _post(suffix, payload)
    return Response(_relay(resp), status=resp.status_code,
                    mimetype=resp.headers.get("Content-Type", "application/json"))


def _body(environ: dict) -> bytes:
    return environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))


def wsgi_requests(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    suffix, payload = _upstream_call(_body(environ))
    resp = _post(suffix, payload)
    start_response(f"{resp.status_code} {resp.reason}",
                   [("Content-Type", resp.headers.get("Content-Type", "application/json"))])
    return _relay(resp)


# ------------------------------------------------------------------------ by hand

_parts = urlsplit(UPSTREAM)
_idle: list[socket.socket] = []  # kept-alive upstream connections of this worker


def _connection() -> socket.socket:
    if _idle:
        return _idle.pop()
    sock = socket.create_connection((_parts.hostname, _parts.port), timeout=TIMEOUT[0])
    sock.settimeout(TIMEOUT[1])
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _head(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """Status line, lower-cased headers and the body bytes read with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("the upstream closed the connection before its headers")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0].split(" ", 1)[1], headers, rest


def _chunked_payload(sock: socket.socket, first: bytes) -> Iterator[bytes]:
    """The payload of a chunked answer; the connection is kept only when read to its end."""
    decoder = ChunkedDecoder()
    data = first
    try:
        while True:
            payload = decoder.feed(data) if data else b""
            if payload:
                yield payload
            if decoder.done or decoder.error is not None:
                break
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the upstream closed the connection mid-answer")
    finally:
        if decoder.done and not decoder.extra:
            _idle.append(sock)
        else:
            sock.close()


def _sized_payload(sock: socket.socket, first: bytes, length: int) -> Iterator[bytes]:
    data = first
    while len(data) < length:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("the upstream closed the connection mid-answer")
        data += more
    _idle.append(sock)
    yield data


def wsgi_socket(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    suffix, payload = _upstream_call(_body(environ))
    sock = _connection()
    sock.sendall((f"POST {_parts.path}{suffix} HTTP/1.1\r\nHost: {_parts.netloc}\r\n"
                  f"Authorization: Bearer {TOKEN}\r\nAI-Resource-Group: default\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                  ).encode("latin-1") + payload)
    status, headers, rest = _head(sock)
    start_response(status, [("Content-Type", headers.get("content-type", "application/json"))])
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return _chunked_payload(sock, rest)
    return _sized_payload(sock, rest, int(headers.get("content-length", "0")))
