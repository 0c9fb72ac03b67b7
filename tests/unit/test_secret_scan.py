"""The end-of-suite secret scan finds what it must (and only that)."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from tests import secret_scan


def test_finds_keys_and_secrets_from_config_files_in_log_files():
    # Not pytest's tmp_path: the leaks planted here must not fail the real end-of-suite scan.
    with tempfile.TemporaryDirectory() as tmp:
        check_planted_leaks(Path(tmp))


def check_planted_leaks(tmp_path: Path) -> None:
    work = tmp_path / "gateway0"
    work.mkdir()
    (work / "config.json").write_text(json.dumps({
        "subAccounts": {"s": {"service_key_json": {"clientsecret": "very-secret-77"}}},
        "secret_authentication_tokens": ["plain-key-123", {"key": "labelled-key-9", "label": "t"}, "k"],
    }))
    (work / "gunicorn.log").write_text("INFO POST /v1/messages 200 key=t\n")
    (work / "usage.log").write_text('{"key": "labelled-key-9"}\n')
    collector = secret_scan.GatewayLogCollector()
    collector.lines.append("app.claude WARNING upstream said: very-secret-77")

    leaks, read = secret_scan.scan(tmp_path, collector)

    assert read == 3
    assert sorted(leaks) == ["gateway0/usage.log: secret lab…(14 chars)",
                             "in-process gateway logs: secret ver…(14 chars)"]
    assert secret_scan.secrets_in_files(tmp_path) == {"very-secret-77", "plain-key-123", "labelled-key-9"}


def test_secret_shapes_whatever_their_value():
    texts = [("a", "sent Authorization: Bearer eyJhbGciOi.abc"), ("b", "token tok-17 expired"),
             ("c", "Authorization: Basic c2ItdGVzdDpzM2NyM3Q="), ("d", "request-id req_1f tokens=12")]
    leaks = secret_scan.find_leaks(texts, [])
    assert [leak.split(":")[0] for leak in leaks] == ["a", "b", "c"]
    assert not secret_scan.find_leaks([("e", "ANTHROPIC_AUTH_TOKEN='<one of your gateway keys>' Bearer <key>")], [])


def test_collector_sees_the_gateway_loggers_only():
    collector = secret_scan.GatewayLogCollector()
    collector.install()
    try:
        logging.getLogger("app.claude").warning("from %s", "app")
        logging.getLogger("gateway.usage").info("usage line")
        logging.getLogger("app.x").debug("below INFO")
        logging.getLogger("werkzeug").warning("not ours")
    finally:
        collector.uninstall()
    assert collector.lines == ["app.claude WARNING from app", "gateway.usage INFO usage line"]
