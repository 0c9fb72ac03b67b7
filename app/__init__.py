"""The SAP AI Core gateway: an Anthropic- and OpenAI-compatible proxy for Claude Code.

:func:`create_app` is the only place things are wired. It reads the (cached)
settings, registers the blueprints and error handlers and returns the app; it does
no network I/O and starts nothing. The per-worker :mod:`app.runtime` is built by
gunicorn's ``post_worker_init`` hook, or by the factory when a test passes settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.config import Settings, worker_settings

if TYPE_CHECKING:
    from flask import Flask


def create_app(settings: Settings | None = None) -> "Flask":
    # Imported here, not at module level: gunicorn's hooks import app.config before
    # gevent patches the worker, and nothing network-related may be imported then.
    from flask import Flask

    from app import routes, runtime

    app = Flask(__name__)
    if settings is None:
        settings = worker_settings()
    else:
        runtime.install(runtime.Runtime(settings))
    app.config["GATEWAY_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    routes.register(app)
    if settings.trusted_proxies:
        from app.forwarded import TrustedProxies

        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)  # type: ignore[method-assign]
    return app
