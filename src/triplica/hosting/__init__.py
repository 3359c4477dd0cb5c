"""Processes: which roles run together, over which transport.

`serve.py` hosts every role in one process (`triplica serve`);
`node_process.py` one storage node with its metadata role (`triplica
node`); `router_process.py` one router; MemDS servers run memds/server.py.
The classes are the same in every shape; only the transport differs.
"""
