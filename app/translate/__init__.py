"""Translation between wire dialects: pure, stdlib-only state machines and functions.

Modules here import only ``app.wire`` and the standard library. Options arrive as keyword
arguments; inputs are never mutated.
"""
