"""Optional daily token budgets per client key label, shared by every gunicorn worker.

Config ``budgets`` maps a key label (or ``*`` for every other key) to tokens per UTC
day; ``null`` exempts a label from ``*``. What counts is what the model processed
fresh: ``input_tokens + cache_creation_input_tokens + output_tokens``. Cache reads
are left out, as in Anthropic's own input-token rate limits, because Claude Code
re-reads its whole cached prompt on every turn at a tenth of the input price.

:func:`check_budget` runs before a request is forwarded and raises
:class:`~app.errors.BudgetExceeded` (429, ``retry-after`` until UTC midnight) once a
label has used its budget; :func:`record_usage` adds a finished request's usage.
The last request of a day may therefore overshoot by its own size.

The counters live in one SQLite file (``budget_store``, default beside the usage
log) in WAL mode with ``synchronous=OFF``: every worker process of the host sees the
same totals, an increment is one atomic ``UPSERT``, a read never waits for a writer,
and nothing is fsynced on the request path (a power cut may lose the last counts; a
worker crash loses nothing). It needs no server. Several hosts do not share it.
With no budgets configured both functions return at their first line, and the
file is never created. A broken store fails open with a WARNING: budgets are
accounting, not a security boundary. The clock is injected. No Flask here.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from typing import Callable, Mapping

from app.config import Settings
from app.errors import BudgetExceeded

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400
KEEP_DAYS = 40  # rows older than this are deleted when a worker opens the store
# SQLite waits for a busy lock in C, holding the whole gevent worker: keep it short (a
# counter update takes microseconds; a lost increment is only logged).
BUSY_TIMEOUT_SECONDS = 0.25
WARN_EVERY_SECONDS = 60.0

Clock = Callable[[], float]


def counted_tokens(usage: Mapping[str, int]) -> int:
    """The tokens a request draws from its label's budget (see the module docstring)."""
    return sum(int(usage.get(name) or 0) for name in
               ("input_tokens", "cache_creation_input_tokens", "output_tokens"))


def limit_for(budgets: Mapping[str, int | None], label: str) -> int | None:
    """The label's daily budget: its own entry (``None`` = unlimited), else ``*``."""
    if label in budgets:
        return budgets[label]
    return budgets.get("*")


def utc_day(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def seconds_until_reset(now: float) -> int:
    """Whole seconds until the next UTC midnight (at least 1)."""
    return max(1, math.ceil(DAY_SECONDS - now % DAY_SECONDS))


class BudgetStore:
    """The per-day, per-label token counters in one SQLite file (opened lazily)."""

    def __init__(self, path: str, clock: Clock = time.time) -> None:
        self.path = path
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def used(self, label: str, day: str) -> int:
        with self._lock:
            row = self._connection().execute(
                "SELECT tokens FROM usage WHERE day = ? AND label = ?", (day, label)).fetchone()
        return int(row[0]) if row else 0

    def add(self, label: str, day: str, tokens: int) -> None:
        with self._lock:
            self._connection().execute(
                "INSERT INTO usage (day, label, tokens) VALUES (?, ?, ?) "
                "ON CONFLICT (day, label) DO UPDATE SET tokens = tokens + excluded.tokens",
                (day, label, tokens))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            # autocommit (isolation_level=None): every statement is its own transaction
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("CREATE TABLE IF NOT EXISTS usage (day TEXT NOT NULL, "
                         "label TEXT NOT NULL, tokens INTEGER NOT NULL, "
                         "PRIMARY KEY (day, label)) WITHOUT ROWID")
            oldest = utc_day(self._clock() - KEEP_DAYS * DAY_SECONDS)
            conn.execute("DELETE FROM usage WHERE day < ?", (oldest,))
            self._conn = conn
        return self._conn


# One store per file per process; a forked worker opens its own connection.
_stores: dict[tuple[int, str], BudgetStore] = {}
_stores_lock = threading.Lock()
_last_warning: list[float | None] = [None]


def store_for(path: str) -> BudgetStore:
    key = (os.getpid(), path)
    store = _stores.get(key)
    if store is None:
        with _stores_lock:
            store = _stores.setdefault(key, BudgetStore(path))
    return store


def check_budget(label: str, settings: Settings, *, clock: Clock = time.time) -> None:
    """Raise :class:`BudgetExceeded` if ``label`` used its budget for today (UTC)."""
    if not settings.budgets:
        return
    limit = limit_for(settings.budgets, label)
    if limit is None:
        return
    now = clock()
    try:
        used = store_for(settings.budget_store).used(label, utc_day(now))
    except (sqlite3.Error, OSError) as exc:
        _warn("cannot read the budget store %s (%s); letting the request through",
              settings.budget_store, exc)
        return
    if used >= limit:
        wait = seconds_until_reset(now)
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + wait))
        raise BudgetExceeded(
            f"daily token budget of client key '{label}' is used up: {used:,} of {limit:,} "
            f"tokens today (UTC); it resets at {reset} (in {wait // 3600} h "
            f"{wait % 3600 // 60:02d} min)", retry_after=wait)


def record_usage(label: str, usage: Mapping[str, int] | None,
                 settings: Settings | None = None, *, clock: Clock = time.time) -> None:
    """Add a finished request's usage to its label's counter for today (UTC).

    Call once per request when it ends, with the usage dict of the request log
    (``input_tokens``, ``output_tokens``, ``cache_read_input_tokens``,
    ``cache_creation_input_tokens``). ``settings`` defaults to those of this
    process's runtime; without one (a bare unit test) nothing is recorded.
    """
    if not usage:
        return
    if settings is None:
        from app import runtime  # here, not at import: runtime imports the logging module

        rt = runtime.installed()
        if rt is None:
            return
        settings = rt.settings
    if not settings.budgets or limit_for(settings.budgets, label) is None:
        return
    tokens = counted_tokens(usage)
    if tokens <= 0:
        return
    try:
        store_for(settings.budget_store).add(label, utc_day(clock()), tokens)
    except (sqlite3.Error, OSError) as exc:
        _warn("cannot update the budget store %s (%s); %d tokens of '%s' not counted",
              settings.budget_store, exc, tokens, label)


def _warn(message: str, *args: object) -> None:
    """A WARNING at most once a minute per worker: a broken store must not flood the log."""
    now = time.monotonic()
    last = _last_warning[0]
    if last is None or now - last >= WARN_EVERY_SECONDS:
        _last_warning[0] = now
        log.warning(message, *args)
