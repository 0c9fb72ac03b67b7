"""Gateway configuration: parsed once per worker into frozen dataclasses.

Sources, in order:

1. ``CONFIG_PATH`` (default ``./config.json``): the earlier proxy's format, accepted
   unchanged, plus optional keys documented in the README.
2. Without a config file, the environment (Procfile hosts): the SAP SDK variables
   ``AICORE_CLIENT_ID``, ``AICORE_CLIENT_SECRET``, ``AICORE_AUTH_URL``,
   ``AICORE_BASE_URL``, ``AICORE_RESOURCE_GROUP`` or a whole service key in
   ``AICORE_SERVICE_KEY``; client keys in ``GATEWAY_CLIENT_KEYS``.
3. Failing that, ``~/.aicore/config.json`` (the SAP SDK's file) for the SAP side.

Every mistake raises :class:`ConfigError` with one message naming the file and
the field. This module is stdlib only and never touched on the request path:
the parsed :class:`Settings` object is what the runtime keeps.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from app.translate.family_profiles import family_profile

DEFAULT_RESOURCE_GROUP = "default"
BEDROCK_MAX_BODY_BYTES = 20 * 1024 * 1024


class ConfigError(Exception):
    """A configuration mistake; the message names the file and the field."""


@dataclass(frozen=True)
class ServiceKey:
    """The part of an SAP AI Core service key the gateway uses."""

    client_id: str
    client_secret: str = field(repr=False)
    token_url: str
    api_url: str
    tenant_id: str = ""
    source: str = ""

    @property
    def cache_key(self) -> str:
        """One token cache per (token URL, client id)."""
        return self.token_url + "|" + self.client_id


@dataclass(frozen=True)
class Subaccount:
    """One SAP BTP subaccount: credentials, resource group and its models.

    ``deployment_models`` maps an SAP model name to deployment URLs; a model
    mapped to an empty tuple, or ``discover=True``, is found by deployment
    discovery at run time.
    """

    name: str
    service_key: ServiceKey
    resource_group: str = DEFAULT_RESOURCE_GROUP
    deployment_models: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    discover: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything the gateway needs, validated. Built once per worker."""

    subaccounts: tuple[Subaccount, ...]
    # sha256(client key) -> label. Lookup is a dict hit on the digest, so it is
    # O(1) in the number of keys and never compares raw secrets.
    client_key_digests: Mapping[bytes, str] = field(default_factory=dict, repr=False)
    allow_unauthenticated: bool = False
    host: str = "127.0.0.1"
    port: int = 3001
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    model_profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    connect_timeout: float = 5.0
    read_timeout: float = 600.0
    stream_idle_timeout: float = 300.0
    token_connect_timeout: float = 5.0
    token_read_timeout: float = 15.0
    ping_interval: float = 10.0
    first_event_timeout: float = 60.0
    max_attempts: int = 3
    failover_deadline: float = 20.0
    discovery_refresh_seconds: float = 300.0
    max_body_bytes: int = BEDROCK_MAX_BODY_BYTES
    upstream_pool_size: int = 1000
    token_usage_log: str = "logs/token_usage.log"
    # "daily": <token_usage_log>.<UTC date> files (app/log.py UsageLog); "none": one file
    token_usage_log_rotation: str = "daily"
    token_usage_log_keep_days: int = 0  # dated usage files kept, today included; 0 = all
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object per log line
    # GET /metrics: peers allowed (default loopback) and sha256 of the bearer token, if any
    metrics_allow_from: tuple[Any, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                           ipaddress.ip_network("::1/128"))
    metrics_token_digest: bytes | None = field(default=None, repr=False)
    send_tenant_header: bool = False
    ca_bundle: str | None = None
    # Normalised networks ("10.0.0.0/8") whose X-Forwarded-For/-Proto are believed.
    trusted_proxies: tuple[str, ...] = ()
    # Client key label (or "*") -> tokens per UTC day; None = no limit (app/budget.py).
    budgets: Mapping[str, int | None] = field(default_factory=dict)
    budget_store: str = "logs/budgets.sqlite3"
    # SAP model name -> USD per million tokens, overriding app/usage.py's estimates.
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    source: str = ""


def key_digest(key: str) -> bytes:
    """Digest under which a client key is stored and looked up."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_label(key: str) -> str:
    """A label safe to log for a key that has none: a short hash, never the key."""
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


# --------------------------------------------------------------------------- loading


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``CONFIG_PATH``/``./config.json`` or the environment."""
    env = os.environ if environ is None else environ
    explicit = env.get("CONFIG_PATH")
    path = Path(explicit or "config.json")
    if path.is_file():
        return settings_from_file(path, env)
    if explicit:
        raise ConfigError(f"{path}: configuration file not found (CONFIG_PATH)")
    return settings_from_env(env)


def settings_from_file(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    raw = _read_json(path, "configuration file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a JSON object")
    where = str(path)
    subs_raw = raw.get("subAccounts")
    if not isinstance(subs_raw, dict) or not subs_raw:
        raise ConfigError(f"{where}: field 'subAccounts' must be a non-empty object")
    subaccounts = tuple(
        _subaccount_from_config(name, sub, path.parent, where) for name, sub in subs_raw.items()
    )
    digests = _client_keys(raw.get("secret_authentication_tokens", []), where,
                           "secret_authentication_tokens")
    extra_env_keys = env.get("GATEWAY_CLIENT_KEYS", "")
    if extra_env_keys:
        digests.update(_client_keys(_split_list(extra_env_keys), "environment",
                                    "GATEWAY_CLIENT_KEYS"))
    return _finish(raw, subaccounts, digests, where, env)


def settings_from_env(env: Mapping[str, str]) -> Settings:
    where = "environment"
    key_json = env.get("AICORE_SERVICE_KEY")
    if key_json:
        try:
            key_raw = json.loads(key_json)
        except ValueError as exc:
            raise ConfigError(f"environment: AICORE_SERVICE_KEY is not valid JSON ({exc.msg})") from None
        service_key = parse_service_key(key_raw, "environment AICORE_SERVICE_KEY")
    elif env.get("AICORE_CLIENT_ID"):
        service_key = _service_key_from_sdk_vars(env, "environment")
    else:
        home_cfg = Path(env.get("HOME") or Path.home()) / ".aicore" / "config.json"
        if not home_cfg.is_file():
            raise ConfigError(
                "no configuration: ./config.json not found (set CONFIG_PATH), "
                "AICORE_CLIENT_ID / AICORE_SERVICE_KEY not set, and no ~/.aicore/config.json"
            )
        file_vars = _read_json(home_cfg, "SAP SDK config")
        if not isinstance(file_vars, dict):
            raise ConfigError(f"{home_cfg}: top level must be a JSON object")
        merged = {k: str(v) for k, v in file_vars.items() if isinstance(v, (str, int))}
        service_key = _service_key_from_sdk_vars(merged, str(home_cfg))
        env = {**merged, **env}
    subaccount = Subaccount(
        name="default",
        service_key=service_key,
        resource_group=env.get("AICORE_RESOURCE_GROUP") or DEFAULT_RESOURCE_GROUP,
        deployment_models={},
        discover=True,
    )
    digests = _client_keys(_split_list(env.get("GATEWAY_CLIENT_KEYS", "")), where,
                           "GATEWAY_CLIENT_KEYS")
    raw: dict[str, Any] = {}
    if env.get("GATEWAY_MODEL_ALIASES"):
        try:
            raw["model_aliases"] = json.loads(env["GATEWAY_MODEL_ALIASES"])
        except ValueError:
            raise ConfigError("environment: GATEWAY_MODEL_ALIASES must be a JSON object") from None
    return _finish(raw, (subaccount,), digests, where, env)


def parse_service_key(raw: Any, where: str) -> ServiceKey:
    """Validate an SAP service key dict (see spec §1)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: service key must be a JSON object")
    if raw.get("credential-type") == "x509" or ("certificate" in raw and "clientsecret" not in raw):
        raise ConfigError(f"{where}: X.509 service keys are not supported; create a key "
                          "with credential-type 'binding-secret'")
    for name in ("clientid", "clientsecret", "url"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise ConfigError(f"{where}: service key field '{name}' is missing")
    urls = raw.get("serviceurls")
    api = urls.get("AI_API_URL") if isinstance(urls, dict) else None
    if not isinstance(api, str) or not api:
        raise ConfigError(f"{where}: service key field 'serviceurls.AI_API_URL' is missing")
    return ServiceKey(
        client_id=raw["clientid"],
        client_secret=raw["clientsecret"],
        token_url=_token_url(raw["url"]),
        api_url=_api_url(api),
        tenant_id=str(raw.get("identityzoneid") or ""),
        source=where,
    )


# --------------------------------------------------------------------------- helpers


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: invalid JSON in {what} ({exc})") from None


def _token_url(url: str) -> str:
    base = url.rstrip("/")
    if base.endswith("/oauth/token"):
        return base
    return base + "/oauth/token"


def _api_url(url: str) -> str:
    base = url.rstrip("/")
    if base.endswith("/v2"):
        base = base[:-3]
    return base


def _service_key_from_sdk_vars(env: Mapping[str, str], where: str) -> ServiceKey:
    missing = [n for n in ("AICORE_CLIENT_ID", "AICORE_CLIENT_SECRET", "AICORE_AUTH_URL",
                           "AICORE_BASE_URL") if not env.get(n)]
    if missing:
        raise ConfigError(f"{where}: {', '.join(missing)} not set")
    return ServiceKey(
        client_id=env["AICORE_CLIENT_ID"],
        client_secret=env["AICORE_CLIENT_SECRET"],
        token_url=_token_url(env["AICORE_AUTH_URL"]),
        api_url=_api_url(env["AICORE_BASE_URL"]),
        source=where,
    )


def _subaccount_from_config(name: str, sub: Any, base_dir: Path, where: str) -> Subaccount:
    here = f"{where}: subAccounts.{name}"
    if not isinstance(sub, dict):
        raise ConfigError(f"{here} must be an object")
    key_ref = sub.get("service_key_json")
    if isinstance(key_ref, dict):
        service_key = parse_service_key(key_ref, f"{here}.service_key_json")
    elif isinstance(key_ref, str) and key_ref:
        key_path = Path(key_ref)
        if not key_path.is_absolute():
            key_path = base_dir / key_path
        service_key = parse_service_key(_read_json(key_path, "service key"), str(key_path))
    else:
        raise ConfigError(f"{here}.service_key_json is missing (path to the SAP service key)")
    resource_group = sub.get("resource_group", DEFAULT_RESOURCE_GROUP)
    if not isinstance(resource_group, str) or not resource_group:
        raise ConfigError(f"{here}.resource_group must be a non-empty string")
    models_raw = sub.get("deployment_models")
    models: dict[str, tuple[str, ...]] = {}
    if models_raw is not None:
        if not isinstance(models_raw, dict):
            raise ConfigError(f"{here}.deployment_models must be an object")
        for model, urls in models_raw.items():
            if isinstance(urls, str):
                urls = [urls]
            if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                raise ConfigError(f"{here}.deployment_models.{model} must be a list of URLs")
            for url in urls:
                if not url.startswith(("https://", "http://")):
                    raise ConfigError(f"{here}.deployment_models.{model}: '{url}' is not a URL")
            models[model] = tuple(u.rstrip("/") for u in urls)
    discover = not models or any(not urls for urls in models.values())
    return Subaccount(name=name, service_key=service_key, resource_group=resource_group,
                      deployment_models=models, discover=discover)


def _split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _client_keys(entries: Any, where: str, field_name: str) -> dict[bytes, str]:
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: field '{field_name}' must be a list")
    digests: dict[bytes, str] = {}
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            key, label = entry, None
        elif isinstance(entry, dict):
            key, label = entry.get("key") or entry.get("token"), entry.get("label")
        else:
            key, label = None, None
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{where}: {field_name}[{i}] must be a non-empty string "
                              "or {\"key\": ..., \"label\": ...}")
        digests[key_digest(key)] = str(label) if label else key_label(key)
    return digests


def _number(raw: Mapping[str, Any], name: str, default: float, where: str) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{where}: field '{name}' must be a positive number")
    return float(value)


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _trusted_proxies(raw: Mapping[str, Any], env: Mapping[str, str], where: str) -> tuple[str, ...]:
    """``GATEWAY_TRUSTED_PROXIES`` (comma-separated) if set, else the ``trusted_proxies`` list."""
    if env.get("GATEWAY_TRUSTED_PROXIES"):
        entries: Any = _split_list(env["GATEWAY_TRUSTED_PROXIES"])
        here = "environment: GATEWAY_TRUSTED_PROXIES"
    else:
        entries = raw.get("trusted_proxies", [])
        here = f"{where}: field 'trusted_proxies'"
    if not isinstance(entries, list):
        raise ConfigError(f"{here} must be a list of IP addresses or CIDR networks")
    networks = []
    for entry in entries:
        try:
            if not isinstance(entry, str):
                raise ValueError("not a string")
            networks.append(str(ipaddress.ip_network(entry.strip())))
        except ValueError as exc:
            raise ConfigError(f"{here}: {entry!r} is not an IP address or CIDR network "
                              f"({exc})") from None
    return tuple(networks)


PRICE_FIELDS = ("input", "output", "cache_read", "cache_write")
ANONYMOUS_LABEL = "anonymous"  # the label app/client_auth.py gives unauthenticated callers


def parse_prices(raw: Any, where: str) -> dict[str, dict[str, float]]:
    """A price table: SAP model name -> USD per million tokens for each of PRICE_FIELDS.

    ``where`` names the file and field (``config.json: field 'prices'``) in messages.
    """
    expected = ", ".join(PRICE_FIELDS)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must map SAP model names to {{{expected}}} "
                          "(USD per million tokens)")
    table: dict[str, dict[str, float]] = {}
    for model, entry in raw.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: entry '{model}' must be an object with {expected}")
        unknown = sorted(set(entry) - set(PRICE_FIELDS))
        missing = [name for name in PRICE_FIELDS if name not in entry]
        if unknown or missing:
            raise ConfigError(f"{where}: entry '{model}' must have exactly {expected} "
                              f"(missing: {', '.join(missing) or '-'}; "
                              f"unknown: {', '.join(unknown) or '-'})")
        for name in PRICE_FIELDS:
            value = entry[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{where}: '{model}'.{name} must be a number >= 0 "
                                  "(USD per million tokens)")
        table[model] = {name: float(entry[name]) for name in PRICE_FIELDS}
    return table


def _budgets(raw: Mapping[str, Any], labels: set[str], where: str) -> dict[str, int | None]:
    """``budgets``: client key label (or ``*`` for every other key) -> tokens per UTC day."""
    value = raw.get("budgets", {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: field 'budgets' must map client key labels (or '*') to "
                          "tokens per UTC day")
    for label, limit in value.items():
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit <= 0):
            raise ConfigError(f"{where}: budgets.{label} must be a positive whole number of "
                              "tokens per UTC day, or null for no limit")
        if label != "*" and label not in labels:
            raise ConfigError(f"{where}: budgets.{label}: no client key has the label "
                              f"'{label}' (labels: {', '.join(sorted(labels)) or 'none'})")
    return dict(value)


def _budget_store(raw: Mapping[str, Any], usage_log: str, where: str) -> str:
    """The budget counters' SQLite file: ``budget_store``, else beside the usage log."""
    value = raw.get("budget_store")
    if value is not None:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: field 'budget_store' must be a file path")
        return value
    directory = "logs" if usage_log in ("", "-") else os.path.dirname(usage_log)
    return os.path.join(directory, "budgets.sqlite3")


def _metrics_access(section: Any, where: str,
                    env: Mapping[str, str]) -> tuple[tuple[Any, ...], bytes | None]:
    """``metrics: {"token", "allow_from"}`` (or GATEWAY_METRICS_TOKEN /
    GATEWAY_METRICS_ALLOW_FROM) as parsed networks and the token's sha256."""
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: field 'metrics' must be an object")
    token = env.get("GATEWAY_METRICS_TOKEN") or section.get("token")
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ConfigError(f"{where}: field 'metrics.token' must be a non-empty string")
    allow = section.get("allow_from", ["127.0.0.0/8", "::1/128"])
    if env.get("GATEWAY_METRICS_ALLOW_FROM"):
        allow = _split_list(env["GATEWAY_METRICS_ALLOW_FROM"])
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise ConfigError(f"{where}: field 'metrics.allow_from' must be a list of networks")
    networks = []
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{where}: metrics.allow_from: '{entry}' is not an address "
                              "or network (e.g. 10.0.0.0/8)") from None
    digest = hashlib.sha256(token.strip().encode("utf-8")).digest() if token else None
    return tuple(networks), digest


def _finish(raw: Mapping[str, Any], subaccounts: tuple[Subaccount, ...],
            digests: dict[bytes, str], where: str, env: Mapping[str, str]) -> Settings:
    allow_open = _flag(raw.get("allow_unauthenticated", False)) or _flag(
        env.get("GATEWAY_ALLOW_UNAUTHENTICATED", ""))
    if not digests and not allow_open:
        raise ConfigError(
            f"{where}: no client keys configured (field 'secret_authentication_tokens' "
            "or GATEWAY_CLIENT_KEYS); set 'allow_unauthenticated': true to run an open gateway"
        )
    aliases = raw.get("model_aliases", {})
    if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()):
        raise ConfigError(f"{where}: field 'model_aliases' must map names to SAP model names")
    profiles = raw.get("model_profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigError(f"{where}: field 'model_profiles' must map SAP model names to objects")
    for sap_name, overrides in profiles.items():
        try:
            family_profile(sap_name, overrides)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: model_profiles.{sap_name}: {exc}") from None
    port = raw.get("port", 3001)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"{where}: field 'port' must be a TCP port number")
    host = raw.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"{where}: field 'host' must be a string")
    usage_log = env.get("TOKEN_USAGE_LOG") or raw.get("token_usage_log") or (
        "-" if env.get("PORT") and where == "environment" else "logs/token_usage.log")
    rotation = env.get("TOKEN_USAGE_LOG_ROTATION") or raw.get("token_usage_log_rotation", "daily")
    if rotation not in ("daily", "none"):
        raise ConfigError(f"{where}: field 'token_usage_log_rotation' must be 'daily' or 'none'")
    keep_days = raw.get("token_usage_log_keep_days", 0)
    if env.get("TOKEN_USAGE_LOG_KEEP_DAYS"):
        text = env["TOKEN_USAGE_LOG_KEEP_DAYS"].strip()
        keep_days = int(text) if text.isdigit() else -1
    if isinstance(keep_days, bool) or not isinstance(keep_days, int) or keep_days < 0:
        raise ConfigError(f"{where}: field 'token_usage_log_keep_days' must be a whole number "
                          "of days (0 keeps every file)")
    log_format = str(env.get("LOG_FORMAT") or raw.get("log_format") or "text").lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"{where}: field 'log_format' must be 'text' or 'json'")
    metrics_allow, metrics_token = _metrics_access(raw.get("metrics", {}), where, env)
    return Settings(
        subaccounts=subaccounts,
        client_key_digests=digests,
        allow_unauthenticated=allow_open,
        host=host,
        port=port,
        model_aliases=dict(aliases),
        model_profiles={k: dict(v) for k, v in profiles.items()},
        connect_timeout=_number(raw, "connect_timeout", 5.0, where),
        read_timeout=_number(raw, "read_timeout", 600.0, where),
        stream_idle_timeout=_number(raw, "stream_idle_timeout", 300.0, where),
        ping_interval=_number(raw, "ping_interval",
                              float(env.get("GATEWAY_PING_INTERVAL") or 10.0), where),
        discovery_refresh_seconds=_number(raw, "discovery_refresh_seconds", 300.0, where),
        first_event_timeout=_number(raw, "first_event_timeout", 60.0, where),
        max_attempts=int(_number(raw, "max_attempts", 3, where)),
        failover_deadline=_number(raw, "failover_deadline", 20.0, where),
        max_body_bytes=int(_number(raw, "max_body_bytes", BEDROCK_MAX_BODY_BYTES, where)),
        upstream_pool_size=int(_number(raw, "upstream_pool_size", 1000, where)),
        token_usage_log=str(usage_log),
        token_usage_log_rotation=rotation,
        token_usage_log_keep_days=keep_days,
        log_level=str(env.get("LOG_LEVEL") or raw.get("log_level") or "INFO").upper(),
        log_format=log_format,
        metrics_allow_from=metrics_allow,
        metrics_token_digest=metrics_token,
        send_tenant_header=_flag(raw.get("send_tenant_header", False)),
        ca_bundle=raw.get("ca_bundle") or env.get("REQUESTS_CA_BUNDLE") or None,
        trusted_proxies=_trusted_proxies(raw, env, where),
        budgets=_budgets(raw, set(digests.values()) | ({ANONYMOUS_LABEL} if allow_open else set()),
                         where),
        budget_store=_budget_store(raw, str(usage_log), where),
        prices=parse_prices(raw.get("prices", {}), f"{where}: field 'prices'"),
        source=where,
    )


# --------------------------------------------------------------------------- per-worker cache

_worker_settings: Settings | None = None


def worker_settings() -> Settings:
    """This worker's settings, parsed once (gunicorn's ``post_fork`` preloads them)."""
    global _worker_settings
    if _worker_settings is None:
        _worker_settings = load_settings()
    return _worker_settings


def forget_worker_settings() -> None:
    """Drop the cached settings (a new worker, or a test that changes them)."""
    global _worker_settings
    _worker_settings = None
