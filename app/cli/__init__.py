"""Operator commands behind ``python -m app`` (``app/__main__.py`` dispatches).

``check`` (``check.py``) validates a configuration against SAP AI Core, ``demo``
(``demo.py``) runs the gateway on the simulator, ``usage`` (``app/usage.py``)
reports token usage and cost. ``env_lines.py`` writes the Claude Code environment
lines both ``check`` and ``demo`` print. They run outside gunicorn and never print
a client key, a client secret or an OAuth token (the demo's own throwaway key
excepted).
"""
