"""The request router: where each request runs, retries, and the partition map cache.

router.py decides; node_client.py reaches the nodes (inline in one process,
framed TCP between processes); retries.py is the pure retry decision; the
map comes from MemDS through map_cache.py (map_source.py falls back to the
nodes). The router process itself is hosting/router_process.py.
"""
