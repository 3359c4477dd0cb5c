"""Results: rich table on stdout, latest.md, latest.json, throughput.png."""
from __future__ import annotations

import json
import math
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COLS = ["server", "workload", "conc", "req/s", "p50 ms", "p99 ms", "errors", "CPU µs/req", "server core %"]


def _fmt(v, nd=0):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:,.{nd}f}"


def rows(results):
    for r in results:
        yield [r["server"], r["workload"], str(r["concurrency"]), _fmt(r["rps"]),
               _fmt(r["p50_ms"], 2), _fmt(r["p99_ms"], 2), str(r["errors"]), _fmt(r["cpu_us_per_req"]),
               _fmt(100 * r["server_cpu_util"] if r.get("server_cpu_util") is not None else None)]


def ratios(results, base="triplica"):
    """[(workload, conc, {peer: base_rps / peer_rps})] where base was run."""
    idx = {(r["server"], r["workload"], r["concurrency"]): r for r in results}
    peers = sorted({r["server"] for r in results if r["server"] != base})
    out = []
    for r in results:
        if r["server"] != base:
            continue
        rat = {}
        for p in peers:
            o = idx.get((p, r["workload"], r["concurrency"]))
            rat[p] = (r["rps"] / o["rps"]) if o and o["rps"] else None
        out.append((r["workload"], r["concurrency"], rat))
    return peers, out


def print_rich(doc):
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(to_markdown(doc))
        return
    con = Console()
    t = Table(title=f"triplica bench ({doc['seconds']} s per workload)")
    for c in COLS:
        t.add_column(c, justify="left" if c in ("server", "workload") else "right", no_wrap=True)
    for row in rows(doc["results"]):
        t.add_row(*row)
    con.print(t)
    peers, rat = ratios(doc["results"])
    if rat:
        rt = Table(title="throughput ratio triplica / peer")
        rt.add_column("workload")
        rt.add_column("conc", justify="right")
        for p in peers:
            rt.add_column(f"/ {p}", justify="right")
        for w, c, d in rat:
            rt.add_row(w, str(c), *[_fmt(d[p], 2) + "×" if d[p] else "–" for p in peers])
        con.print(rt)
    for name, why in doc["missing"].items():
        con.print(f"[yellow]missing[/]: {name}: {' '.join(str(why).split())[-300:]}")
    con.print(f"load generator ceiling (trivial server, c={doc['ceiling'].get('concurrency')}): "
              f"{_fmt(doc['ceiling'].get('rps'))} req/s")


def to_markdown(doc) -> str:
    m = doc["machine"]
    out = ["# triplica benchmark results", "",
           f"- date: {doc['date']}",
           f"- command: `{doc['command']}`",
           f"- machine: {m['cpu']} ({m['cores']} cores), {m['mem']}, {m['os']}",
           f"- python {m['python']} ({doc['loop']}), node {m['node']}; peers: "
           + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()),
           f"- servers pinned to CPU {doc['server_cpu']}, load generator to CPU {doc['client_cpu']}",
           f"- {doc['seconds']} s measured per workload after {doc['warmup']} s warm-up",
           f"- load generator ceiling (fixed-response server, {doc['ceiling'].get('concurrency')} connections): "
           f"{_fmt(doc['ceiling'].get('rps'))} req/s, p50 {_fmt(doc['ceiling'].get('p50_ms'), 2)} ms",
           ""]
    for name, why in doc["missing"].items():
        why = " ".join(str(why).split())[-300:]
        out.append(f"- **missing**: {name} — `{why}`")
    out += ["", "| " + " | ".join(COLS) + " |", "|" + "---|" * len(COLS)]
    out += ["| " + " | ".join(r) + " |" for r in rows(doc["results"])]
    peers, rat = ratios(doc["results"])
    if rat:
        out += ["", "Throughput ratio triplica / peer:", "",
                "| workload | conc | " + " | ".join(f"/ {p}" for p in peers) + " |",
                "|---|---|" + "---|" * len(peers)]
        for w, c, d in rat:
            out.append(f"| {w} | {c} | " + " | ".join(_fmt(d[p], 2) + "×" if d[p] else "–" for p in peers) + " |")
    errs = [r for r in doc["results"] if r.get("error_samples")]
    if errs:
        out += ["", "Error samples:", ""]
        for r in errs:
            out.append(f"- {r['server']} {r['workload']} c={r['concurrency']}: `{r['error_samples'][0][:200]}`")
    if doc.get("runs"):
        out += ["", f"Each cell is the median of {len({r['round'] for r in doc['runs']})} rounds "
                "(servers interleaved; every round starts and loads each server afresh); "
                "the rounds' values are in latest.json."]
    out += ["", "CPU µs/req = (utime+stime of the server process tree, from /proc, over the "
            "measured window) / successful requests; server core % = that CPU time / the window "
            "(well under 100% at 64 connections means the server was waiting, or shared its core). "
            "Quote medians of several runs; see bench/README.md.", ""]
    return "\n".join(out)


def chart(doc, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    res = doc["results"]
    servers = list(dict.fromkeys(r["server"] for r in res))
    groups = list(dict.fromkeys((r["workload"], r["concurrency"]) for r in res))
    idx = {(r["server"], r["workload"], r["concurrency"]): r["rps"] for r in res}
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(groups) * max(1, len(servers)) / 2 + 2), 4.5))
    w = 0.8 / max(1, len(servers))
    for i, s in enumerate(servers):
        xs = [g + (i - (len(servers) - 1) / 2) * w for g in range(len(groups))]
        ax.bar(xs, [idx.get((s, wl, c), 0) for wl, c in groups], w, label=s)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{wl}\nc={c}" for wl, c in groups], fontsize=8)
    ax.set_ylabel("requests/s (log scale)")
    ax.set_yscale("log")
    ax.set_title(f"Throughput per workload ({doc['seconds']} s each, {doc['date'][:10]})")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(doc):
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(doc, indent=2))
    (RESULTS / "latest.md").write_text(to_markdown(doc))
    if doc["results"]:
        try:
            chart(doc, RESULTS / "throughput.png")
        except ImportError as e:
            print(f"no chart: {e}")
    print_rich(doc)
