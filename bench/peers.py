"""Starting, pinning, probing and stopping the servers under test.

Servers: triplica-r1 (`serve --replicas 1`: one storage node, groups of one),
triplica (`serve`, default 3 replicas: three storage nodes, the metadata
group, MemDS and the router in one process over the in-process transport),
triplica-cluster (`triplica cluster up --nodes 3 --azs 3`: three node
processes, two MemDS servers and a router, the load goes to the router), moto (server mode), dynalite (npm, installed into
bench/.peers/, in-memory), and `trivial` -- a fixed-response uvloop server
used to measure the load generator's own ceiling.
Every server runs pinned to SERVER_CPU (the cluster: all six processes);
processes are stopped by PID (the cluster: `triplica cluster down`, which
signals the pids of its pid files).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS_DIR = BENCH / ".peers"
WORK_DIR = BENCH / ".work"
DYNALITE_CLI = PEERS_DIR / "node_modules" / "dynalite" / "cli.js"
SERVER_CPU = 0
SERVERS = ("triplica-r1", "triplica", "triplica-cluster", "moto", "dynalite")
TRIPLICA_REPLICAS = {"triplica-r1": "1", "triplica": "3"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Missing(Exception):
    """The server cannot be installed or started; reported, not fatal."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin_prefix(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        return ["taskset", "-c", str(cpu)]
    return []


def ensure_dynalite(log=print) -> Path:
    if DYNALITE_CLI.exists():
        return DYNALITE_CLI
    if not shutil.which("npm") or not shutil.which("node"):
        raise Missing("node/npm not found")
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    log("installing dynalite with npm into bench/.peers/ ...")
    try:
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PEERS_DIR), "dynalite"],
                           capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise Missing("npm install dynalite timed out")
    if r.returncode != 0 or not DYNALITE_CLI.exists():
        raise Missing("npm install dynalite failed: " + (r.stderr or r.stdout)[-300:])
    return DYNALITE_CLI


def version_of(name: str) -> str:
    try:
        if name == "moto":
            import importlib.metadata as md
            return md.version("moto")
        if name == "dynalite":
            import json
            return json.loads((DYNALITE_CLI.parent / "package.json").read_text())["version"]
        if name.startswith("triplica"):
            import importlib.metadata as md
            return md.version("triplica")
    except Exception:
        pass
    return "?"


@dataclass
class Server:
    name: str
    host: str
    port: int
    proc: subprocess.Popen
    log_path: Path
    cleanup: list = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def cpu_seconds(self) -> float:
        """utime+stime (+ reaped children's) of the server and live descendants."""
        return tree_cpu_ticks([self.proc.pid]) / CLK_TCK

    def dead(self) -> str | None:
        """None while the server runs, else why not."""
        return None if self.proc.poll() is None else f"exit {self.proc.returncode}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for fn in self.cleanup:
            fn()


def _stat(pid: int):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); utime=14, stime=15, cutime=16, cstime=17, ppid=4
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def tree_cpu_ticks(roots: list[int]) -> int:
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid, t = _stat(int(d))
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
        ticks[int(d)] = t
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total


def _ready(host: str, port: int) -> bool:
    req = (f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-amz-json-1.0\r\n"
           "X-Amz-Target: DynamoDB_20120810.ListTables\r\nX-Amz-Date: 20240101T000000Z\r\n"
           "Authorization: AWS4-HMAC-SHA256 Credential=benchkey/20240101/us-east-1/dynamodb/aws4_request, "
           "SignedHeaders=host, Signature=00\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}").encode()
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(req)
            return s.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


def triplica_exe() -> str:
    exe = ROOT / ".venv" / "bin" / "triplica"
    exe = str(exe) if exe.exists() else shutil.which("triplica")
    if not exe:
        raise Missing("triplica executable not found")
    return exe


def start(name: str, sync: str | None = None, log=print) -> Server:
    if name == "triplica-cluster":
        return start_cluster(sync=sync, log=log)
    host, port = "127.0.0.1", free_port()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    cleanup = []
    if name in TRIPLICA_REPLICAS:
        exe = triplica_exe()
        data_dir = tempfile.mkdtemp(prefix="triplica-bench-", dir="/tmp")
        cleanup.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
        cmd = [exe, "serve", "--host", host, "--port", str(port), "--data-dir", data_dir,
               "--replicas", TRIPLICA_REPLICAS[name]]
        if sync:
            cmd += ["--sync", sync]
    elif name == "moto":
        try:
            import moto.server  # noqa: F401
        except ImportError as e:
            raise Missing(f"moto[server] not importable: {e}")
        cmd = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
    elif name == "dynalite":
        cli = ensure_dynalite(log)
        cmd = ["node", str(cli), "--host", host, "--port", str(port), "--createTableMs", "0"]
    elif name == "trivial":
        cmd = [sys.executable, str(Path(__file__).resolve()), "trivial", host, str(port)]
    else:
        raise ValueError(name)
    log_path = WORK_DIR / f"{name}.log"
    logf = open(log_path, "wb")
    proc = subprocess.Popen(pin_prefix(SERVER_CPU) + cmd, stdout=logf, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=str(ROOT))
    logf.close()
    srv = Server(name, host, port, proc, log_path, cleanup)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            srv.stop()
            tail = log_path.read_text(errors="replace")[-400:]
            raise Missing(f"{name} exited with {proc.returncode}: {tail}")
        if _ready(host, port):
            return srv
        time.sleep(0.2)
    srv.stop()
    raise Missing(f"{name} did not become ready in 60 s")


# --------------------------------------------------------------------------
# The local cluster (3 nodes + 2 MemDS servers + router), `triplica cluster up`
# --------------------------------------------------------------------------
# router, node HTTP, node peers, MemDS servers (offsets from base; cluster/local.py)
CLUSTER_PORTS = (0, 1, 2, 3, 101, 102, 103, 301, 302)
CLUSTER_PROCESSES = ("memds-1", "memds-2", "node-1", "node-2", "node-3", "router")


def free_base_port(tries: int = 50) -> int:
    """A base port N with every CLUSTER_PORTS offset bindable on 127.0.0.1."""
    import random
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(20000, 60000)
        socks = []
        try:
            for off in CLUSTER_PORTS:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + off))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise Missing("no free port range for the cluster")


def read_pids(data_dir: str) -> dict[str, int]:
    """name -> pid from DIR/*.pid (router, node-1, ...), alive ones only."""
    out = {}
    for p in sorted(Path(data_dir).glob("*.pid")):
        try:
            pid = int(p.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue
        out[p.stem] = pid
    return out


def pin_pid_tree(pid: int, cpu: int) -> None:
    """Pin every thread of `pid` to `cpu` (processes started via taskset already are)."""
    if (os.cpu_count() or 1) <= cpu:
        return
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return
    for tid in tids:
        try:
            os.sched_setaffinity(tid, {cpu})
        except OSError:
            pass


def cluster_cmd(*args: str) -> list[str]:
    return pin_prefix(SERVER_CPU) + [triplica_exe(), "cluster", *args]


class ClusterServer(Server):
    """Router, 3 node and 2 MemDS processes; `proc` is unused (the cluster is detached)."""

    def __init__(self, host, port, data_dir, log_path, cleanup):
        super().__init__("triplica-cluster", host, port, None, log_path, cleanup)
        self.data_dir = data_dir
        self.pids = read_pids(data_dir)   # the processes the bench started

    def cpu_seconds(self) -> float:
        return tree_cpu_ticks(list(self.pids.values())) / CLK_TCK

    def dead(self) -> str | None:
        gone = sorted(set(self.pids) - set(read_pids(self.data_dir)))
        return f"{', '.join(gone)} exited (logs in {self.data_dir})" if gone else None

    def stop(self):
        try:
            subprocess.run(cluster_cmd("down", "--data-dir", self.data_dir),
                           capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            pass
        for name, pid in self.pids.items():   # belt and braces, by pid
            if name in read_pids(self.data_dir):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for p in Path(self.data_dir).glob("*.log"):   # keep the logs of the last run
            shutil.copy(p, WORK_DIR / f"triplica-cluster-{p.name}")
        for fn in self.cleanup:
            fn()


def start_cluster(sync: str | None = None, log=print, data_dir: str | None = None) -> ClusterServer:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    cleanup = []
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix="triplica-bench-cluster-", dir="/tmp")
        cleanup.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    base = free_base_port()
    args = ["up", "--nodes", "3", "--azs", "3", "--data-dir", data_dir, "--base-port", str(base)]
    if sync:
        args += ["--sync", sync]
    log_path = WORK_DIR / "triplica-cluster.log"
    # Started through taskset: the up command's children (nodes, router) inherit CPU SERVER_CPU.
    try:
        r = subprocess.run(cluster_cmd(*args), capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        r = None
    log_path.write_text((r.stdout + r.stderr) if r else "cluster up timed out\n")
    srv = ClusterServer("127.0.0.1", base, data_dir, log_path, cleanup)
    if r is None or r.returncode != 0:
        srv.stop()
        raise Missing(f"triplica cluster up failed: {log_path.read_text()[-400:]}")
    if sorted(srv.pids) != sorted(CLUSTER_PROCESSES):
        srv.stop()
        raise Missing(f"triplica cluster up: expected {CLUSTER_PROCESSES}, found {sorted(srv.pids)}")
    for pid in srv.pids.values():
        pin_pid_tree(pid, SERVER_CPU)
    return srv


# --------------------------------------------------------------------------
# Trivial fixed-response server (generator ceiling)
# --------------------------------------------------------------------------
def _trivial_main(host: str, port: int):
    import asyncio
    body = b'{"Item":{"pk":{"S":"x"}},"Items":[],"Count":0}'
    resp = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)

    class P(asyncio.Protocol):
        def connection_made(self, t):
            self.t, self.buf = t, b""

        def data_received(self, data):
            self.buf += data
            while True:  # requests carry Content-Length; answer each complete one
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                i = self.buf.lower().find(b"content-length:", 0, end)
                n = int(self.buf[i + 15:self.buf.find(b"\r\n", i)]) if i >= 0 else 0
                if len(self.buf) < end + 4 + n:
                    return
                self.buf = self.buf[end + 4 + n:]
                self.t.write(resp)

    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    loop.run_until_complete(loop.create_server(P, host, port, backlog=1024))
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "trivial":
    _trivial_main(sys.argv[2], int(sys.argv[3]))
