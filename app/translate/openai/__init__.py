"""OpenAI chat completions <-> Anthropic Messages, for Claude deployments on SAP AI Core.

One module per direction, all pure (stdlib, ``app.wire`` and ``app.translate`` only):

* ``chat_request``: an OpenAI ``POST /v1/chat/completions`` body -> an Anthropic Messages
  body that then takes the same sanitizer and upstream path as ``/v1/messages``;
* ``chat_response``: a whole Anthropic message -> ``chat.completion`` (finish reasons, usage);
* ``chat_stream``: Bedrock stream events -> ``chat.completion.chunk`` SSE, one state machine
  per stream that fits :class:`app.streaming.StreamTranslator`.

The package name is the dialect, not the SDK: nothing here imports ``openai``.
"""
