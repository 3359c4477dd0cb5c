"""A local multi-process cluster for tests, chaos runs and benchmarks.

`local.py` starts node, MemDS and router processes on 127.0.0.1 (the same
classes `triplica serve` runs in one process, hosting/); `drain.py` is the
operator's command that empties a node before it is retired.
"""
