"""X-Forwarded-For / X-Forwarded-Proto are believed only from configured proxies.

The middleware is driven with plain WSGI environ dicts and a tiny inner app that
records what it was given; the ``trusted_proxies`` setting is parsed through the
real config loader.
"""

from __future__ import annotations

import json

import pytest

from app.config import ConfigError, settings_from_env, settings_from_file
from app.forwarded import MAX_HOPS, TrustedProxies, parse_address

TRUSTED = ("10.0.0.0/8", "127.0.0.1", "2001:db8:1::/48")


def seen(remote: str, xff: str | None = None, proto: str | None = None,
         trusted=TRUSTED, scheme: str = "http") -> dict:
    """Run one request through the middleware; return the environ the app saw."""
    captured = {}

    def inner(environ, start_response):
        captured.update(environ)
        start_response("204 No Content", [])
        return [b""]

    environ = {"REMOTE_ADDR": remote, "wsgi.url_scheme": scheme, "REQUEST_METHOD": "GET"}
    if xff is not None:
        environ["HTTP_X_FORWARDED_FOR"] = xff
    if proto is not None:
        environ["HTTP_X_FORWARDED_PROTO"] = proto
    statuses = []
    body = TrustedProxies(inner, trusted)(environ, lambda status, headers: statuses.append(status))
    assert list(body) == [b""] and statuses == ["204 No Content"]
    return captured


# ----------------------------------------------------------------------------- untrusted peers


@pytest.mark.parametrize("remote", ["203.0.113.9", "11.0.0.1", "2001:db8:2::1", "127.0.0.2"])
def test_spoofed_headers_from_an_untrusted_peer_are_ignored(remote):
    environ = seen(remote, xff="10.0.0.7, 1.2.3.4", proto="https")
    assert environ["REMOTE_ADDR"] == remote
    assert environ["wsgi.url_scheme"] == "http"
    assert "gateway.proxy_peer" not in environ


def test_nothing_is_trusted_by_default():
    environ = seen("127.0.0.1", xff="1.2.3.4", proto="https", trusted=())
    assert environ["REMOTE_ADDR"] == "127.0.0.1" and environ["wsgi.url_scheme"] == "http"


# ----------------------------------------------------------------------------- trusted chains


def test_one_trusted_proxy_gives_the_client_it_saw():
    environ = seen("10.0.0.5", xff="198.51.100.20", proto="https")
    assert environ["REMOTE_ADDR"] == "198.51.100.20"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["gateway.proxy_peer"] == "10.0.0.5"  # the original kept for whoever needs it


def test_entries_a_client_prepended_are_ignored():
    # The client sent "X-Forwarded-For: 6.6.6.6"; nginx appended the address it saw.
    environ = seen("127.0.0.1", xff="6.6.6.6, 198.51.100.20")
    assert environ["REMOTE_ADDR"] == "198.51.100.20"


def test_a_chain_of_trusted_proxies_is_walked_right_to_left():
    # client -> load balancer 10.1.1.1 -> nginx 10.2.2.2 -> gateway
    environ = seen("10.2.2.2", xff="6.6.6.6, 198.51.100.20, 10.1.1.1")
    assert environ["REMOTE_ADDR"] == "198.51.100.20"


def test_a_chain_of_only_trusted_hops_gives_the_leftmost():
    assert seen("10.2.2.2", xff="10.9.9.9, 10.1.1.1")["REMOTE_ADDR"] == "10.9.9.9"


def test_several_header_lines_joined_by_the_server_are_one_chain():
    # gunicorn joins repeated header lines with ",": the last line is nearest to us.
    assert seen("10.2.2.2", xff="6.6.6.6,198.51.100.20")["REMOTE_ADDR"] == "198.51.100.20"


def test_without_forwarded_for_the_peer_stays():
    environ = seen("10.0.0.5", proto="https")
    assert environ["REMOTE_ADDR"] == "10.0.0.5" and environ["wsgi.url_scheme"] == "https"


# ----------------------------------------------------------------------------- IPv6


def test_ipv6_proxy_and_client():
    environ = seen("2001:db8:1::10", xff="2001:DB8:FFFF:0:0:0:0:1")
    assert environ["REMOTE_ADDR"] == "2001:db8:ffff::1"  # normalised


@pytest.mark.parametrize("entry, expected", [
    ("[2001:db8:ffff::1]", "2001:db8:ffff::1"),
    ("[2001:db8:ffff::1]:4711", "2001:db8:ffff::1"),
    ("198.51.100.20:4711", "198.51.100.20"),
    (" 198.51.100.20 ", "198.51.100.20"),
    ("::ffff:198.51.100.20", "198.51.100.20"),
])
def test_ports_brackets_and_mapped_addresses(entry, expected):
    assert seen("10.0.0.5", xff=entry)["REMOTE_ADDR"] == expected


def test_an_ipv4_mapped_peer_is_matched_against_ipv4_networks():
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    assert seen("::ffff:10.0.0.5", xff="198.51.100.20")["REMOTE_ADDR"] == "198.51.100.20"


# ----------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("xff", ["unknown", "", " , ", "1.2.3.999", "not-an-ip", "[::1", "1.2.3.4:x"])
def test_a_malformed_nearest_entry_leaves_the_peer(xff):
    environ = seen("10.0.0.5", xff=xff, proto="https")
    assert environ["REMOTE_ADDR"] == "10.0.0.5"
    assert environ["wsgi.url_scheme"] == "https"  # the proxy is still trusted for the scheme


def test_a_malformed_entry_stops_the_walk_at_the_last_verified_hop():
    # Nothing left of garbage is believed: it may have been written by the client.
    assert seen("10.2.2.2", xff="6.6.6.6, garbage, 10.1.1.1")["REMOTE_ADDR"] == "10.1.1.1"


@pytest.mark.parametrize("proto", ["ftp", "", "https;x", "javascript", "https http"])
def test_a_scheme_other_than_http_or_https_is_ignored(proto):
    assert seen("10.0.0.5", proto=proto)["wsgi.url_scheme"] == "http"
    assert seen("10.0.0.5", proto=proto, scheme="https")["wsgi.url_scheme"] == "https"


def test_scheme_is_taken_from_the_nearest_proxy_and_case_insensitive():
    assert seen("10.0.0.5", proto="http, HTTPS")["wsgi.url_scheme"] == "https"
    assert seen("10.0.0.5", proto="https, http", scheme="https")["wsgi.url_scheme"] == "http"


def test_an_unparsable_peer_is_never_trusted():
    environ = seen("", xff="198.51.100.20", proto="https")
    assert environ["REMOTE_ADDR"] == "" and environ["wsgi.url_scheme"] == "http"


def test_a_huge_all_trusted_chain_is_walked_only_max_hops_far():
    chain = ", ".join(f"10.0.{i // 250}.{i % 250 + 1}" for i in range(5000))
    expected = chain.split(", ")[-MAX_HOPS]
    assert seen("10.255.255.1", xff=chain)["REMOTE_ADDR"] == expected


def test_parse_address():
    assert str(parse_address("[fe80::1%eth0]:80")) == "fe80::1%eth0"
    assert parse_address("1.2.3.4.5") is None
    assert parse_address("") is None


# ----------------------------------------------------------------------------- configuration


def _file(tmp_path, **extra) -> dict:
    key = {"clientid": "a", "clientsecret": "b", "url": "https://auth.example.test",
           "serviceurls": {"AI_API_URL": "https://api.example.test"}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"subAccounts": {"s": {"service_key_json": key}},
                                "secret_authentication_tokens": ["k"], **extra}))
    return path


SDK_ENV = {"AICORE_CLIENT_ID": "a", "AICORE_CLIENT_SECRET": "b", "AICORE_AUTH_URL": "https://auth.example.test",
           "AICORE_BASE_URL": "https://api.example.test", "GATEWAY_CLIENT_KEYS": "k"}


def test_trusted_proxies_default_to_none(tmp_path):
    assert settings_from_file(_file(tmp_path), {}).trusted_proxies == ()
    assert settings_from_env(SDK_ENV).trusted_proxies == ()


def test_trusted_proxies_from_the_file_are_normalised(tmp_path):
    settings = settings_from_file(_file(tmp_path, trusted_proxies=["127.0.0.1", "10.0.0.0/8",
                                                                   "2001:DB8::/32", " ::1 "]), {})
    assert settings.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "2001:db8::/32", "::1/128")


def test_the_environment_wins_over_the_file(tmp_path):
    env = {"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1"}
    assert settings_from_file(_file(tmp_path, trusted_proxies=["127.0.0.1"]), env).trusted_proxies \
        == ("10.0.0.0/8", "192.168.1.1/32")
    assert settings_from_env({**SDK_ENV, **env}).trusted_proxies == ("10.0.0.0/8", "192.168.1.1/32")


@pytest.mark.parametrize("value, fragment", [
    (["10.0.0.0/33"], "'10.0.0.0/33'"),
    (["10.1.2.3/8"], "host bits set"),
    (["nginx"], "'nginx'"),
    (["*"], "'*'"),
    ([10], "10"),
    ("127.0.0.1", "must be a list"),
])
def test_a_bad_trusted_proxy_in_the_file_is_a_clear_error(tmp_path, value, fragment):
    path = _file(tmp_path, trusted_proxies=value)
    with pytest.raises(ConfigError) as info:
        settings_from_file(path, {})
    assert str(path) in str(info.value) and "trusted_proxies" in str(info.value)
    assert fragment in str(info.value)


def test_a_bad_trusted_proxy_in_the_environment_is_a_clear_error():
    with pytest.raises(ConfigError) as info:
        settings_from_env({**SDK_ENV, "GATEWAY_TRUSTED_PROXIES": "10.0.0.1, 300.1.1.1"})
    assert str(info.value).startswith("environment: GATEWAY_TRUSTED_PROXIES")
    assert "'300.1.1.1'" in str(info.value)
