"""Gemini on Vertex through SAP AI Core (``gcp-vertexai``) <-> the Anthropic Messages pivot.

One module per concern, all pure (stdlib, ``app.wire`` and ``app.translate`` only):

* ``schema``: JSON Schema -> Gemini's OpenAPI subset (sap-ai-core.md §9.5), function names
  and the client <-> Gemini name map (:class:`FunctionNames`);
* ``request``: an Anthropic Messages body -> a ``GenerateContent`` body, the per-model
  :class:`GeminiProfile`, the URL suffix, and the tool-id format that carries
  ``thoughtSignature`` across turns (§9.1);
* ``response``: a ``GenerateContentResponse`` -> a Bedrock-shaped Anthropic message, the
  ``finishReason`` table (§9.4) and usage (§9.2);
* ``stream``: ``:streamGenerateContent`` events -> Bedrock-style Anthropic events for the
  existing client translators (§9.3), and a splitter for the JSON array stream form.
"""

from app.translate.gemini.request import (
    GeminiProfile,
    GeminiRequest,
    GeminiRequestError,
    gemini_from_anthropic,
    gemini_path,
    gemini_profile_for,
    signature_from_tool_id,
    tool_use_id,
)
from app.translate.gemini.response import (
    GeminiResponseError,
    message_from_gemini,
    stop_reason_for,
    usage_from_gemini,
)
from app.translate.gemini.schema import FunctionNames, clean_schema, valid_function_name
from app.translate.gemini.stream import GeminiToAnthropic, JsonArrayStreamSplitter

__all__ = [
    "FunctionNames",
    "GeminiProfile",
    "GeminiRequest",
    "GeminiRequestError",
    "GeminiResponseError",
    "GeminiToAnthropic",
    "JsonArrayStreamSplitter",
    "clean_schema",
    "gemini_from_anthropic",
    "gemini_path",
    "gemini_profile_for",
    "message_from_gemini",
    "signature_from_tool_id",
    "stop_reason_for",
    "tool_use_id",
    "usage_from_gemini",
    "valid_function_name",
]
