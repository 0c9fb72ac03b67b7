"""The gateway's error tree, and the one place errors become client bodies.

::

    GatewayError                       status  Anthropic type          OpenAI type / code
    ├── InvalidRequest                 400     invalid_request_error   invalid_request_error
    ├── AuthenticationFailed           401     authentication_error    invalid_request_error / invalid_api_key
    ├── PermissionDenied               403     permission_error        permission_error
    ├── NotFound                       404     not_found_error         invalid_request_error / model_not_found
    ├── RequestTooLarge                413     request_too_large       invalid_request_error / request_too_large
    ├── RateLimited                    429     rate_limit_error        rate_limit_error / rate_limit_exceeded
    │   └── BudgetExceeded             429     rate_limit_error        insufficient_quota / insufficient_quota
    ├── Overloaded                     529*    overloaded_error        service_unavailable_error  (*503 for OpenAI)
    ├── UpstreamFailure                500     api_error               server_error
    │   └── UpstreamRefused            500     api_error               server_error  (x-should-retry: false)
    │       └── IdentityServiceRefused 500     api_error               server_error  (x-should-retry: false)
    ├── BadGateway                     502     api_error               server_error
    │   └── IdentityServiceDown        502     api_error               server_error
    └── GatewayTimeout                 504     timeout_error           server_error / timeout

Views and upstream code raise; one Flask error handler calls :func:`render`.
:func:`from_upstream` classifies a non-2xx SAP AI Core answer (spec §10) and
:func:`redact` keeps URLs, hosts and tokens out of every message. Stdlib only.
"""

from __future__ import annotations

import json
import re
from typing import Mapping

ANTHROPIC = "anthropic"
OPENAI = "openai"

MAX_RETRY_AFTER = 60


class GatewayError(Exception):
    status = 500
    anthropic_type = "api_error"
    openai_type = "server_error"
    openai_code: str | None = None
    # x-should-retry: None = decided by the status (transient ones say "true").
    should_retry: bool | None = None

    def __init__(self, message: str, *, retry_after: int | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        if status is not None:
            self.status = status


class InvalidRequest(GatewayError):
    status = 400
    anthropic_type = "invalid_request_error"
    openai_type = "invalid_request_error"


class PromptTooLong(InvalidRequest):
    """The upstream said the prompt exceeds the model's context. The message carries the
    ``capability_rejected: prompt_too_long`` token and Anthropic's wording
    ``prompt is too long: <n> tokens > <max> maximum`` that Claude Code reacts to by
    compacting; :meth:`counted` fills in the numbers where the caller knows them."""

    openai_code = "context_length_exceeded"

    def __init__(self, upstream: str, tokens: int | None = None,
                 maximum: int | None = None) -> None:
        self.upstream = upstream
        n = f"{tokens} tokens" if tokens else "the prompt"
        limit = f"{maximum} maximum" if maximum else "the model's maximum"
        super().__init__(f"capability_rejected: prompt_too_long; prompt is too long: {n} > "
                         f"{limit}. Upstream said: {upstream}")

    def counted(self, estimate: int, maximum: int | None) -> "PromptTooLong":
        """The same error with the gateway's token estimate (at least ``maximum + 1``: the
        upstream has just said the prompt is over it) and the model's context window."""
        tokens = max(estimate, maximum + 1) if maximum else estimate
        return PromptTooLong(self.upstream, tokens, maximum)


class AuthenticationFailed(GatewayError):
    status = 401
    anthropic_type = "authentication_error"
    openai_type = "invalid_request_error"
    openai_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    anthropic_type = "permission_error"
    openai_type = "permission_error"


class NotFound(GatewayError):
    status = 404
    anthropic_type = "not_found_error"
    openai_type = "invalid_request_error"
    openai_code = "model_not_found"


class RequestTooLarge(GatewayError):
    status = 413
    anthropic_type = "request_too_large"
    openai_type = "invalid_request_error"
    openai_code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    anthropic_type = "rate_limit_error"
    openai_type = "rate_limit_error"
    openai_code = "rate_limit_exceeded"


class BudgetExceeded(RateLimited):
    """A client key used up its daily token budget (app/budget.py): retrying before the
    reset cannot help, so ``retry-after`` may exceed 60 s and ``x-should-retry`` is false."""

    openai_type = "insufficient_quota"
    openai_code = "insufficient_quota"
    should_retry = False


class Overloaded(GatewayError):
    status = 529
    anthropic_type = "overloaded_error"
    openai_type = "service_unavailable_error"


class UpstreamFailure(GatewayError):
    status = 500


class UpstreamRefused(UpstreamFailure):
    """SAP AI Core refused the gateway's own credentials or resource group (401 after a
    fresh token, 403): an operator's problem, not the client's key (never a 401/403 to
    the client), and not one a retry fixes, so ``x-should-retry`` is false and Claude
    Code shows it at once instead of retrying for minutes."""

    should_retry = False


class BadGateway(GatewayError):
    status = 502


class IdentityServiceDown(BadGateway):
    """The SAP identity service (XSUAA) is unreachable or answers 5xx: no token for a
    subaccount. Not the deployment's fault, so it is not cooled down."""


class IdentityServiceRefused(UpstreamRefused):
    """The SAP identity service refused the service key (4xx): the operator's problem."""


class GatewayTimeout(GatewayError):
    status = 504
    anthropic_type = "timeout_error"
    openai_code = "timeout"


# --------------------------------------------------------------------------- rendering


def render(error: GatewayError, dialect: str, request_id: str) -> tuple[bytes, int, dict]:
    """Body, status and headers for ``error`` in the client's dialect."""
    retry = error.should_retry
    if retry is None:
        retry = error.status in (408, 409, 429, 500, 502, 503, 504, 529)
    headers = {"request-id": request_id, "x-request-id": request_id,
               "x-should-retry": "true" if retry else "false"}
    if error.retry_after is not None:
        headers["retry-after"] = str(error.retry_after)
        headers["retry-after-ms"] = str(error.retry_after * 1000)
    status = error.status
    if dialect == OPENAI:
        if status == 529:
            status = 503
        body = {"error": {"message": error.message, "type": error.openai_type,
                          "param": None, "code": error.openai_code}}
    else:
        body = {"type": "error",
                "error": {"type": error.anthropic_type, "message": error.message},
                "request_id": request_id}
    return json.dumps(body).encode(), status, headers


def anthropic_error_payload(error_type: str, message: str) -> str:
    """The JSON of an in-band Anthropic ``error`` event."""
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message}})


# --------------------------------------------------------------------------- upstream mapping

_URL = re.compile(r"https?://[^\s\"'<>]+")
_HOST = re.compile(r"\b[\w-]+(?:\.[\w-]+)*\.(?:hana\.ondemand\.com|ondemand\.com|amazonaws\.com|"
                   r"azure\.com|googleapis\.com|sap\.com)\b")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Bedrock/Azure wording, and Gemini's RESOURCE_EXHAUSTED / UNAVAILABLE statuses.
_THROTTLE = re.compile(r"(?i)throttl|too many|rate limit|rate-limit|quota|resource_exhausted")
_OVERLOAD = re.compile(r"(?i)overloaded|serviceunavailable|service unavailable|modelnotready|"
                       r"not ready|capacity|\bunavailable\b")
# Bedrock "Input is too long for requested model.", Anthropic "prompt is too long", Azure
# "maximum context length", Gemini "exceeds the maximum number of tokens"; not a field's
# "String too long", which is an ordinary validation error.
_TOO_LONG = re.compile(r"(?i)(?:input|prompt) is too long|context length|context window|"
                       r"input length|maximum number of tokens|too many input tokens")


def failed_start(text: str, model: str, retry_after: int) -> GatewayError:
    """The error of a stream whose first event was an error (``text``: that event)."""
    if _THROTTLE.search(text):
        return RateLimited(f"SAP AI Core throttled {model}", retry_after=retry_after)
    if _OVERLOAD.search(text):
        return Overloaded(f"SAP AI Core is overloaded for {model}", retry_after=retry_after)
    return Overloaded(f"SAP AI Core stream of {model} failed before it started")


def redact(text: str) -> str:
    """Remove URLs, SAP/cloud host names, bearer tokens and JWTs from ``text``."""
    text = _URL.sub("[url]", text)
    text = _HOST.sub("[host]", text)
    text = _BEARER.sub(r"\1[token]", text)
    return _JWT.sub("[token]", text)


def upstream_message(body: bytes) -> str:
    """The human message in an upstream error body, whatever its shape (spec §6.6)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return redact(text[:500]) if text else ""
    return redact(_message_from_json(data))[:2000]


def _message_from_json(data: object) -> str:
    if isinstance(data, dict):
        for key in ("message", "Message"):
            if isinstance(data.get(key), str):
                return data[key]
        err = data.get("error")
        if isinstance(err, dict):
            inner = _message_from_json(err)
            if inner:
                return inner
        if isinstance(err, str):
            desc = data.get("error_description")
            return f"{err}: {desc}" if isinstance(desc, str) else err
        return ""
    if isinstance(data, str):
        return data
    return ""


def _retry_after(headers: Mapping[str, str], default: int) -> int:
    raw = headers.get("retry-after") or headers.get("Retry-After")
    try:
        value = int(float(raw)) if raw is not None else default
    except (ValueError, OverflowError):  # "soon", "inf", "nan", "1e999"
        value = default
    return max(1, min(MAX_RETRY_AFTER, value))


def from_upstream(status: int, body: bytes, headers: Mapping[str, str], *,
                  model: str) -> GatewayError:
    """Classify a non-2xx SAP AI Core answer into the client-facing error (spec §10)."""
    message = upstream_message(body)
    if status == 429 or (status in (400, 503) and _THROTTLE.search(message or "")):
        return RateLimited(
            f"SAP AI Core throttled {model}: {message or 'too many requests'}",
            retry_after=_retry_after(headers, 5))
    if status == 400 or status == 422:
        if _TOO_LONG.search(message):
            return PromptTooLong(message)
        return InvalidRequest(message or "SAP AI Core rejected the request")
    if status == 413:
        return RequestTooLarge(message or "request too large for SAP AI Core")
    if status in (401, 403):
        # Our SAP credentials or resource group failed: never the client's own 401/403.
        return UpstreamRefused(f"SAP AI Core refused the gateway's credentials for {model} "
                               f"(upstream {status}); the operator must check the service key "
                               "and resource group")
    if status == 404:
        return NotFound(f"SAP AI Core has no deployment serving {model} at the configured URL")
    if status in (503, 529) or _OVERLOAD.search(message or ""):
        return Overloaded(f"SAP AI Core is overloaded for {model}: {message or 'unavailable'}",
                          retry_after=_retry_after(headers, 5))
    if status in (408, 504):
        return GatewayTimeout(f"SAP AI Core timed out for {model}: {message or 'timeout'}")
    if status == 502:
        return BadGateway(f"SAP AI Core gateway error for {model}: {message or 'bad gateway'}")
    return UpstreamFailure(f"SAP AI Core error {status} for {model}: {message or 'no details'}")
