"""Port ranges for multi-process clusters started by tests.

A cluster takes a block of ports (base, base+node, base+PEER+node, base+ROUTER+r,
base+MEMDS+m) chosen before its processes bind them. The block is drawn below the
kernel's ephemeral range (32768 and up here), because outgoing connections of every
other test take their local ports from there and could hold one of the block's ports
by the time a node binds it; and each xdist worker draws from its own slice, so two
workers never pick overlapping blocks.
"""

import os
import random
import socket

from triplica.cluster.local import MEMDS_PORT_OFFSET, PEER_PORT_OFFSET, ROUTER_PORT_OFFSET

RANGE_START = 10_000
RANGE_END = 32_000  # below the ephemeral range, leaving room for the offsets
WORKER_SLICES = 8
ATTEMPTS_MAX = 200


def _worker_slice() -> tuple[int, int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) % WORKER_SLICES if worker[2:].isdigit() else 0
    width = (RANGE_END - RANGE_START) // WORKER_SLICES
    start = RANGE_START + index * width
    return start, start + width - MEMDS_PORT_OFFSET - 20


def free_base_port(nodes: int, routers: int = 3, memds: int = 2) -> int:
    """A base port whose whole block is free now, from this worker's slice."""
    low, high = _worker_slice()
    for _ in range(ATTEMPTS_MAX):
        base = random.randrange(low, high)
        ports = [base] + [base + i for i in range(1, nodes + 1)] \
            + [base + PEER_PORT_OFFSET + i for i in range(1, nodes + 1)] \
            + [base + ROUTER_PORT_OFFSET + r for r in range(2, routers + 1)] \
            + [base + MEMDS_PORT_OFFSET + m for m in range(1, memds + 1)]
        try:
            for port in ports:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range")
