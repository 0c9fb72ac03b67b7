"""``python -m app usage``: tokens and estimated cost per client label, model and day.

Reads the JSON-lines usage log the gateway writes (``token_usage_log``; one object
per request with ``time``, ``key`` (the client key's label), ``model``,
``sap_model``, ``input_tokens``, ``output_tokens``, ``cache_read_input_tokens``,
``cache_creation_input_tokens``), from one file or a glob of rotated ones (``.gz``
too). Lines that are not such objects are skipped, counted and reported on stderr.

Cost = tokens x price per million, with input, output, cache reads and cache
writes priced separately (Anthropic's ``input_tokens`` already excludes both cache
counts). :data:`DEFAULT_PRICES` holds Anthropic's public list prices in USD for the
Claude models SAP AI Core offers: **estimates**, not SAP's invoice (SAP bills in its
own units), and cache writes at the 5-minute rate (1-hour writes cost more; the log
does not tell them apart). The config's ``prices`` key, then a ``--prices`` JSON
file, replace entries per model. Models without a price are reported, not guessed.
Stdlib only; no network.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import gzip
import json
import os
import sys
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import IO, Iterable, Iterator, Mapping

from app.config import PRICE_FIELDS, ConfigError, load_settings, parse_prices

# USD per million tokens: input, output, cache read, cache write (5-minute TTL).
# Anthropic list prices; estimates of what the same traffic costs, not SAP's rates.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    name: dict(zip(PRICE_FIELDS, values)) for name, values in {
        "anthropic--claude-3-haiku": (0.25, 1.25, 0.03, 0.30),
        "anthropic--claude-3.5-sonnet": (3.0, 15.0, 0.30, 3.75),
        "anthropic--claude-3.7-sonnet": (3.0, 15.0, 0.30, 3.75),
        "anthropic--claude-4-sonnet": (3.0, 15.0, 0.30, 3.75),
        "anthropic--claude-4.5-sonnet": (3.0, 15.0, 0.30, 3.75),
        "anthropic--claude-4.6-sonnet": (3.0, 15.0, 0.30, 3.75),
        "anthropic--claude-4.5-haiku": (1.0, 5.0, 0.10, 1.25),
        "anthropic--claude-3-opus": (15.0, 75.0, 1.50, 18.75),
        "anthropic--claude-4-opus": (15.0, 75.0, 1.50, 18.75),
        "anthropic--claude-4.1-opus": (15.0, 75.0, 1.50, 18.75),
        "anthropic--claude-4.5-opus": (5.0, 25.0, 0.50, 6.25),
        "anthropic--claude-4.6-opus": (5.0, 25.0, 0.50, 6.25),
    }.items()
}

DIMENSIONS = ("label", "model", "day")
TOKEN_FIELDS = {"input": "input_tokens", "output": "output_tokens",
                "cache_read": "cache_read_input_tokens",
                "cache_write": "cache_creation_input_tokens"}
MILLION = Decimal(1_000_000)
ESTIMATE_NOTE = ("Costs are estimates from list prices in USD per million tokens "
                 "(python -m app usage --help), not SAP's invoice.")


@dataclass
class Totals:
    requests: int = 0
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0  # requests whose model has no price (not in ``cost``)

    def add(self, tokens: Mapping[str, int], price: Mapping[str, float] | None) -> None:
        self.requests += 1
        for name in TOKEN_FIELDS:
            setattr(self, name, getattr(self, name) + tokens[name])
        if price is None:
            self.unpriced += 1
        else:
            self.cost += sum((Decimal(tokens[n]) * Decimal(str(price[n])) for n in TOKEN_FIELDS),
                             Decimal(0)) / MILLION


@dataclass
class Skipped:
    """Malformed lines per file: how many, and the first one's number."""

    per_file: dict[str, tuple[int, int]] = field(default_factory=dict)

    def note(self, path: str, line_no: int) -> None:
        count, first = self.per_file.get(path, (0, line_no))
        self.per_file[path] = (count + 1, first)

    @property
    def total(self) -> int:
        return sum(count for count, _ in self.per_file.values())


@dataclass(frozen=True)
class Record:
    label: str
    model: str
    day: str
    tokens: Mapping[str, int]


# --------------------------------------------------------------------------- reading


def expand(patterns: Iterable[str]) -> tuple[list[str], list[str]]:
    """(files matched by the paths/globs, patterns that matched nothing)."""
    files: list[str] = []
    unmatched = []
    for pattern in patterns:
        found = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        if not found:
            unmatched.append(pattern)
        files.extend(p for p in found if p not in files)
    return files, unmatched


def read_records(paths: Iterable[str], skipped: Skipped) -> Iterator[Record]:
    for path in paths:
        with _open(path) as lines:
            for line_no, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                record = parse_line(line)
                if record is None:
                    skipped.note(path, line_no)
                else:
                    yield record


def _open(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def parse_line(line: str) -> Record | None:
    """A usage record, or None when the line is not one (malformed)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    stamp = data.get("time")
    if not isinstance(stamp, str):
        return None
    try:
        day = datetime.date.fromisoformat(stamp[:10]).isoformat()
    except ValueError:
        return None
    tokens = {}
    for name, key in TOKEN_FIELDS.items():
        value = data.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return None
        tokens[name] = value
    model = data.get("sap_model")
    if not isinstance(model, str) or model in ("", "-"):
        model = data.get("model") if isinstance(data.get("model"), str) else "-"
    label = data.get("key") if isinstance(data.get("key"), str) else "-"
    return Record(label=label, model=model, day=day, tokens=tokens)


# --------------------------------------------------------------------------- totals


def aggregate(records: Iterable[Record], by: tuple[str, ...],
              prices: Mapping[str, Mapping[str, float]],
              since: str | None = None) -> tuple[dict[tuple[str, ...], Totals], Totals, set[str]]:
    """(totals per group of ``by`` values, grand total, models without a price)."""
    groups: dict[tuple[str, ...], Totals] = {}
    total = Totals()
    unpriced: set[str] = set()
    for record in records:
        if since is not None and record.day < since:
            continue
        price = prices.get(record.model)
        if price is None:
            unpriced.add(record.model)
        key = tuple(getattr(record, dim) for dim in by)
        groups.setdefault(key, Totals()).add(record.tokens, price)
        total.add(record.tokens, price)
    return dict(sorted(groups.items())), total, unpriced


def price_table(config_prices: Mapping[str, Mapping[str, float]],
                file_prices: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Built-in estimates, replaced per model by the config's, then by a --prices file."""
    table = {model: dict(p) for model, p in DEFAULT_PRICES.items()}
    table.update({model: dict(p) for model, p in config_prices.items()})
    table.update({model: dict(p) for model, p in file_prices.items()})
    return table


def load_price_file(path: str) -> dict[str, dict[str, float]]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read prices file ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: invalid JSON in prices file ({exc})") from None
    return parse_prices(raw, f"{path}: prices file")


# --------------------------------------------------------------------------- output


def to_json(groups: Mapping[tuple[str, ...], Totals], total: Totals, by: tuple[str, ...],
            unpriced: set[str], files: list[str], skipped: Skipped) -> dict:
    def row(totals: Totals) -> dict:
        return {"requests": totals.requests, "input_tokens": totals.input,
                "output_tokens": totals.output, "cache_read_input_tokens": totals.cache_read,
                "cache_creation_input_tokens": totals.cache_write,
                "cost_usd": float(money(totals.cost, 6)), "unpriced_requests": totals.unpriced}

    return {"by": list(by),
            "rows": [{**dict(zip(by, key)), **row(t)} for key, t in groups.items()],
            "total": row(total), "unpriced_models": sorted(unpriced), "files": files,
            "skipped_lines": skipped.total, "note": ESTIMATE_NOTE}


def render_table(groups: Mapping[tuple[str, ...], Totals], total: Totals,
                 by: tuple[str, ...]) -> str:
    header = [d.upper() for d in by] + ["REQUESTS", "INPUT", "OUTPUT", "CACHE_READ",
                                        "CACHE_WRITE", "COST_USD"]
    rows = [list(key) + _numbers(t) for key, t in groups.items()]
    rows.append(["TOTAL"] + [""] * (len(by) - 1) + _numbers(total))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = len(by)
    return "\n".join("  ".join(cell.ljust(widths[i]) if i < left else cell.rjust(widths[i])
                               for i, cell in enumerate(r)).rstrip() for r in [header, *rows])


def money(amount: Decimal, places: int) -> Decimal:
    """``amount`` rounded half-up to ``places`` decimals (as invoices round)."""
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _numbers(t: Totals) -> list[str]:
    cost = f"{money(t.cost, 4)}" + ("*" if t.unpriced else "")
    return [f"{t.requests:,}", f"{t.input:,}", f"{t.output:,}", f"{t.cache_read:,}",
            f"{t.cache_write:,}", cost]


# --------------------------------------------------------------------------- command


def add_parser(commands: argparse._SubParsersAction) -> None:
    prices = "\n".join(f"  {m}: " + ", ".join(f"{k} {v:g}" for k, v in p.items())
                       for m, p in DEFAULT_PRICES.items())
    parser = commands.add_parser(
        "usage", help="token usage and estimated cost from the usage log",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Tokens and estimated cost per client key label, model and day, from "
                    "the gateway's JSON-lines usage log.",
        epilog="Built-in prices (USD per million tokens, Anthropic list prices; estimates, "
               "not SAP's invoice):\n" + prices + "\nOverride per model with the config's "
               "'prices' key or --prices FILE: {\"<SAP model>\": {\"input\": 3, \"output\": "
               "15, \"cache_read\": 0.3, \"cache_write\": 3.75}}.")
    parser.add_argument("--log", action="append", metavar="PATH_OR_GLOB",
                        help="usage log file(s); repeatable; quote globs, e.g. "
                             "'logs/token_usage*.log*' (default: the configured "
                             "token_usage_log and its rotated files)")
    parser.add_argument("--since", metavar="DAY", type=_day,
                        help="first UTC day to count (YYYY-MM-DD)")
    parser.add_argument("--by", default="label,model,day", type=_dimensions,
                        help="comma-separated grouping from: label, model, day "
                             "(default: label,model,day)")
    parser.add_argument("--prices", metavar="FILE", help="JSON price table replacing "
                                                         "built-in entries per model")
    parser.add_argument("--config", metavar="PATH",
                        help="configuration file for the 'prices' key and the log path "
                             "(default: $CONFIG_PATH, else ./config.json)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def _day(text: str) -> str:
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"--since: '{text}' is not a day (YYYY-MM-DD)") \
            from None


def _dimensions(text: str) -> tuple[str, ...]:
    dims = tuple(d.strip() for d in text.split(",") if d.strip())
    bad = [d for d in dims if d not in DIMENSIONS]
    if bad or not dims or len(set(dims)) != len(dims):
        raise argparse.ArgumentTypeError(
            f"--by: '{text}' must list some of {', '.join(DIMENSIONS)}, each once")
    return dims


def run(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    env = dict(os.environ)
    if args.config:
        env["CONFIG_PATH"] = args.config
    config_prices: Mapping[str, Mapping[str, float]] = {}
    usage_log = "logs/token_usage.log"
    try:
        settings = load_settings(env)
        config_prices = settings.prices
        if settings.token_usage_log not in ("", "-"):
            usage_log = settings.token_usage_log
    except ConfigError as exc:
        print(f"usage: configuration not loaded, using built-in prices ({exc})", file=err)
    try:
        prices = price_table(config_prices, load_price_file(args.prices) if args.prices else {})
    except ConfigError as exc:
        print(f"usage: {exc}", file=err)
        return 1
    files, unmatched = expand(args.log or [usage_log + "*"])
    for pattern in unmatched:
        print(f"usage: warning: no file matches {pattern}", file=err)
    if not files:
        print("usage: no usage log to read (give --log PATH_OR_GLOB)", file=err)
        return 1
    skipped = Skipped()
    groups, total, unpriced = aggregate(read_records(files, skipped), args.by, prices,
                                        args.since)
    for path, (count, first) in skipped.per_file.items():
        print(f"usage: warning: skipped {count} malformed line(s) in {path} (first: line "
              f"{first})", file=err)
    if args.json:
        json.dump(to_json(groups, total, args.by, unpriced, files, skipped), out, indent=2)
        out.write("\n")
        return 0
    print(render_table(groups, total, args.by), file=out)
    if unpriced:
        print(f"* no price for {', '.join(sorted(unpriced))}: their tokens are counted, "
              "their cost is not (add them with --prices or the config's 'prices')", file=out)
    print(ESTIMATE_NOTE, file=out)
    return 0
