"""After the whole suite: grep everything the gateway wrote for secrets.

The suite's conftest installs :class:`GatewayLogCollector` on the gateway's loggers when the
session starts (in-process apps of the route tests) and, when it ends, scans those records plus
every log file the real servers wrote under pytest's temporary directory (gunicorn output, usage
logs) for

* every secret the tests handed to a gateway: client keys and client secrets found in the
  config and service-key files under the temporary directory, and the fixed ones below;
* the shapes of secrets whatever their value: the simulator's and the `responses` fakes'
  OAuth tokens (``tok-<n>``), ``Bearer``/``Basic`` credentials.

Secrets shorter than :data:`MIN_SECRET_LENGTH` are skipped: keys like ``"k"`` appear in any
text. A leak fails the session; the report names the file and a masked secret only.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Iterable, Iterator

MIN_SECRET_LENGTH = 6

# Secrets the tests pass in code rather than in files: the simulator's default client
# secret, the route tests' key and client secret (tests/http_fakes.py), the e2e key.
FIXED_SECRETS = ("s3cr3t", "test-client-key-1", "s3cr3t-value", "e2e-client-key")

SECRET_SHAPES = {
    "OAuth token": re.compile(r"\btok-\d+\b"),
    "Bearer credential": re.compile(r"\bBearer\s+(?!<)[A-Za-z0-9._~+/=-]{4,}"),
    "Basic credential": re.compile(r"\bBasic\s+[A-Za-z0-9+/]{8,}={0,2}"),
}

# Loggers the gateway writes to (app.* modules, the request and usage lines).
GATEWAY_LOGGERS = ("app", "gateway", "gateway.access", "gateway.usage")
LOG_FILE_GLOBS = ("*.log", "*.log.*", "*.out", "*.err")


class GatewayLogCollector(logging.Handler):
    """Keeps every formatted record of the gateway's loggers (message and traceback)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot format is reported as such
            self.lines.append(f"{record.name} unformattable record {record.msg!r}")

    def install(self) -> None:
        """Attach to the gateway's loggers; unset levels become INFO, the production level,
        so the request and usage lines of in-process apps are written (and scanned) too."""
        self._levels = {}
        for name in GATEWAY_LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(self)
            if logger.level == logging.NOTSET:
                self._levels[name] = logger.level
                logger.setLevel(logging.INFO)

    def uninstall(self) -> None:
        for name in GATEWAY_LOGGERS:
            logging.getLogger(name).removeHandler(self)
        for name, level in getattr(self, "_levels", {}).items():
            logging.getLogger(name).setLevel(level)


def secrets_in_files(root: Path) -> set[str]:
    """Client keys and client secrets in the JSON files tests wrote under ``root``."""
    found: set[str] = set()
    for path in root.rglob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        found.update(_secret_values(data))
    return {s for s in found if len(s) >= MIN_SECRET_LENGTH}


def _secret_values(data: object) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("clientsecret", "client_secret") and isinstance(value, str):
                yield value
            elif key == "secret_authentication_tokens" and isinstance(value, list):
                for entry in value:
                    if isinstance(entry, str):
                        yield entry
                    elif isinstance(entry, dict) and isinstance(entry.get("key"), str):
                        yield entry["key"]
            else:
                yield from _secret_values(value)
    elif isinstance(data, list):
        for item in data:
            yield from _secret_values(item)


def gateway_log_files(root: Path) -> list[Path]:
    files = {p for pattern in LOG_FILE_GLOBS for p in root.rglob(pattern) if p.is_file()}
    return sorted(files)


def mask(secret: str) -> str:
    return f"{secret[:3]}…({len(secret)} chars)"


def find_leaks(texts: Iterable[tuple[str, str]], secrets: Iterable[str]) -> list[str]:
    """``"<where>: <what>"`` for every secret or secret-shaped string found in the texts."""
    secrets = sorted(set(secrets), key=len, reverse=True)
    leaks = []
    for where, text in texts:
        for secret in secrets:
            if secret in text:
                leaks.append(f"{where}: secret {mask(secret)}")
        for name, shape in SECRET_SHAPES.items():
            match = shape.search(text)
            if match:
                leaks.append(f"{where}: {name} {mask(match.group(0))}")
    return leaks


def scan(root: Path, collector: GatewayLogCollector) -> tuple[list[str], int]:
    """Leaks under ``root`` and in the collected records; also how many texts were read."""
    texts = [("in-process gateway logs", "\n".join(collector.lines))]
    for path in gateway_log_files(root):
        texts.append((str(path.relative_to(root)), path.read_text(encoding="utf-8", errors="replace")))
    secrets = secrets_in_files(root) | set(FIXED_SECRETS)
    return find_leaks(texts, secrets), len(texts)
