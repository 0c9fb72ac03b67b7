"""gunicorn settings for the gateway: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Every value can be overridden from the environment (or ``GUNICORN_CMD_ARGS``,
which gunicorn applies after this file). This is the only file that may mention
gevent, and it imports nothing from ``app/`` at module level: the worker must
monkey-patch before ``requests``/``ssl`` are imported. It also holds the gevent
workers' way of waiting for upstream stream sockets (:class:`GeventReadWaiter`) and of
checking kept-alive upstream connections (:class:`UnpatchedPollProbe`), handed to the
app's runtime by ``post_worker_init``.
"""

import glob
import os
import shutil
import sys
import tempfile
import traceback

# ----------------------------------------------------------------------------- binding
# Procfile hosts set PORT and expect 0.0.0.0; everywhere else we stay on loopback.
# GUNICORN_CMD_ARGS="--bind ..." still wins (gunicorn applies it after this file).
if os.environ.get("PORT"):
    bind = ["0.0.0.0:" + os.environ["PORT"]]
else:
    bind = [os.environ.get("GATEWAY_BIND", "127.0.0.1:3001")]

# ----------------------------------------------------------------------------- workers
# gevent: one greenlet per connection, so a worker holds many long SSE streams.
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", str(max(2, os.cpu_count() or 1))))
# Concurrent client connections per worker (streams of Claude Code fleets).
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "2000"))
# With gevent, `timeout` detects a blocked hub, not a long request: streams of
# 10 minutes are fine as long as no greenlet hogs the CPU for this long.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On deploy/SIGTERM, let running streams (up to 10 minutes) finish.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "630"))
# Idle keep-alive connections hold a worker's shutdown until they time out, so keep
# this short; nginx in front should use a shorter upstream keepalive_timeout (README).
keepalive = int(os.environ.get("KEEPALIVE", "5"))
# No preload: each worker imports the app after gevent patched it.
preload_app = False
# gunicorn's control socket is not used; it would clash between instances of one user.
control_socket_disable = True

# ----------------------------------------------------------------------------- proxies
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# ----------------------------------------------------------------------------- logging
accesslog = None  # the app writes one richer line per request itself (app/log.py)
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# No logconfig_dict: with one set, gunicorn formats access-log atoms for every request
# even with the access log off. The app configures its own loggers per worker.


# ----------------------------------------------------------------------------- hooks
# Metrics (app/metrics.py) are summed across workers by prometheus_client's multiprocess
# mode: every worker keeps its values in mmap files of one directory, which must exist
# and be empty before the first worker forks, and be in PROMETHEUS_MULTIPROC_DIR when a
# worker first imports prometheus_client. The master never imports prometheus_client: it
# imports ssl, and workers forked later must not inherit ssl before gevent patches them.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_own_metrics_dir = None  # the directory on_starting created (removed on_exit)


def on_starting(server):
    """Master, once: validate the configuration so a mistake stops startup with one line;
    prepare the metrics directory the workers inherit."""
    from app.config import ConfigError, load_settings

    try:
        load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"gateway: configuration error: {exc}\n")
        sys.exit(1)
    prepare_metrics_dir(os.environ)


def prepare_metrics_dir(environ):
    """Use $PROMETHEUS_MULTIPROC_DIR (created if missing, emptied of *.db: it must belong to
    this gateway alone), else a new private temporary directory, exported to the workers."""
    global _own_metrics_dir
    path = environ.get(METRICS_DIR_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(glob.escape(path), "*.db")):
            os.remove(stale)
    else:
        path = _own_metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
        environ[METRICS_DIR_ENV] = path
    return path


def child_exit(server, worker):
    """Master, when a worker exits (cleanly or not): drop its live-gauge files so
    gateway_streams_in_flight stops counting its streams; its counters stay in the sums.
    The same as prometheus_client.multiprocess.mark_process_dead, without importing it."""
    mark_process_dead(worker.pid, os.environ.get(METRICS_DIR_ENV))


def mark_process_dead(pid, path):
    if not path:
        return
    for live in glob.glob(os.path.join(glob.escape(path), f"gauge_live*_{int(pid)}.db")):
        try:
            os.remove(live)
        except FileNotFoundError:
            pass


def on_exit(server):
    """Master, at shutdown: remove the metrics directory if on_starting created it."""
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)


def post_fork(server, worker):
    """Worker, before gevent patches it: reset inherited state, parse config (pure data)."""
    from app import config

    config.forget_worker_settings()
    config.worker_settings()


def post_worker_init(worker):
    """Worker, after patching and app import: build sockets, locks and the refresher;
    upstream streams wait on gevent's loop directly (GeventReadWaiter), and kept-alive
    upstream connections are checked without yielding (UnpatchedPollProbe)."""
    from app import runtime

    runtime.init_worker(read_waiter=GeventReadWaiter, connection_probe=UnpatchedPollProbe())


class UnpatchedPollProbe:
    """Is an idle kept-alive upstream connection readable now (closed by SAP AI Core, or
    unasked bytes)? The ``ConnectionProbe`` of ``app.upstream.client``, asked before each
    reuse.

    urllib3 asks with a zero-timeout ``select.poll``, which gevent patched into a switch
    to its hub: every other ready greenlet (other streams' events, other requests'
    sanitizing) ran before the request was even sent. With 50 Claude Code streams that
    was 15 ms at the median and 43 ms at p90 between the call and SAP AI Core reading its
    first line. The poll gevent left alone answers at once.
    """

    __slots__ = ("_poll", "_readable")

    def __init__(self):
        import select

        from gevent.monkey import get_original

        self._poll = get_original("select", "poll")
        self._readable = select.POLLIN

    def __call__(self, sock):
        poll = self._poll()
        poll.register(sock, self._readable)
        return bool(poll.poll(0))


class GeventReadWaiter:
    """Waits until one upstream socket is readable, for one stream (the ``ReadWaiter`` of
    ``app.upstream.events``), on gevent's event loop itself.

    A gevent socket with a timeout answers each wait with a failed ``recv`` (an
    ``EWOULDBLOCK`` exception), a new ``Timeout`` object and its timer, then a second
    ``recv``. A stream waits once per upstream event, so this keeps one read watcher and
    one timer for the stream's whole life, re-arms the timer with libev's ``again`` and
    wakes the waiting greenlet from either: ``bench.floor`` measured 20-40 µs
    less CPU per event. The socket's ``recv`` that follows does not wait.
    """

    __slots__ = ("_hub", "_new_waiter", "_io", "_timer", "_after")

    def __init__(self, sock):
        from gevent import get_hub
        from gevent.hub import Waiter

        self._hub = get_hub()
        self._new_waiter = Waiter
        self._io = self._hub.loop.io(sock.fileno(), 1)  # 1: readable
        self._timer = None
        self._after = None

    def wait(self, timeout):
        timer = self._timer
        if timeout != self._after:  # the ping interval, mostly: a new timer seldom
            if timer is not None:
                timer.close()
            timer = self._timer = self._hub.loop.timer(timeout, timeout)
            self._after = timeout
        waiter = self._new_waiter(self._hub)
        self._io.start(waiter.switch, True)
        timer.again(waiter.switch, False)
        try:
            return waiter.get()
        finally:
            self._io.stop()
            timer.stop()

    def close(self):
        self._io.close()
        if self._timer is not None:
            self._timer.close()


def worker_int(worker):
    """Ctrl-C / SIGINT: dump stacks to show where a worker was."""
    _dump_stacks(worker)


def worker_abort(worker):
    """SIGABRT after a timeout: dump stacks to diagnose a blocked hub."""
    _dump_stacks(worker)


def worker_exit(server, worker):
    from app import runtime

    runtime.install(None)


def _dump_stacks(worker):
    frames = sys._current_frames()
    for thread_id, frame in frames.items():
        worker.log.warning("stack of thread %s:\n%s", thread_id,
                           "".join(traceback.format_stack(frame)))
