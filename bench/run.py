"""triplica benchmark: triplica (`serve --replicas 1`, `serve` with 3 replicas in
one process, the multi-process local cluster) vs moto vs dynalite over DynamoDB JSON 1.0.

    .venv/bin/python bench/run.py [--servers triplica-r1,triplica,triplica-cluster,moto,dynalite]
        [--seconds 10] [--concurrency 1,64]
        [--workloads get,get_strong,put,update,query,ycsb_a,ycsb_b] [--quick] [--repeat N]

With --repeat N every server is started, loaded and measured N times, the
rounds interleaved (server A, B, C, A, B, C, ...) so a noisy stretch on the
shared machine hits all servers alike; the tables quote each cell's median.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402
import workloads  # noqa: E402

CLIENT_CPU = 1


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default=",".join(peers.SERVERS),
                    help=f"comma separated, from {','.join(peers.SERVERS)}")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per workload")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up seconds (default 2, quick 0.5)")
    ap.add_argument("--concurrency", default="1,64", help="connection counts, comma separated")
    ap.add_argument("--workloads", default=",".join(workloads.WORKLOADS))
    ap.add_argument("--quick", action="store_true", help="2 s per workload, 0.5 s warm-up (smoke run)")
    ap.add_argument("--sync", default=None, help="pass --sync VALUE to triplica serve / cluster up (default batch)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the load generator ceiling run")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds over all servers (fresh start each); tables quote medians")
    a = ap.parse_args(argv)
    if a.quick:
        a.seconds = 2.0
    if a.warmup is None:
        a.warmup = 0.5 if a.quick else 2.0
    a.servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    a.concurrency = [int(c) for c in a.concurrency.split(",") if c.strip()]
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    bad = [w for w in a.workloads if w not in workloads.WORKLOADS]
    if bad:
        ap.error(f"unknown workloads {bad}; choose from {list(workloads.WORKLOADS)}")
    bad = [s for s in a.servers if s not in peers.SERVERS]
    if bad:
        ap.error(f"unknown servers {bad}")
    return a


def pin_self() -> int | None:
    if (os.cpu_count() or 1) > CLIENT_CPU and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {CLIENT_CPU})
        return CLIENT_CPU
    return None


def machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
                break
    except OSError:
        pass
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        node = "absent"
    return {"cpu": cpu, "cores": os.cpu_count(), "mem": mem, "python": platform.python_version(),
            "node": node, "os": f"{platform.system()} {platform.release()}"}


def measure(loop, srv, picker, conc, warmup, seconds) -> dict:
    cpu = {}
    res = loop.run_until_complete(loadgen.run_closed_loop(
        srv.host, srv.port, picker, conc, warmup, seconds,
        on_window_start=lambda: cpu.__setitem__("start", srv.cpu_seconds()),
        on_window_end=lambda: cpu.__setitem__("end", srv.cpu_seconds())))
    cpu_used = cpu.get("end", srv.cpu_seconds()) - cpu.get("start", 0.0)
    lat = sorted(res.latencies)
    ok = res.completed
    return {"rps": ok / seconds, "completed": ok, "errors": res.errors,
            "p50_ms": loadgen.percentile(lat, 50) * 1e3 if lat else None,
            "p99_ms": loadgen.percentile(lat, 99) * 1e3 if lat else None,
            "cpu_us_per_req": (cpu_used * 1e6 / ok) if ok else None,
            "server_cpu_util": cpu_used / seconds, "connects": res.connects,
            "error_samples": res.error_samples}


def run_ceiling(loop, args, log) -> dict:
    conc = max(args.concurrency)
    try:
        srv = peers.start("trivial", log=log)
    except peers.Missing as e:
        return {"error": str(e)}
    try:
        pools = workloads.build_pools(f"{srv.host}:{srv.port}")
        m = measure(loop, srv, workloads.make_picker("get", pools), conc, args.warmup, min(args.seconds, 5.0))
        m["concurrency"] = conc
        return m
    finally:
        srv.stop()


def run_server(loop, args, doc, name, round_index, log) -> None:
    """Start `name`, load the tables, measure every workload, stop it."""
    try:
        srv = peers.start(name, sync=args.sync, log=log)
    except peers.Missing as e:
        log(f"{name}: missing ({e})")
        doc["missing"][name] = str(e)
        return
    doc["versions"][name] = peers.version_of(name)
    try:
        t = time.monotonic()
        log(f"{name}: listening on {srv.endpoint}; creating tables and loading data ...")
        try:
            workloads.setup(srv.endpoint)
        except Exception as e:  # a peer that cannot even load data is reported, not fatal
            log(f"{name}: setup failed: {e!r}")
            doc["missing"][name] = f"setup failed: {e!r}"[:300]
            return
        pools = workloads.build_pools(f"{srv.host}:{srv.port}")
        log(f"{name}: setup done in {time.monotonic() - t:.1f} s")
        for wl in args.workloads:
            for conc in args.concurrency:
                why = srv.dead()
                if why is not None:
                    raise RuntimeError(f"{name} died ({why}); see {srv.log_path}")
                m = measure(loop, srv, workloads.make_picker(wl, pools), conc, args.warmup, args.seconds)
                m.update(server=name, workload=wl, concurrency=conc, round=round_index)
                doc["results"].append(m)
                log(f"  {name:16s} {wl:10s} c={conc:<3d} {m['rps']:9,.0f} req/s  p50 "
                    f"{(m['p50_ms'] or 0):7.2f} ms  p99 {(m['p99_ms'] or 0):7.2f} ms  "
                    f"err {m['errors']}  cpu {(m['cpu_us_per_req'] or 0):,.0f} µs/req  "
                    f"(server busy {m['server_cpu_util']:.0%} of a core)")
    except RuntimeError as e:
        log(str(e))
        doc["missing"].setdefault(name, str(e))
    finally:
        srv.stop()


MEDIAN_FIELDS = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "server_cpu_util")


def median_rows(runs: list[dict]) -> list[dict]:
    """One row per (server, workload, concurrency): the median of each field over
    the rounds, errors summed, the per-round values kept under `rounds`."""
    cells: dict[tuple, list[dict]] = {}
    for r in runs:
        cells.setdefault((r["server"], r["workload"], r["concurrency"]), []).append(r)
    out = []
    for (server, wl, conc), rows in cells.items():
        row = {"server": server, "workload": wl, "concurrency": conc,
               "errors": sum(r["errors"] for r in rows),
               "completed": sum(r["completed"] for r in rows),
               "error_samples": [s for r in rows for s in r.get("error_samples", [])][:3],
               "rounds": {f: [r.get(f) for r in rows] for f in MEDIAN_FIELDS}}
        for f in MEDIAN_FIELDS:
            values = [r[f] for r in rows if r.get(f) is not None]
            row[f] = statistics.median(values) if values else None
        out.append(row)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    client_cpu = pin_self()
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    if not loadgen.check_against_botocore("127.0.0.1:1"):
        log("warning: SigV4 self-check against botocore failed")
    loop, loop_name = loadgen.new_loop()
    asyncio.set_event_loop(loop)
    doc = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "command": " ".join(["python bench/run.py"] + [shlex.quote(a) for a in (argv or sys.argv[1:])]),
           "machine": machine(), "loop": loop_name, "seconds": args.seconds, "warmup": args.warmup,
           "server_cpu": peers.SERVER_CPU, "client_cpu": client_cpu, "versions": {},
           "missing": {}, "ceiling": {}, "results": [],
           "workloads": {k: v[0] for k, v in workloads.WORKLOADS.items()}}
    if not args.no_ceiling:
        log("measuring load generator ceiling against a fixed-response server ...")
        doc["ceiling"] = run_ceiling(loop, args, log)
        log(f"  ceiling: {doc['ceiling'].get('rps', 0):,.0f} req/s")
    for round_index in range(args.repeat):
        for name in args.servers:
            if name in doc["missing"]:
                continue
            if args.repeat > 1:
                log(f"round {round_index + 1}/{args.repeat}: {name}")
            run_server(loop, args, doc, name, round_index, log)
    if args.repeat > 1:
        doc["runs"] = doc["results"]
        doc["results"] = median_rows(doc["runs"])
    loop.close()
    report.write_all(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
