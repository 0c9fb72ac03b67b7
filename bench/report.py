"""Markdown tables of benchmark results."""

from __future__ import annotations

from typing import Any, Iterable, Optional


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def signed(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def table(headers: list[str], rows: Iterable[list[str]]) -> str:
    rows = list(rows)
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


CELL_HEADERS = [
    "profile", "scenario", "c",
    "direct p50", "gw p50", "added p50", "direct p99", "gw p99", "added p99",
    "added TTFB p50", "added 1st event p50", "added 1st event p99",
    "direct req/s", "gw req/s", "gw/direct", "errors d/g",
    "gw CPU ms/req", "gw peak RSS MB", "conns/worker", "LG CPU %", "fake late p50 d/g",
]


def cell_row(cell: dict) -> list[str]:
    if cell.get("skipped"):
        return [cell["profile"], cell["scenario"], str(cell["concurrency"]),
                f"skipped: {cell['skipped']}"] + [""] * (len(CELL_HEADERS) - 4)
    d, g, a = cell["direct"], cell["gateway"], cell["added"]
    has_direct = d is not None
    return [
        cell["profile"], cell["scenario"], str(cell["concurrency"]),
        fmt(d["p50_ms"]) if has_direct else "-", fmt(g["p50_ms"]), signed(a.get("p50_ms")),
        fmt(d["p99_ms"]) if has_direct else "-", fmt(g["p99_ms"]), signed(a.get("p99_ms")),
        signed(a.get("ttfb_p50_ms")), signed(a.get("tfce_p50_ms")), signed(a.get("tfce_p99_ms")),
        fmt(d["rps"], 0) if has_direct else "-", fmt(g["rps"], 0), fmt(cell.get("rps_ratio")),
        f"{d['errors'] if has_direct else '-'}/{g['errors']}",
        fmt(g.get("cpu_ms_per_req")), fmt(g.get("rss_peak_mb"), 0),
        "/".join(map(str, cell.get("gw_connections_per_worker") or [])) or "-",
        fmt(cell.get("lg_cpu_pct_max"), 0),
        _lateness(d, g) if has_direct else "-",
    ]


def _lateness(direct: dict, gateway: dict) -> str:
    """The fake's own lateness at its last event, direct/gateway rounds (ms); ``-`` for
    answers that are not paced streams."""
    d, g = direct.get("fake_late_last_p50_ms"), gateway.get("fake_late_last_p50_ms")
    return "-" if d is None or g is None else f"{d:.1f}/{g:.1f}"


def cells_table(cells: list[dict]) -> str:
    return table(CELL_HEADERS, (cell_row(c) for c in cells))


def targets_table(targets: list[dict]) -> str:
    rows = []
    for t in targets:
        status = {True: "PASS", False: "FAIL", None: "not measured"}[t.get("pass")]
        rows.append([t["target"], t.get("measured", "-"), status])
    return table(["target", "measured", "result"], rows)
