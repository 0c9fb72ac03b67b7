"""Benchmarks of the gateway against the loopback fake SAP AI Core (see bench/README.md).

Nothing is imported here: the load-generator entry modules (``bench.run``, ``bench.soak``,
``bench.tokens``) must monkey-patch with gevent before anything else is imported.
"""
