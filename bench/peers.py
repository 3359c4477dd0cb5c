"""Starting, pinning, probing and stopping the servers under test.

Servers: triplica (temporary --data-dir), moto (server mode), dynalite (npm,
installed into bench/.peers/, in-memory), and `trivial` -- a fixed-response
uvloop server used to measure the load generator's own ceiling.
Every server runs pinned to SERVER_CPU; processes are stopped by PID.
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
        if name == "triplica":
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
        return tree_cpu_ticks(self.proc.pid) / CLK_TCK

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


def tree_cpu_ticks(root: int) -> int:
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
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
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


def start(name: str, sync: str | None = None, log=print) -> Server:
    host, port = "127.0.0.1", free_port()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    cleanup = []
    if name == "triplica":
        exe = ROOT / ".venv" / "bin" / "triplica"
        exe = str(exe) if exe.exists() else shutil.which("triplica")
        if not exe:
            raise Missing("triplica executable not found")
        data_dir = tempfile.mkdtemp(prefix="triplica-bench-", dir="/tmp")
        cleanup.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
        cmd = [exe, "serve", "--host", host, "--port", str(port), "--data-dir", data_dir]
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
