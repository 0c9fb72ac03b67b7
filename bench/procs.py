"""Child processes of the benchmarks (fake SAP AI Core, gunicorn) and /proc measurements.

Works the same with or without gevent's monkey-patching (the load generators patch first;
``bench.count_tokens`` does not). Every child is started in its own session with a
parent-death signal, recorded, and ended at exit (``atexit``) by its own process group id.
"""

from __future__ import annotations

import atexit
import ctypes
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
GATEWAY_KEY = "bench-client-key"
SONNET = "anthropic--claude-4.5-sonnet"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# ------------------------------------------------------------------------------ children

_children: list[subprocess.Popen] = []
_children_lock = threading.Lock()


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: end with us even if we are SIGKILLed
    except OSError:
        pass


def spawn(cmd: list[str], env: dict, log_path: Path, stdout_path: Path | None = None,
          cwd: Path = ROOT) -> subprocess.Popen:
    """Start ``cmd`` from ``cwd`` (the repo root) in its own session; stderr (and stdout) to files."""
    err = open(log_path, "ab")
    out = open(stdout_path, "wb") if stdout_path else err
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True, preexec_fn=_set_pdeathsig)
    finally:
        err.close()
        if stdout_path:
            out.close()
    with _children_lock:
        _children.append(proc)
    return proc


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it after ``grace`` seconds."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    _signal_group(proc, signal.SIGKILL)  # stragglers of the group (workers), if any
    if proc.poll() is None:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
    with _children_lock:
        if proc in _children:
            _children.remove(proc)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group id is the child's pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    with _children_lock:
        procs = list(_children)
    for proc in procs:
        stop(proc, grace=5.0)


atexit.register(stop_all)


def install_signal_exit() -> None:
    """SIGTERM/SIGHUP end the benchmark through ``sys.exit`` so ``finally``/atexit run."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards ``wanted`` (children inherit it); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def workdir(prefix: str = "gateway-bench-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


# ------------------------------------------------------------------------------ control-plane HTTP


def http_call(url: str, method: str = "GET", body: bytes | None = None,
              headers: dict | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                     headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_json(url: str, method: str = "GET", body: bytes | None = None,
              headers: dict | None = None) -> dict:
    status, data = http_call(url, method, body, headers)
    if status != 200:
        raise RuntimeError(f"{method} {url} answered {status}: {data[:200]!r}")
    return json.loads(data)


# ------------------------------------------------------------------------------ fake and gateway


@dataclass
class Fake:
    proc: subprocess.Popen | None
    url: str
    key_path: Path
    deployment_url: str
    log_path: Path | None = None
    external_pid: int | None = None  # a fake we did not start (found by its listening port)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else self.external_pid

    def service_key(self) -> dict:
        return json.loads(self.key_path.read_text())

    def stats(self) -> dict | None:
        """The bench fake's counters, or None when the fake is the plain test CLI."""
        try:
            status, data = http_call(self.url + "/bench/stats", timeout=5)
        except OSError:
            return None
        return json.loads(data) if status == 200 else None

    def lateness(self) -> dict | None:
        """How late the streams ended since the last call left the fake (``/bench/lateness``),
        then forgotten; None when the fake has no such route."""
        try:
            status, data = http_call(self.url + "/bench/lateness", timeout=5)
        except OSError:
            return None
        return json.loads(data) if status == 200 else None

    def last_body(self, suffix: str) -> bytes | None:
        status, data = http_call(f"{self.url}/bench/last-body?suffix={suffix}", timeout=5)
        return data if status == 200 else None

    def token(self) -> str:
        """A bearer token from the fake's XSUAA endpoint (client credentials)."""
        import base64

        key = self.service_key()
        basic = base64.b64encode(f"{key['clientid']}:{key['clientsecret']}".encode()).decode()
        data = http_json(key["url"].rstrip("/") + "/oauth/token", "POST",
                         b"grant_type=client_credentials",
                         {"Authorization": "Basic " + basic,
                          "Content-Type": "application/x-www-form-urlencoded"})
        return data["access_token"]


def start_fake(wd: Path, *, ttft: float = 0.0, chunks: int = 4, interval: float = 0.0,
               token_ttl: int = 43199, token_delay: float = 0.0, model: str = SONNET,
               timeout: float = 20.0) -> Fake:
    """``python -m bench.fake`` on a free loopback port; waits for ``READY``."""
    key_path, out_path, log_path = wd / "fake-key.json", wd / "fake.out", wd / "fake.log"
    cmd = [PYTHON, "-m", "bench.fake", "--port", "0", "--models", model, "--no-strict",
           "--first-token-delay", str(ttft), "--chunks", str(chunks), "--interval", str(interval),
           "--token-ttl", str(token_ttl), "--token-delay", str(token_delay),
           "--write-key", str(key_path)]
    proc = spawn(cmd, {**os.environ, "PYTHONUNBUFFERED": "1"}, log_path, out_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = out_path.read_text() if out_path.exists() else ""
        if "READY " in text:
            url = text.split("READY ", 1)[1].split()[0]
            from app.simulator import deployment_id_for

            return Fake(proc, url, key_path, f"{url}/v2/inference/deployments/{deployment_id_for(model)}",
                        log_path)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError("the fake SAP AI Core did not start:\n" + log_path.read_text(errors="replace")[-3000:])


@dataclass
class Gateway:
    proc: subprocess.Popen | None
    url: str
    pid: int | None  # the gunicorn master (root of the measured tree), if known
    log_path: Path | None = None
    workers: int = 0
    env: dict = field(default_factory=dict)

    def log_tail(self, n: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-n:]

    def log_counts(self) -> dict:
        """WARNING/ERROR lines in the gateway's log (its one-per-request INFO lines excluded)."""
        counts = {"WARNING": 0, "ERROR": 0, "CRITICAL": 0}
        first: dict[str, str] = {}
        if self.log_path is None or not self.log_path.exists():
            return {"counts": counts, "first": first}
        with open(self.log_path, errors="replace") as f:
            for line in f:
                for level in counts:
                    if f" {level} " in line:
                        counts[level] += 1
                        first.setdefault(level, line.strip()[:300])
        return {"counts": counts, "first": first}


def gateway_config(fake: Fake, wd: Path, extra: dict | None = None) -> Path:
    key_path = wd / "sub1-key.json"
    key_path.write_text(fake.key_path.read_text())
    config = {
        "subAccounts": {"sub1": {"resource_group": "default", "service_key_json": key_path.name,
                                 "deployment_models": {SONNET: [fake.deployment_url]}}},
        "secret_authentication_tokens": [{"key": GATEWAY_KEY, "label": "bench"}],
    }
    config.update(extra or {})
    path = wd / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def start_gateway(fake: Fake, wd: Path, *, workers: int = 2, env: dict | None = None,
                  config_extra: dict | None = None, timeout: float = 30.0,
                  root: Path = ROOT) -> Gateway:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` from ``root`` (this checkout, or another
    revision's), with gevent workers, on loopback."""
    port = free_port()
    config_path = gateway_config(fake, wd, config_extra)
    log_path = wd / "gateway.log"
    full_env = {**os.environ, "CONFIG_PATH": str(config_path), "GATEWAY_BIND": f"127.0.0.1:{port}",
                "WEB_CONCURRENCY": str(workers), "TOKEN_USAGE_LOG": str(wd / "usage.log"),
                "GRACEFUL_TIMEOUT": "5", **(env or {})}
    full_env.pop("PORT", None)  # PORT would bind 0.0.0.0
    if "GUNICORN_CMD_ARGS" not in (env or {}):
        full_env.pop("GUNICORN_CMD_ARGS", None)
    proc = spawn([PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], full_env, log_path,
                 cwd=root)
    gw = Gateway(proc, f"http://127.0.0.1:{port}", proc.pid, log_path, workers,
                 {k: full_env[k] for k in ("WEB_CONCURRENCY", "GRACEFUL_TIMEOUT") if k in full_env})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited:\n" + gw.log_tail())
        try:
            if http_call(gw.url + "/health", timeout=1)[0] == 200 and _workers_up(proc.pid, workers):
                # /health answers as soon as one worker is up; wait for all of them to finish
                # importing (the tree's CPU time stops moving) so none misses the first burst.
                wait_quiet(proc.pid, deadline=deadline)
                return gw
        except OSError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError("gunicorn did not become healthy:\n" + gw.log_tail())


def wait_quiet(root: int, quiet: float = 0.3, deadline: float | None = None) -> None:
    """Wait until ``root``'s tree used (almost) no CPU for ``quiet`` seconds."""
    deadline = deadline or time.monotonic() + 15
    last = tree_cpu(root)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = tree_cpu(root)
        if now - last <= 0.02:
            return
        last = now


def _workers_up(master: int, workers: int) -> bool:
    return len(tree_pids(master)) >= workers + 1


def find_listener_pid(port: int) -> int | None:
    """The pid of the process tree root listening on 127.0.0.1:``port`` (for ``--gateway-url``).

    gunicorn's master and its workers share the listening socket; the root is the one
    whose parent does not hold it.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(cols[9])
    if not inodes:
        return None
    holders = set()
    for pid in _all_pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    holders.add(pid)
                    break
        except OSError:
            continue
    if not holders:
        return None
    parents = {pid: (_stat(pid) or {}).get("ppid") for pid in holders}
    roots = [pid for pid in holders if parents[pid] not in holders]
    return min(roots) if roots else min(holders)


# ------------------------------------------------------------------------------ /proc


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int) -> dict | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return {"ppid": int(rest[1]), "utime": int(rest[11]), "stime": int(rest[12]),
            "cutime": int(rest[13]), "cstime": int(rest[14])}


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (walking /proc/*/stat by ppid)."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        st = _stat(pid)
        if st is not None:
            children.setdefault(st["ppid"], []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if os.path.exists(f"/proc/{pid}"):
            out.append(pid)
            todo.extend(children.get(pid, ()))
    return out


def tree_cpu(root: int) -> float:
    """CPU seconds (user+system) of the tree: every process, plus reaped children of the root."""
    total = 0
    for pid in tree_pids(root):
        st = _stat(pid)
        if st is None:
            continue
        total += st["utime"] + st["stime"]
        if pid == root:
            total += st["cutime"] + st["cstime"]  # workers that exited and were reaped
    return total / CLK_TCK


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeSampler:
    """Samples a process tree's total RSS (and PSS) every ``period`` s in the background.

    Under gevent the thread is a greenlet. ``peak()`` returns the peaks since the last
    ``reset()``, in MB. The tree's member list is refreshed every second.
    """

    def __init__(self, root: int | None, period: float = 0.1) -> None:
        self.root = root
        self.period = period
        self._pids: list[int] = []
        self._pids_at = 0.0
        self.rss_peak = 0
        self.pss_peak = 0
        self.rss_last = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "TreeSampler":
        if self.root is not None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
            self._thread.start()
        return self

    def sample(self) -> None:
        if self.root is None:
            return
        now = time.monotonic()
        if now - self._pids_at > 1.0:
            self._pids = tree_pids(self.root)
            self._pids_at = now
        rss = sum(rss_kb(p) for p in self._pids)
        pss = sum(pss_kb(p) for p in self._pids)
        self.rss_last = rss
        self.rss_peak = max(self.rss_peak, rss)
        self.pss_peak = max(self.pss_peak, pss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period)

    def reset(self) -> None:
        self.sample()
        self.rss_peak = self.rss_last
        self.pss_peak = 0
        self.sample()

    def peak(self) -> dict:
        self.sample()
        return {"rss_peak_mb": round(self.rss_peak / 1024, 1), "pss_peak_mb": round(self.pss_peak / 1024, 1)}

    def stop(self) -> None:
        self._stop.set()


def connections_per_process(root: int, port: int) -> dict[int, int]:
    """Established TCP connections on local ``port`` held by each process of ``root``'s tree
    (e.g. how gunicorn's workers shared the clients)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "01" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # ESTABLISHED
                inodes.add(cols[9])
    out: dict[int, int] = {}
    for pid in tree_pids(root):
        n = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    n += 1
        except OSError:
            continue
        if pid != root or n:
            out[pid] = n
    return out
