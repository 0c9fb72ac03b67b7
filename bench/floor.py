"""The floor under the gateway's CPU per relayed event: a bare relay loop on this machine.

    .venv/bin/python -m bench.floor                       # 2,000 events 5 ms apart, about 35 s
    .venv/bin/python -m bench.floor --events 500 --interval 0.01

A streamed answer whose events arrive one by one (the ``llm`` profile of ``bench.run``: 25 events
5 ms apart) costs the gateway one wake-up, one upstream read and one client write per event,
whatever it does with the bytes. This measures what exactly that costs here, without the
gateway: a sender process writes small SSE-sized events over loopback TCP at a steady pace; the
relay reads each one and writes it on to a sink over a second connection, and its CPU time
(user + system, ``os.times``) per event is reported for three relays:

* ``blocking``: plain blocking sockets, one thread (what no gevent at all would cost);
* ``gevent``: the same loop under gevent's monkey-patching (one greenlet, the hub waits);
* ``gevent+timeout``: the same with a read timeout on every wait, as the gateway needs one to
  send keep-alive pings during silences;
* ``gevent+waiter``: the gevent workers' own way: each wait through ``GeventReadWaiter``
  (``gunicorn.conf.py``: one watcher and one timer for the stream, re-armed per wait), then a
  ``recv`` that finds the bytes there.

Each relay runs in its own fresh process (gevent's patching cannot be undone). Loopback only;
bounded by ``--events`` and a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import socket
import subprocess
import sys

MODES = ("blocking", "gevent", "gevent+timeout", "gevent+waiter")
EVENT = b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}\n\n'


def relay(mode: str, events: int, interval: float) -> dict:
    """Run in a child process: the relay (measured here) between a helper process's sender
    and sink, so only the relay's work is in this process's CPU times."""
    if mode.startswith("gevent"):
        from gevent import monkey

        monkey.patch_all()
    listener = socket.create_server(("127.0.0.1", 0))
    sink_listener = socket.create_server(("127.0.0.1", 0))
    helper = subprocess.Popen([sys.executable, "-c", _HELPER, str(listener.getsockname()[1]),
                               str(sink_listener.getsockname()[1]), str(events), str(interval),
                               EVENT.decode()])
    upstream, _ = listener.accept()
    client, _ = sink_listener.accept()
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wait = None
    if mode == "gevent+timeout":
        upstream.settimeout(10.0)
    elif mode == "gevent+waiter":
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        wait = runpy.run_path(os.path.join(root, "gunicorn.conf.py"))["GeventReadWaiter"](
            upstream).wait
    reads = 0
    t0 = os.times()
    while True:
        if wait is not None and not wait(10.0):
            continue
        data = upstream.recv(65536)
        if not data:
            break
        client.sendall(data)
        reads += 1
    t1 = os.times()
    client.close()
    helper.wait(timeout=30)
    user, system = t1.user - t0.user, t1.system - t0.system
    return {"mode": mode, "events": events, "reads": reads,
            "cpu_us_per_event": round((user + system) / events * 1e6, 1),
            "user_us_per_event": round(user / events * 1e6, 1),
            "system_us_per_event": round(system / events * 1e6, 1)}


#: The helper process: a paced sender thread and a sink thread, plain blocking sockets.
_HELPER = """
import socket, sys, threading, time
port, sink_port, events, interval = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
event = sys.argv[5].encode()
def sink():
    conn = socket.create_connection(("127.0.0.1", sink_port))
    while conn.recv(65536):
        pass
threading.Thread(target=sink).start()
out = socket.create_connection(("127.0.0.1", port))
out.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
next_at = time.monotonic()
for _ in range(events):
    next_at += interval
    time.sleep(max(0.0, next_at - time.monotonic()))
    out.sendall(event)
out.close()
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--interval", type=float, default=0.005, help="seconds between events")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(relay(args.child, args.events, args.interval)))
        return 0
    limit = args.events * args.interval * 3 + 30
    rows = []
    for mode in MODES:
        done = subprocess.run([sys.executable, "-m", "bench.floor", "--child", mode, "--events",
                               str(args.events), "--interval", str(args.interval)],
                              capture_output=True, text=True, timeout=limit)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"relay of {args.events} events, {args.interval * 1000:g} ms apart, over loopback TCP "
          "(CPU of the relay process only)\n")
    print("| relay | CPU µs per event | user | system |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['mode']} | {r['cpu_us_per_event']} | {r['user_us_per_event']} | "
              f"{r['system_us_per_event']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
