"""Median of several benchmark runs: `python bench/medians.py run1.json run2.json ...`.

The machines are shared and noisy, so single runs swing by 2-4x; the README
quotes the median of each (server, workload, connections) cell over runs.
Writes bench/results/median.md and prints it.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

FIELDS = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")


def medians(paths: list[str]) -> dict[tuple[str, str, int], dict[str, float]]:
    cells: dict[tuple[str, str, int], dict[str, list[float]]] = {}
    for path in paths:
        for row in json.loads(Path(path).read_text())["results"]:
            cell = cells.setdefault((row["server"], row["workload"], row["concurrency"]),
                                    {f: [] for f in FIELDS})
            for field in FIELDS:
                if row.get(field) is not None:
                    cell[field].append(row[field])
    return {key: {f: statistics.median(v) if v else float("nan") for f, v in cell.items()}
            for key, cell in cells.items()}


def render(table: dict[tuple[str, str, int], dict[str, float]], runs: int) -> str:
    workloads = sorted({(w, c) for (_, w, c) in table}, key=lambda x: (x[0], x[1]))
    servers = sorted({s for (s, _, _) in table}, key=lambda s: (s != "triplica", s))
    lines = [f"Median of {runs} runs per cell.", "",
             "| workload | conc | " + " | ".join(
                 f"{s} req/s | {s} p50 ms | {s} p99 ms | {s} CPU µs/req" for s in servers) + " |",
             "|---|---|" + "---|" * (4 * len(servers))]
    for workload, concurrency in workloads:
        cells = []
        for server in servers:
            m = table.get((server, workload, concurrency))
            cells += ([f"{m['rps']:,.0f}", f"{m['p50_ms']:.2f}", f"{m['p99_ms']:.2f}",
                       f"{m['cpu_us_per_req']:,.0f}"] if m else ["-"] * 4)
        lines.append(f"| {workload} | {concurrency} | " + " | ".join(cells) + " |")
    lines += ["", "Throughput ratio triplica / peer (medians):", "",
              "| workload | conc | " + " | ".join(f"/ {s}" for s in servers if s != "triplica") + " |",
              "|---|---|" + "---|" * (len(servers) - 1)]
    for workload, concurrency in workloads:
        ours = table.get(("triplica", workload, concurrency))
        ratios = []
        for server in servers:
            if server == "triplica":
                continue
            peer = table.get((server, workload, concurrency))
            ratios.append(f"{ours['rps'] / peer['rps']:.2f}×" if ours and peer and peer["rps"] else "-")
        lines.append(f"| {workload} | {concurrency} | " + " | ".join(ratios) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    text = render(medians(argv), len(argv))
    out = Path(__file__).parent / "results" / "median.md"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
