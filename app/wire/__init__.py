"""Wire formats: pure, stdlib-only codecs for what travels over HTTP (SSE framing, dialect shapes).

Nothing here imports Flask or requests, reads configuration or logs payloads.
"""
