"""Where a server's CPU goes under load: py-spy samples of every server process.

    .venv/bin/python bench/profile.py [--servers triplica,triplica-r1] [--workloads put,get]
        [--seconds 15] [--connections 64] [--rate 100] [--out profile.md] [--nonblocking]
    .venv/bin/python bench/profile.py --servers triplica-cluster --rate 25 --seconds 20 \
        --out profile-cluster.md

For each server (started, pinned and loaded exactly as bench/run.py does) and
workload, runs the closed-loop load for a 2 s warm-up plus SECONDS while
`py-spy record --native` samples each of the server's processes (the
cluster: the router, the three nodes and the MemDS servers) at RATE Hz,
every thread. py-spy runs on the load generator's
core, so the server's core is left to the server. Then, from the raw stacks:

- self time: the innermost Python frame of each sample (a C call such as
  orjson.dumps, lmdb's get or os.fsync is charged to the Python line that
  made it), top 15 functions over all processes;
- layers: each sample goes to the layer of its innermost frame that has
  one (file path; a line calling orjson / msgpack / os.fsync goes to JSON /
  msgpack / fsync whatever its file), as a share of all samples;
- per process: samples and CPU seconds (from /proc) in the window.

C frames (uvloop, libc, lmdb, orjson) are sampled too: the leaf of a sample
is then the C function, its layer still that of the innermost Python frame.
py-spy stops the process for each sample, so the server runs slower and only
the shares mean anything; keep the rate low for the six cluster processes
(--rate 25). A sample in epoll_wait (the loop waiting) or of a worker
waiting for work is idle and left out. --nonblocking samples Python frames
only without stopping the process; then uvloop's C code shows as Runner.run
and py-spy guesses which threads are idle (a worker blocked on its queue
is counted as busy: those lines are left out here).

Writes bench/results/profile.md (or --out; raw stacks in bench/.work/profile-*.txt).
Needs py-spy (`pip install py-spy`; it ptraces the servers, so run as the
servers' user with ptrace allowed).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import functools
import json
import linecache
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
import peers  # noqa: E402
import workloads  # noqa: E402

CLIENT_CPU = 1
WARMUP_S = 2.0
TOP_FUNCTIONS = 15
RESULTS = peers.BENCH / "results"

# (layer, path fragments): the first layer whose fragment is in a frame's file wins.
LAYERS = (
    ("HTTP front (http_server, httptools)", ("triplica/api/http_server.py", "httptools")),
    ("node call (node client, node calls, transport)", (
        "triplica/router/node_client.py", "triplica/node/", "triplica/transport/",
        "triplica/api/node_app.py", "triplica/hosting/")),
    ("API (app, wire, sigv4)", ("triplica/api/",)),
    ("router", ("triplica/router/",)),
    ("MemDS / metadata", ("triplica/memds/", "triplica/metadata/")),
    ("Paxos log + WAL", ("triplica/replication/paxos_log.py", "triplica/storage/wal.py",
                         "triplica/replication/log.py")),
    ("replication driver", ("triplica/replication/driver.py",)),
    ("Paxos core", ("triplica/replication/",)),
    ("LMDB", ("triplica/storage/lmdb_store.py", "lmdb", "mdb.c")),
    ("engine (operations, partition, expressions, model)", (
        "triplica/engine/", "triplica/expressions/", "triplica/model/", "triplica/common/",
        "triplica/errors.py")),
    ("asyncio / uvloop / threads", ("asyncio/", "uvloop", "threading.py", "concurrent/", "selectors.py",
                                    "queue.py")),
)
# A line that calls one of these is charged to it, whatever the file (checked first).
CALL_LAYERS = (("fsync", ("fsync(", "fdatasync(")), ("JSON (orjson)", ("orjson.", "json.")),
               ("msgpack", ("msgpack.", "packb(", "unpackb(")))


def parse_frame(frame: str) -> tuple[str, str, int]:
    """'function (path:line)' -> (function, path, line)."""
    name, _, rest = frame.rpartition(" (")
    path, _, line = rest.rstrip(")").rpartition(":")
    try:
        return name or frame, path, int(line)
    except ValueError:
        return name or frame, rest.rstrip(")"), 0


def read_stacks(path: Path) -> list[tuple[str, list[str], int]]:
    """(thread name, frames root first, count) per line of py-spy's raw output."""
    stacks = []
    for text in path.read_text(errors="replace").splitlines():
        stack, _, count = text.rpartition(" ")
        if stack and count.isdigit():
            frames = stack.split(";")
            thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread ") else "?"
            frames = [f for f in frames if not f.startswith(("process ", "thread "))]
            stacks.append((thread, frames, int(count)))
    return stacks


SOURCE_ROOTS = (peers.ROOT / "src", Path(sysconfig.get_paths()["stdlib"]),
                Path(sysconfig.get_paths()["purelib"]))


@functools.lru_cache(maxsize=None)
def source_line(path: str, line: int) -> str:
    """The text of a sampled line (py-spy gives paths relative to sys.path entries)."""
    if not line or "\0" in path:
        return ""
    for candidate in [Path(path)] + [root / path for root in SOURCE_ROOTS]:
        if candidate.is_file():
            return linecache.getline(str(candidate), line)
    return ""


# Leaf lines where a thread waits, though py-spy counted it as active (its idle
# detection misses a worker blocked on its queue): left out of every share.
WAIT_LINES = ("work_queue.get(", "waiter.acquire(", "lock.acquire(", "self._cond.wait(")
IDLE_C = ("epoll_pwait", "epoll_wait")  # --native: the event loop waiting for events
EVENT_LOOP = "event loop + sockets (uvloop's C code under run_until_complete)"
FSYNC = "fsync"


def is_python(frame: str) -> bool:
    return ".py:" in frame or "(<string>" in frame


def kind_of(frames: list[str]) -> str:
    """'idle', FSYNC, or the layer of a CPU sample; decided on the innermost Python
    frame (with --native the leaf may be a C function under it)."""
    if parse_frame(frames[-1])[0] in IDLE_C:
        return "idle"
    python = [f for f in frames if is_python(f)]
    if not python:
        return "other"
    function, path, line = parse_frame(python[-1])
    source = source_line(path, line)
    if any(w in source for w in WAIT_LINES):
        return "idle"
    if function in ("Runner.run", "BaseEventLoop.run_until_complete", "run", "_serve") and (
            "asyncio/" in path or "uvloop" in path or path.endswith("cli.py")):
        return EVENT_LOOP
    return layer_of(python)


def layer_of(frames: list[str]) -> str:
    """The layer of the innermost frame that has one."""
    for frame in reversed(frames):
        _, path, line = parse_frame(frame)
        source = source_line(path, line)
        for layer, needles in CALL_LAYERS:
            if any(n in source for n in needles):
                return layer
        for layer, fragments in LAYERS:
            if any(f in path for f in fragments):
                return layer
    return "other"


def short(path: str) -> str:
    for marker in ("/triplica/", "/site-packages/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1] if marker != "/triplica/" else "triplica/" + path.split(marker, 1)[1]
    return path


def analyse(raw: dict[str, Path]) -> dict:
    """Self time and layers of the CPU samples (fsync and waiting threads apart) over
    the processes' raw stack files."""
    own: collections.Counter = collections.Counter()
    c_leaf: collections.Counter = collections.Counter()
    layers: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    per_process: dict[str, dict[str, int]] = {}
    for name, path in raw.items():
        counts = collections.Counter()
        for thread, frames, count in read_stacks(path) if path.exists() else []:
            if not frames:
                continue
            kind = kind_of(frames)
            counts[kind if kind in ("idle", FSYNC) else "cpu"] += count
            if kind in ("idle", FSYNC):
                continue
            python = [f for f in frames if is_python(f)] or frames
            function, file, _ = parse_frame(python[-1])
            own[f"{function} ({short(file)})"] += count
            if not is_python(frames[-1]):
                c_leaf[parse_frame(frames[-1])[0]] += count
            layers[kind] += count
            threads["main" if thread == "MainThread" else "worker threads"] += count
        per_process[name] = dict(counts)
    return {"own": own, "c_leaf": c_leaf, "layers": layers, "threads": threads, "per_process": per_process,
            "total": sum(p.get("cpu", 0) for p in per_process.values()),
            "fsync": sum(p.get(FSYNC, 0) for p in per_process.values())}


def pids_of(srv) -> dict[str, int]:
    if isinstance(srv, peers.ClusterServer):
        return dict(srv.pids)
    return {srv.name: srv.proc.pid}


def profile_one(loop, name: str, workload: str, args, log) -> dict:
    srv = peers.start(name, log=log)
    try:
        workloads.setup(srv.endpoint)
        pools = workloads.build_pools(f"{srv.host}:{srv.port}")
        pids = pids_of(srv)
        raw = {p: peers.WORK_DIR / f"profile-{name}-{workload}-{p}.txt" for p in pids}
        spies = []

        def start_spies():
            for process, pid in pids.items():
                raw[process].unlink(missing_ok=True)
                spies.append(subprocess.Popen(
                    peers.pin_prefix(CLIENT_CPU) + [args.py_spy, "record", "--threads",
                                                    *(["--nonblocking"] if args.nonblocking else ["--native"]),
                                                    "--rate", str(args.rate), "--duration",
                                                    str(int(args.seconds)), "--format", "raw",
                                                    "--output", str(raw[process]), "--pid", str(pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            cpu["start"] = {p: peers.tree_cpu_ticks([pid]) for p, pid in pids.items()}

        cpu: dict = {}
        result = loop.run_until_complete(loadgen.run_closed_loop(
            srv.host, srv.port, workloads.make_picker(workload, pools), args.connections, WARMUP_S,
            args.seconds, on_window_start=start_spies,
            on_window_end=lambda: cpu.__setitem__(
                "end", {p: peers.tree_cpu_ticks([pid]) for p, pid in pids.items()})))
        for spy in spies:
            try:
                spy.wait(args.seconds + 30)
            except subprocess.TimeoutExpired:
                spy.kill()
        found = analyse(raw)
        cpu_s = {p: (cpu["end"][p] - cpu["start"][p]) / peers.CLK_TCK for p in pids}
        log(f"  {name} {workload}: {result.completed / args.seconds:,.0f} req/s under py-spy, "
            f"{found['total']} samples, server CPU {sum(cpu_s.values()):.1f} s")
        return {"server": name, "workload": workload, "rps": result.completed / args.seconds,
                "requests": result.completed, "cpu_s": cpu_s,
                "raw": {p: str(path) for p, path in raw.items()}, **found}
    finally:
        srv.stop()


def render(runs: list[dict], args) -> str:
    out = [f"# Where the CPU goes ({dt.date.today()})", "",
           f"`bench/profile.py --servers {','.join(args.servers)} --workloads {','.join(args.workloads)} "
           f"--seconds {args.seconds:g} --connections {args.connections} --rate {args.rate}`: "
           f"py-spy samples ({'Python frames only, non-blocking' if args.nonblocking else 'native frames too'}, "
           "all threads) of every server process under closed-loop "
           "load, server pinned to CPU 0, load generator and py-spy on CPU 1. Shares are of the "
           "CPU samples: samples of a thread blocked in fsync, or waiting for work, are counted "
           "apart. See the docstring for how samples are charged.", ""]
    for run in runs:
        total = max(1, run["total"])
        cpu_total = sum(run["cpu_s"].values())
        window = args.rate * args.seconds
        out += [f"## {run['server']}, {run['workload']} ({run['rps']:,.0f} req/s under the profiler, "
                f"{cpu_total * 1e6 / max(1, run['requests']):,.0f} CPU µs/request)", "",
                f"Threads blocked in fsync: {run['fsync'] / window:.2f} on average (wall time, not CPU). "
                f"CPU samples in the main thread {run['threads']['main'] / total:.0%}, "
                f"in worker threads {run['threads']['worker threads'] / total:.0%}.", "",
                "| process | CPU samples | fsync samples | CPU s in the window (/proc) |", "|---|---|---|---|"]
        out += [f"| {p} | {run['per_process'].get(p, {}).get('cpu', 0)} | "
                f"{run['per_process'].get(p, {}).get(FSYNC, 0)} | {run['cpu_s'][p]:.2f} |" for p in run["cpu_s"]]
        out += ["", "| layer | share of CPU samples |", "|---|---|"]
        out += [f"| {layer} | {count / total:.1%} |" for layer, count in run["layers"].most_common()]
        out += ["", f"Top {TOP_FUNCTIONS} Python functions by self time (C calls charged to the "
                "Python line that made them):", "", "| function | self |", "|---|---|"]
        out += [f"| `{f}` | {count / total:.1%} |" for f, count in run["own"].most_common(TOP_FUNCTIONS)]
        if run["c_leaf"]:
            out += ["", "Top C functions (leaf of the sample; `0x...` = libc without symbols):", "",
                    "| C function | self |", "|---|---|"]
            out += [f"| `{f}` | {count / total:.1%} |" for f, count in run["c_leaf"].most_common(8)]
        out.append("")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--servers", default="triplica,triplica-r1")
    ap.add_argument("--workloads", default="put,get")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rate", type=int, default=100, help="samples per second per process")
    ap.add_argument("--nonblocking", action="store_true",
                    help="Python frames only, without stopping the servers (cheaper, but a "
                         "sample in uvloop's C code shows as Runner.run and idle is guessed)")
    ap.add_argument("--render-only", action="store_true",
                    help="analyse the last run's raw stacks again (same --out)")
    ap.add_argument("--out", default=None, help="file name under bench/results/ "
                    "(default profile.md, or profile-nonblocking.md with --nonblocking)")
    args = ap.parse_args(argv)
    args.out = args.out or ("profile-nonblocking.md" if args.nonblocking else "profile.md")
    args.servers = [s for s in args.servers.split(",") if s]
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.py_spy = shutil.which("py-spy", path=str(peers.ROOT / ".venv" / "bin")) or shutil.which("py-spy")
    if not args.py_spy:
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) > CLIENT_CPU:
        os.sched_setaffinity(0, {CLIENT_CPU})
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    meta_path = peers.WORK_DIR / f"{Path(args.out).stem}-runs.json"
    if args.render_only:  # the last run's raw stacks again (after changing the analysis)
        runs = json.loads(meta_path.read_text())
        for run in runs:
            run.update(analyse({p: Path(path) for p, path in run["raw"].items()}))
        text = render(runs, args)
        (RESULTS / args.out).write_text(text)
        print(text)
        return 0
    loop, _ = loadgen.new_loop()
    asyncio.set_event_loop(loop)
    runs = []
    for name in args.servers:
        for workload in args.workloads:
            started = time.monotonic()
            runs.append(profile_one(loop, name, workload, args, log))
            log(f"  ({time.monotonic() - started:.0f} s)")
    loop.close()
    meta_path.write_text(json.dumps([{k: run[k] for k in ("server", "workload", "rps", "requests",
                                                          "cpu_s", "raw")} for run in runs]))
    text = render(runs, args)
    (RESULTS / args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
