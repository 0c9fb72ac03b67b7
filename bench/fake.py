"""The test fake SAP AI Core (``app.simulator.FakeAICore``), set up for benchmarks.

Same options as ``python -m app.simulator`` plus ``--token-delay``; prints ``READY <base_url>``
and serves until SIGTERM/SIGINT. Differences from the test CLI, all about measuring:

* The per-request record is light: the test fake parses and keeps every request body (for
  assertions), which costs the fake CPU on the 2 shared cores and grows its memory without bound
  during a benchmark. Here only a small counter per kind of path is kept, plus the last
  inference body per URL suffix (so the benchmark can send the direct side exactly what the
  gateway sent).
* A stream keeps its own pace: event n leaves at its start plus the delays before it
  (``steady_pace``), as a model server's tokens do, whatever else the machine is doing. The test
  fake sleeps each delay after the previous write, so on the benchmark's shared cores every
  scheduling delay of the fake itself (25 per ``llm`` stream) stretched the stream, and the side
  that loads the machine more (the gateway's) was charged for the fake's slowness.
* A stream waits between its events with a plain sleep: the test fake's stoppable wait
  (``Event.wait`` with a timeout) costs a timeout object and a link per event, CPU taken from
  the gateway on the same cores. Both sides of a benchmark meet the same fake.
* ``GET /bench/stats`` answers the counters as JSON: ``token_calls`` (``POST /auth/oauth/token``),
  ``inference`` calls per suffix, ``open_streams``, ``max_open_streams``, ``streams_started``,
  ``closed_streams`` (streams the client abandoned), ``requests``.
* ``GET /bench/lateness`` answers, and forgets, how late the streams that ended since the last
  call sent their first and their last event against their own clock (``steady_pace``):
  ``{"streams": n, "first_ms": [...], "last_ms": [...]}``. On the shared cores the fake runs
  later when the gateway loads the machine too; ``bench.run`` reports it next to the latency.
* ``GET /bench/last-body?suffix=invoke-with-response-stream`` answers the raw last body posted to
  that suffix (404 if none yet); ``POST /bench/reset-max`` resets ``max_open_streams``.

* It is served by gevent's WSGI server (``--server gevent``, the default), which keeps
  connections alive like SAP AI Core does. The test fake's own server (Werkzeug's development
  server, ``--server werkzeug``) answers ``Connection: close`` to every request, so the gateway
  (and the direct side) would open a new upstream connection per request and the benchmark would
  measure connection setup instead of the gateway.

Run it on its own to point a gateway you started yourself at it::

    .venv/bin/python -m bench.fake --port 0 --no-strict --write-key /tmp/key.json
"""

if __name__ == "__main__":  # its own process: cooperative threads, many cheap connections
    from gevent import monkey

    monkey.patch_all()

import argparse
import collections
import json
import signal
import sys
import threading
import time

from flask import Response, g, request

from app.simulator import FakeAICore, RecordedRequest, deployment_id_for

_INFERENCE_PREFIX = "/v2/inference/deployments/"


class BenchFake:
    """A started :class:`FakeAICore` with light records and the ``/bench/*`` routes."""

    def __init__(self, fake: FakeAICore) -> None:
        self.fake = fake
        self.lock = threading.Lock()
        self.inference = collections.Counter()
        self.last_body: dict[str, bytes] = {}
        self.requests = 0
        self.lateness: list[tuple[float, float]] = []
        fake.pace_report = self._paced
        self.light = self._install_light_record()
        app = fake.app
        app.add_url_rule("/bench/stats", "bench_stats", self._stats, methods=["GET"])
        app.add_url_rule("/bench/lateness", "bench_lateness", self._lateness, methods=["GET"])
        app.add_url_rule("/bench/last-body", "bench_last_body", self._last_body, methods=["GET"])
        app.add_url_rule("/bench/reset-max", "bench_reset_max", self._reset_max, methods=["POST"])
        if not self.light:  # the fake changed shape: keep its records but bound their memory
            threading.Thread(target=self._trim_records, daemon=True, name="bench-trim").start()

    def _install_light_record(self) -> bool:
        funcs = self.fake.app.before_request_funcs.get(None, [])
        for i, func in enumerate(funcs):
            if getattr(func, "__func__", None) is FakeAICore._record:
                funcs[i] = self._light_record
                return True
        return False

    def _light_record(self) -> None:
        """What ``FakeAICore._record`` does, minus parsing and keeping the body."""
        path = request.path
        deployment_id = None
        if path.startswith(_INFERENCE_PREFIX):
            rest = path[len(_INFERENCE_PREFIX):]
            deployment_id, _, suffix = rest.partition("/")
            raw = request.get_data(cache=True)
            with self.lock:
                self.inference[suffix] += 1
                self.last_body[suffix] = raw
                self.requests += 1
        else:
            with self.lock:
                self.requests += 1
        g.record = RecordedRequest(method=request.method, path=path, query={}, headers={},  # type: ignore[arg-type]
                                   json=None, raw=b"", deployment_id=deployment_id,
                                   time=time.monotonic())

    def _trim_records(self) -> None:
        while True:
            time.sleep(1.0)
            del self.fake.requests[:-100]

    def stats(self) -> dict:
        fake = self.fake
        with self.lock:
            return {
                "token_calls": fake.token_calls,
                "inference": dict(self.inference),
                "requests": self.requests,
                "open_streams": fake.open_streams,
                "max_open_streams": fake.max_open_streams,
                "streams_started": fake.streams_started,
                "closed_streams": fake.closed_streams,
                "light_records": self.light,
            }

    def _stats(self) -> Response:
        return Response(json.dumps(self.stats()), mimetype="application/json")

    def _paced(self, first: float, last: float) -> None:
        if len(self.lateness) < 1_000_000:  # bounded: a round is read and cleared long before
            self.lateness.append((first, last))

    def _lateness(self) -> Response:
        done, self.lateness = self.lateness, []
        return Response(json.dumps({"streams": len(done),
                                    "first_ms": [round(f * 1000, 3) for f, _ in done],
                                    "last_ms": [round(l * 1000, 3) for _, l in done]}),
                        mimetype="application/json")

    def _last_body(self) -> Response:
        body = self.last_body.get(request.args.get("suffix", "invoke"))
        if body is None:
            return Response(b'{"message":"no inference call yet"}', status=404,
                            mimetype="application/json")
        return Response(body, mimetype="application/json")

    def _reset_max(self) -> Response:
        with self.fake._lock:  # noqa: SLF001 - same lock the fake uses for these counters
            self.fake.max_open_streams = self.fake.open_streams
        return Response(b"{}", mimetype="application/json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fake", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models", default="anthropic--claude-4.5-sonnet")
    parser.add_argument("--resource-group", default="default")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--token-ttl", type=int, default=43199)
    parser.add_argument("--token-delay", type=float, default=0.0,
                        help="seconds the token endpoint waits (widens token races)")
    parser.add_argument("--client-id", default="sb-test!b1|aicore!b540")
    parser.add_argument("--client-secret", default="s3cr3t")
    parser.add_argument("--no-strict", action="store_true")
    parser.add_argument("--write-key", metavar="PATH")
    parser.add_argument("--server", choices=("gevent", "werkzeug"), default="gevent",
                        help="gevent: keep-alive WSGI server; werkzeug: the test fake's own server "
                             "(Connection: close after every answer)")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the benchmark fake listens on loopback only")

    fake = FakeAICore(args.client_id, args.client_secret, args.token_ttl)
    fake.first_token_delay = args.first_token_delay
    fake.stream_event_count = args.chunks
    fake.stream_interval = args.interval
    fake.token_delay = args.token_delay
    fake.strict = not args.no_strict
    fake.pause_stream = _sleep_unless_stopped(fake)
    fake.steady_pace = True
    bench = BenchFake(fake)
    server = None
    if args.server == "werkzeug":
        fake.start(args.host, args.port)
    else:
        server = serve_gevent(fake, args.host, args.port)
    for model in filter(None, (m.strip() for m in args.models.split(","))):
        url = fake.add_deployment(deployment_id_for(model), model, resource_group=args.resource_group)
        print(f"deployment {model} {url}", file=sys.stderr, flush=True)
    if args.write_key:
        with open(args.write_key, "w") as f:
            json.dump(fake.service_key(), f, indent=2)
    print(f"light records: {bench.light}", file=sys.stderr, flush=True)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"READY {fake.base_url}", flush=True)
    while not done.wait(0.5):
        pass
    if server is None:
        fake.stop()
    else:
        fake._stopped.set()  # noqa: SLF001 - open streams end at their next event
        server.stop(timeout=2)
    return 0


def _sleep_unless_stopped(fake: FakeAICore):
    """A stream's wait between events as one plain (gevent) sleep: the test fake's
    ``Event.wait`` with a timeout costs a timeout object and a link per event, which is CPU
    taken from the gateway on the shared cores. Stopping the fake ends this process anyway."""
    stopped = fake._stopped  # noqa: SLF001 - the event FakeAICore.stop() sets

    def pause(seconds: float) -> bool:
        time.sleep(seconds)
        return stopped.is_set()

    return pause


def serve_gevent(fake: FakeAICore, host: str, port: int):
    """Serve ``fake.app`` with gevent's WSGI server (HTTP/1.1 keep-alive); sets ``fake.base_url``."""
    from gevent.pywsgi import WSGIHandler, WSGIServer

    class FlushingHandler(WSGIHandler):
        """Sends the status line and headers when the app yields ``b""``, as Werkzeug does
        (the fake yields it first so headers leave before the time to first token)."""

        def process_result(self):
            for data in self.result:
                if data:
                    self.write(data)
                elif not self.headers_sent and self.status:
                    self.write(b"")
            if self.status and not self.headers_sent:
                self.write(b"")
            if self.response_use_chunked:
                self._sendall(b"0\r\n\r\n")

    import socket

    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it: without it, headers and first event (two writes) meet
    # Nagle's algorithm and the client's delayed ACK (~40 ms per answer). gunicorn sets it too.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((host, port))
    listener.listen(4096)
    server = WSGIServer(listener, fake.app, log=None, handler_class=FlushingHandler)
    server.start()
    fake.base_url = f"http://{host}:{server.server_port}"
    return server


if __name__ == "__main__":
    sys.exit(main())
