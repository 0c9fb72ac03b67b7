"""nginx in front of the real gunicorn, running the directives shipped in ``deploy/``.

* ``deploy/nginx.conf`` as shipped (only the certificate paths swapped for a throwaway
  self-signed pair) passes ``nginx -t``;
* a plain-HTTP server on 127.0.0.1 made of the shipped ``upstream`` block (gunicorn's port
  swapped in) and the shipped location file, included unchanged, relays a slow stream from
  the fake SAP AI Core event by event, not at the end;
* with ``trusted_proxies`` = nginx's address (127.0.0.1) and a "load balancer" (127.0.0.3),
  the gateway takes the client address from nginx's ``X-Forwarded-For`` chain: a client
  (127.0.0.2) cannot spoof it, through nginx or directly, and a trusted hop's claim is kept.
  What the gateway saw is read from gunicorn's access log (turned on for this test only),
  whose ``%(h)s`` is the WSGI ``REMOTE_ADDR`` the app had after the middleware.

nginx is the Debian package: if it is missing, the setup installs it when running as root
with apt-get, else the module is skipped. Its pid, logs and temp files live in tmp_path;
/etc/nginx is never read or written. Every wait is bounded.
"""

from __future__ import annotations

import http.client
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import GATEWAY_KEY, ROOT, Gateway, free_port, gateway_config

pytestmark = pytest.mark.e2e

SITE = ROOT / "deploy" / "nginx.conf"
LOCATION = ROOT / "deploy" / "nginx-gateway-location.conf"
LOCATION_INCLUDE = "snippets/aicore-gateway-location.conf"  # as nginx.conf includes it
CERT = "/etc/ssl/certs/gateway.example.com.fullchain.pem"
CERT_KEY = "/etc/ssl/private/gateway.example.com.key"
CLIENT = "127.0.0.2"       # an ordinary client: not trusted
BALANCER = "127.0.0.3"     # a load balancer in front of nginx: trusted
ACCESS_FORMAT = ("access remote=%(h)s scheme=%({wsgi.url_scheme}e)s "
                 "xff=[%({x-forwarded-for}i)s] query=%(q)s")
STREAM_INTERVAL = 0.3


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


@pytest.fixture(scope="module")
def nginx_bin() -> str:
    binary = find_nginx()
    if binary is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        proc = subprocess.run(["apt-get", "install", "-y", "-q", "nginx"], capture_output=True,
                              text=True, timeout=300, env=env)
        if proc.returncode != 0:  # a fresh machine has no package lists yet
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=300,
                           env=env)
            proc = subprocess.run(["apt-get", "install", "-y", "-q", "nginx"],
                                  capture_output=True, text=True, timeout=300, env=env)
        binary = find_nginx()
        if binary is None:
            pytest.skip("nginx is not installed and `apt-get install -y nginx` failed: "
                        + (proc.stderr or proc.stdout)[-300:])
    if binary is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx); "
                    "not root or no apt-get, so the test cannot install it")
    return binary


def prefix_dir(base: Path) -> Path:
    """nginx's prefix: the shipped location file where nginx.conf's include expects it."""
    (base / "snippets").mkdir(parents=True)
    (base / LOCATION_INCLUDE).symlink_to(LOCATION)
    return base


def main_conf(prefix: Path, http_body: str) -> Path:
    """A whole nginx.conf whose pid, logs and temp files are all under ``prefix``."""
    # As root the workers would switch to "nobody"; keep them the current user.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "".join(f"    {kind}_temp_path {prefix / (kind + '_temp')};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n    access_log {prefix / 'access.log'};\n{temp}{http_body}\n}}\n")
    return conf


def nginx_cmd(binary: str, conf: Path, *extra: str) -> list[str]:
    prefix = conf.parent
    return [binary, "-p", f"{prefix}/", "-e", str(prefix / "error.log"), "-c", str(conf), *extra]


def shipped_upstream(gateway_port: int) -> str:
    """The ``upstream`` block of deploy/nginx.conf, pointed at the test's gunicorn."""
    match = re.search(r"^upstream aicore_gateway \{\n.*?^\}\n", SITE.read_text(), re.S | re.M)
    assert match, "deploy/nginx.conf has no `upstream aicore_gateway { ... }` block"
    block, count = re.subn(r"server 127\.0\.0\.1:3001;", f"server 127.0.0.1:{gateway_port};",
                           match.group(0))
    assert count == 1, block
    return block


class Nginx:
    """``nginx -g 'daemon off;'`` on 127.0.0.1:<free port>, stopped by :meth:`stop`."""

    def __init__(self, binary: str, prefix: Path, gateway_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        server = (f"    server {{\n        listen 127.0.0.1:{self.port};\n"
                  f"        server_name localhost;\n        include {LOCATION_INCLUDE};\n    }}\n")
        self.conf = main_conf(prefix, shipped_upstream(gateway_port) + server)
        self.log = open(prefix / "nginx.out", "wb")
        self.proc = subprocess.Popen(nginx_cmd(binary, self.conf, "-g", "daemon off;"),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_listening(10.0)

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                pytest.fail("nginx exited:\n" + self.errors())
            try:
                http.client.HTTPConnection("127.0.0.1", self.port, timeout=1).connect()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail("nginx did not listen:\n" + self.errors())

    def errors(self) -> str:
        files = [self.conf.parent / "error.log", self.conf.parent / "nginx.out"]
        return "\n".join(f.read_text(errors="replace") for f in files if f.exists())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nginx's fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture(scope="module")
def proxied_gateway(fake, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gateway-behind-nginx")
    config = gateway_config(fake, workdir, trusted_proxies=["127.0.0.1", BALANCER])
    server = Gateway(config, workdir, workers=1, env={
        "GUNICORN_CMD_ARGS": f"--access-logfile - --access-logformat '{ACCESS_FORMAT}'"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def front(nginx_bin, proxied_gateway, tmp_path_factory):
    server = Nginx(nginx_bin, prefix_dir(tmp_path_factory.mktemp("nginx")), proxied_gateway.port)
    yield server
    server.stop()


# ----------------------------------------------------------------------------- the shipped file


def test_shipped_site_config_passes_nginx_t(nginx_bin, tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a throwaway certificate")
    prefix = prefix_dir(tmp_path)
    cert, key = prefix / "cert.pem", prefix / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=gateway.example.com", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    site = SITE.read_text()
    assert site.count(CERT) == 1 and site.count(CERT_KEY) == 1
    (prefix / "site.conf").write_text(site.replace(CERT, str(cert)).replace(CERT_KEY, str(key)))
    conf = main_conf(prefix, f"    include {prefix / 'site.conf'};\n")
    proc = subprocess.run(nginx_cmd(nginx_bin, conf, "-t"), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "syntax is ok" in proc.stderr and "test is successful" in proc.stderr


# ----------------------------------------------------------------------------- streaming


def test_stream_events_arrive_through_nginx_as_they_are_produced(front, fake):
    fake.stream_interval, fake.stream_event_count = STREAM_INTERVAL, 4
    try:
        started = time.monotonic()
        arrivals: list[tuple[str, float]] = []
        pending = b""
        with requests.post(front.url + "/v1/messages", stream=True, timeout=(5, 30),
                           headers={"x-api-key": GATEWAY_KEY, "Connection": "close"},
                           json={"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                                 "messages": [{"role": "user", "content": "hi"}]}) as resp:
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"].startswith("text/event-stream")
            for chunk in resp.iter_content(chunk_size=None):
                now = time.monotonic() - started
                *lines, pending = (pending + chunk).split(b"\n")
                arrivals += [(line[7:].decode(), now) for line in lines if line.startswith(b"event: ")]
    finally:
        fake.stream_interval, fake.stream_event_count = 0.0, 4
    report = ", ".join(f"{name}@{t:.2f}" for name, t in arrivals)
    names = [name for name, _ in arrivals]
    assert names[0] == "message_start" and names[-1] == "message_stop", report
    assert names.count("content_block_delta") == 4, report
    # The fake spaces its 9 events 0.3 s apart (2.4 s in all). Buffered by nginx they would
    # arrive together at the end; relayed, each arrives on its own.
    first_delta = next(t for name, t in arrivals if name == "content_block_delta")
    assert arrivals[-1][1] - first_delta >= 1.2, report
    gaps = [b[1] - a[1] for a, b in zip(arrivals, arrivals[1:])]
    assert sum(gap >= STREAM_INTERVAL / 2 for gap in gaps) >= 6, report
    print("arrivals through nginx:", report)


# ----------------------------------------------------------------------------- forwarded addresses


def get_health(port: int, source: str, query: str, headers: dict) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", "/health?" + query, headers={"Connection": "close", **headers})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        resp.read()
    finally:
        conn.close()


def access_line(gateway: Gateway, query: str, timeout: float = 5.0) -> dict:
    """The gateway's access-log atoms for the request tagged ``query`` (bounded wait)."""
    pattern = re.compile(r"access remote=(\S+) scheme=(\S+) xff=\[(.*?)\] query=" + re.escape(query) + "$",
                         re.M)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = pattern.search(gateway.output())
        if match:
            return {"remote": match[1], "scheme": match[2], "xff": match[3]}
        time.sleep(0.05)
    pytest.fail(f"no access line for {query}:\n" + gateway.output()[-3000:])


@pytest.mark.parametrize("case, source, headers, expected", [
    ("plain", CLIENT, {},
     {"remote": CLIENT, "scheme": "http", "xff": CLIENT}),
    ("spoofed", CLIENT, {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"},
     {"remote": CLIENT, "scheme": "http", "xff": f"6.6.6.6, {CLIENT}"}),
    ("via-balancer", BALANCER, {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"},
     {"remote": "203.0.113.7", "scheme": "http", "xff": f"6.6.6.6, 203.0.113.7, {BALANCER}"}),
])
def test_gateway_sees_the_client_from_nginx_forwarded_chain(front, proxied_gateway, case, source,
                                                            headers, expected):
    get_health(front.port, source, case, headers)
    assert access_line(proxied_gateway, case) == expected


def test_a_client_talking_to_gunicorn_directly_cannot_spoof(proxied_gateway):
    get_health(proxied_gateway.port, CLIENT, "direct",
               {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
    assert access_line(proxied_gateway, "direct") == \
        {"remote": CLIENT, "scheme": "http", "xff": "203.0.113.7"}
