"""A local multi-process cluster on 127.0.0.1: `triplica cluster up|down|start-node`.

Layout of DIR (everything a cluster needs, so `down` and restarts need only DIR):

    DIR/node-<id>.json   node config (engine/node_config.py)   DIR/node-<id>/   its data
    DIR/node-<id>.pid    pid of the running process        DIR/node-<id>.log
    DIR/router.json, router.pid, router.log        the first router
    DIR/router-<r>.json, .pid, .log                 routers 2..R (`--routers R`)
    DIR/memds-<m>.json, .pid, .log                  MemDS servers 1..M (`--memds M`)

Ports from --base-port N: router 1 on N, router r >= 2 on N + 200 + r, node i
HTTP N + i, node i peers N + 100 + i, MemDS server m on N + 300 + m.
Routers are stateless (partition maps from MemDS, leaders learned from
redirects), so clients may use any of them.
Node i is in AZ number (i - 1) mod azs (az-a, az-b, ...). Processes run in
their own sessions, detached from the caller. `down` sends SIGTERM, waits a
grace period, then SIGKILLs what is left; a pid is signalled only while
/proc says it is still a triplica process (pid reuse).
"""
from __future__ import annotations

import glob
import json
import os
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request

from triplica.common.topology import MemdsSpec, NodeSpec
from triplica.engine.node_config import (REPLACE_AFTER_S_DEFAULT, NodeConfig, SplitLimits,
                                         write_node_config)
from triplica.router.config import RouterConfig, write_router_config

READY_WAIT_S_MAX = 30.0
STOP_GRACE_S = 10.0
POLL_S = 0.05
PEER_PORT_OFFSET = 100
ROUTER_PORT_OFFSET = 200
MEMDS_PORT_OFFSET = 300
NODES_MAX = 99
ROUTERS_MAX = 9
MEMDS_MAX = 9
MEMDS_POLL_S = 0.2
_FAKE_AUTHORIZATION = ("AWS4-HMAC-SHA256 Credential=triplica/20240101/us-east-1/dynamodb/"
                       "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)


class ClusterError(Exception):
    pass


def zone_name(index: int) -> str:
    return "az-" + string.ascii_lowercase[index]


def node_specs(nodes: int, azs: int, base_port: int) -> tuple[NodeSpec, ...]:
    if not 3 <= azs <= min(nodes, len(string.ascii_lowercase)) or nodes > NODES_MAX:
        raise ClusterError("need 3 <= azs <= nodes <= 99 (three replicas in three AZs)")
    return tuple(NodeSpec(i, zone_name((i - 1) % azs), "127.0.0.1", base_port + i,
                          base_port + PEER_PORT_OFFSET + i) for i in range(1, nodes + 1))


def _path(data_dir: str, name: str, suffix: str) -> str:
    return os.path.join(data_dir, f"{name}{suffix}")


# A crash in native code (uvloop, httptools, lmdb) leaves a traceback in the log.
PYTHON_FLAGS = ("-X", "faulthandler")


def _spawn(data_dir: str, name: str, command: list[str]) -> int:
    with open(_path(data_dir, name, ".log"), "ab") as log_file:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    with open(_path(data_dir, name, ".pid"), "w") as file:
        file.write(str(process.pid))
    return process.pid


def start_node(data_dir: str, node_id: int) -> int:
    """Start (or restart) node `node_id` from its config in DIR; returns its pid."""
    config = _path(data_dir, f"node-{node_id}", ".json")
    if not os.path.exists(config):
        raise ClusterError(f"no config {config}")
    if _alive(_read_pid(_path(data_dir, f"node-{node_id}", ".pid")), data_dir):
        raise ClusterError(f"node {node_id} is running")
    return _spawn(data_dir, f"node-{node_id}",
                  [sys.executable, *PYTHON_FLAGS, "-m", "triplica.cli", "node", "--config", config])


def router_name(index: int) -> str:
    return "router" if index == 1 else f"router-{index}"


def router_port(base_port: int, index: int) -> int:
    return base_port if index == 1 else base_port + ROUTER_PORT_OFFSET + index


def cluster_up(data_dir: str, nodes: int = 3, azs: int = 3, base_port: int = 8000,
               sync: str = "batch", routers: int = 1, memds: int = 2,
               splits: SplitLimits = SplitLimits(),
               replace_after_s: float = REPLACE_AFTER_S_DEFAULT) -> list[str]:
    """Write configs, start nodes, MemDS servers and routers, wait for ListTables;
    returns the routers' endpoints."""
    data_dir = os.path.abspath(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    if running_pids(data_dir):
        raise ClusterError(f"a cluster is already running in {data_dir}")
    if not 1 <= routers <= ROUTERS_MAX:
        raise ClusterError(f"need 1 <= routers <= {ROUTERS_MAX}")
    if not 1 <= memds <= MEMDS_MAX:
        raise ClusterError(f"need 1 <= memds <= {MEMDS_MAX}")
    specs = node_specs(nodes, azs, base_port)
    memds_specs = tuple(MemdsSpec("127.0.0.1", base_port + MEMDS_PORT_OFFSET + m)
                        for m in range(1, memds + 1))
    for spec in specs:
        write_node_config(_path(data_dir, f"node-{spec.id}", ".json"), NodeConfig(
            node_id=spec.id, az=spec.az, data_dir=os.path.join(data_dir, f"node-{spec.id}"),
            http_port=spec.http_port, peer_port=spec.peer_port, nodes=specs, sync=sync,
            memds=memds_specs, splits=splits, replace_after_s=replace_after_s))
    for index, memds_spec in enumerate(memds_specs, start=1):
        with open(_path(data_dir, f"memds-{index}", ".json"), "w") as file:
            json.dump({"listen_host": "127.0.0.1", "port": memds_spec.port, "poll_s": MEMDS_POLL_S,
                       "nodes": [{"host": n.host, "peer_port": n.peer_port} for n in specs]}, file)
    endpoints = []
    for index in range(1, routers + 1):
        port = router_port(base_port, index)
        write_router_config(_path(data_dir, router_name(index), ".json"),
                   RouterConfig(port=port, nodes=specs, memds=memds_specs))
        endpoints.append(f"http://127.0.0.1:{port}")
    try:
        for spec in specs:
            start_node(data_dir, spec.id)
        for index in range(1, memds + 1):
            _spawn(data_dir, f"memds-{index}", [
                sys.executable, *PYTHON_FLAGS, "-m", "triplica.memds.server",
                "--config", _path(data_dir, f"memds-{index}", ".json")])
        for index in range(1, routers + 1):
            _spawn(data_dir, router_name(index), [
                sys.executable, *PYTHON_FLAGS, "-m", "triplica.hosting.router_process",
                "--config", _path(data_dir, router_name(index), ".json")])
        for spec in specs:  # every node, not only the one the router happens to ask
            wait_ready(f"http://127.0.0.1:{spec.http_port}", data_dir)
        for memds_spec in memds_specs:
            wait_listening(memds_spec.host, memds_spec.port, data_dir)
        for endpoint in endpoints:
            wait_ready(endpoint, data_dir)
    except BaseException:
        cluster_down(data_dir)
        raise
    return endpoints


def wait_ready(endpoint: str, data_dir: str, timeout_s: float = READY_WAIT_S_MAX) -> None:
    """Until `endpoint` (a node, or the router) answers ListTables with 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if list_tables_ok(endpoint):
            return
        for name, pid in running_pids(data_dir, include_dead=True).items():
            if not _alive(pid, data_dir):
                time.sleep(POLL_S)  # seen once with a process that was running: look again
                if not _alive(pid, data_dir):
                    raise ClusterError(f"{name} (pid {pid}, {_state(pid)}) exited; "
                                       f"see {_path(data_dir, name, '.log')}")
        time.sleep(POLL_S)
    raise ClusterError(f"the router at {endpoint} did not answer within {timeout_s}s")


def wait_listening(host: str, port: int, data_dir: str,
                   timeout_s: float = READY_WAIT_S_MAX) -> None:
    """Until a TCP server (a MemDS server) accepts connections on host:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(POLL_S)
    raise ClusterError(f"nothing listens on {host}:{port} after {timeout_s}s (see {data_dir})")


def list_tables_ok(endpoint: str) -> bool:
    request = urllib.request.Request(endpoint + "/", data=b"{}", method="POST", headers={
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Date": "20240101T000000Z", "Authorization": _FAKE_AUTHORIZATION})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None, data_dir: str | None = None) -> bool:
    """Running (not a zombie) and still a triplica process (of the cluster in
    `data_dir`, when given: its command line names a config file there; so a
    reused pid of another cluster's process is never taken for ours)."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as file:
            state = file.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            command = file.read()
    except (OSError, IndexError):
        return False
    if data_dir is not None and os.path.abspath(data_dir).encode() not in command:
        return False
    return state not in ("Z", "X") and b"triplica" in command


def _state(pid: int) -> str:
    """What /proc says of a process (for error messages)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return "state " + file.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def running_pids(data_dir: str, include_dead: bool = False) -> dict[str, int]:
    """name -> pid of every process with a pid file in DIR (alive only, by default)."""
    pids = {}
    for path in sorted(glob.glob(os.path.join(data_dir, "*.pid"))):
        pid = _read_pid(path)
        if pid is not None and (include_dead or _alive(pid, data_dir)):
            pids[os.path.basename(path)[:-len(".pid")]] = pid
    return pids


def stop_processes(pids: list[int], grace_s: float = STOP_GRACE_S,
                   data_dir: str | None = None) -> None:
    """SIGTERM all, wait up to `grace_s` for them, then SIGKILL the rest (only
    processes of the cluster in `data_dir`, when given)."""
    for pid in pids:
        _signal(pid, signal.SIGTERM, data_dir)
    deadline = time.monotonic() + grace_s
    while any(_alive(pid, data_dir) for pid in pids) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    for pid in pids:
        _signal(pid, signal.SIGKILL, data_dir)
    deadline = time.monotonic() + grace_s
    while any(_alive(pid, data_dir) for pid in pids) and time.monotonic() < deadline:
        time.sleep(POLL_S)


def _signal(pid: int, signum: int, data_dir: str | None = None) -> None:
    if _alive(pid, data_dir):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def cluster_down(data_dir: str, grace_s: float = STOP_GRACE_S) -> list[int]:
    """Stop the routers, the MemDS servers, then every node; remove pid files.
    Returns the pids stopped."""
    data_dir = os.path.abspath(data_dir)
    pids = running_pids(data_dir, include_dead=True)
    for role in ("router", "memds", "node"):
        stop_processes([pid for name, pid in pids.items() if name.startswith(role)], grace_s,
                       data_dir)
    for name in pids:
        os.remove(_path(data_dir, name, ".pid"))
    return list(pids.values())
