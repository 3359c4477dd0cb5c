"""Failover bench: time from kill -9 of the leader to the first successful write.

    .venv/bin/python bench/failover.py [--kills 20] [--writers 4] [--settle 3]

Starts `triplica cluster up --nodes 3 --azs 3` in a temporary directory (all
processes pinned to CPU 0 like the servers of run.py, the writers run on CPU 1),
creates a table and runs a steady writer through the router: WRITERS threads,
each a boto3 client with one attempt per request
(Config(retries={"total_max_attempts": 1})) doing PutItem back to back.
Then, KILLS times:

1. find the leader of the table: a ConsistentRead GetItem straight to each
   node's HTTP port; the leader answers 200, the others 421 with
   `x-triplica-leader`;
2. kill -9 its pid (from DIR/node-<id>.pid) and note t_kill (monotonic, taken
   right after the signal was sent);
3. failover time = ack time of the first successful PutItem *sent* after
   t_kill, minus t_kill (writes in flight at the kill do not count, even if
   they succeed later -- the router may have retried them on the new leader);
4. restart the node (`triplica cluster start-node`), wait until it answers,
   a strong read through the router succeeds, a leader is found, and SETTLE
   seconds of steady writes with at least one success.

Every wait is bounded; the cluster is stopped with `triplica cluster down`
(pids from its pid files) and, failing that, by pid. Writes bench/results/
failover.md and failover.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402
from loadgen import ACCESS_KEY, REGION, SECRET_KEY  # noqa: E402

TABLE = "bench_failover"
KEYS = 1000
CLIENT_CPU = 1
FIRST_WRITE_WAIT_S = 30.0     # a failover longer than this is recorded as a timeout
HEALTHY_WAIT_S = 60.0
WRITES_PER_WRITER_MAX = 10_000_000
RESULTS = Path(__file__).resolve().parent / "results"
_FAKE_AUTH = ("AWS4-HMAC-SHA256 Credential=benchkey/20240101/us-east-1/dynamodb/aws4_request, "
              "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)


def client(endpoint: str, attempts: int = 1):
    import boto3
    from botocore.config import Config
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        config=Config(retries={"total_max_attempts": attempts}, connect_timeout=2,
                                      read_timeout=10, max_pool_connections=2))


class Writers:
    """N threads of back-to-back PutItem; records (t_send, t_ack) of every success."""

    def __init__(self, endpoint: str, n: int):
        self.endpoint, self.n = endpoint, n
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok: list[tuple[float, float]] = []
        self.failed: list[tuple[float, float, str]] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def start(self):
        for t in self.threads:
            t.start()

    def _run(self, i: int):
        c = client(self.endpoint)
        rng = random.Random(i)
        for seq in range(WRITES_PER_WRITER_MAX):
            if self.stop.is_set():
                return
            item = {"pk": {"S": f"k{rng.randrange(KEYS):05d}"}, "w": {"N": str(i)}, "seq": {"N": str(seq)}}
            t0 = time.monotonic()
            try:
                c.put_item(TableName=TABLE, Item=item)
                t1 = time.monotonic()
                with self.lock:
                    self.ok.append((t0, t1))
            except Exception as e:  # one attempt: any error is a failed write
                t1 = time.monotonic()
                with self.lock:
                    self.failed.append((t0, t1, type(e).__name__ + ": " + str(e)[:120]))
                time.sleep(0.005)

    def first_ok_sent_after(self, t: float) -> float | None:
        with self.lock:
            acks = [a for s, a in self.ok if s >= t]
        return min(acks) if acks else None

    def failed_between(self, t0: float, t1: float) -> int:
        """Failed writes that completed in [t0, t1] (in flight at the kill or sent after it)."""
        with self.lock:
            return sum(1 for _, a, _ in self.failed if t0 <= a <= t1)

    def counts_since(self, t: float) -> tuple[int, int]:
        with self.lock:
            return sum(1 for s, _ in self.ok if s >= t), sum(1 for s, _, _ in self.failed if s >= t)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def node_answer(port: int) -> tuple[int | None, str | None]:
    """(status, x-triplica-leader) of a ConsistentRead GetItem sent straight to a node."""
    body = json.dumps({"TableName": TABLE, "Key": {"pk": {"S": "k00000"}}, "ConsistentRead": True}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST", headers={
        "X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Date": "20240101T000000Z", "Authorization": _FAKE_AUTH})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status, r.headers.get("x-triplica-leader")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-triplica-leader")
    except (urllib.error.URLError, OSError):
        return None, None


def find_leader(base: int, deadline_s: float = 10.0) -> int | None:
    """The node id that answers a strong read with 200 (the others say 421)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        answers = {i: node_answer(base + i) for i in (1, 2, 3)}
        leaders = [i for i, (st, _) in answers.items() if st == 200]
        if len(leaders) == 1:
            return leaders[0]
        time.sleep(0.05)
    return None


def wait_healthy(srv, base: int, node: int, writers: Writers, settle: float) -> dict:
    """Restarted node answers, a strong read through the router succeeds, a leader
    is found, then `settle` seconds of writes with at least one success."""
    t0 = time.monotonic()
    end = t0 + HEALTHY_WAIT_S
    c = client(srv.endpoint)
    stage = "node up"
    while time.monotonic() < end:
        if stage == "node up" and node_answer(base + node)[0] is not None:
            stage = "strong read"
        if stage == "strong read":
            try:
                c.get_item(TableName=TABLE, Key={"pk": {"S": "k00000"}}, ConsistentRead=True)
                stage = "leader"
            except Exception:
                pass
        if stage == "leader" and find_leader(base, 5.0) is not None:
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"cluster not healthy {HEALTHY_WAIT_S} s after restarting node {node} ({stage})")
    healthy_s = time.monotonic() - t0
    t_settle = time.monotonic()
    time.sleep(settle)
    ok, failed = writers.counts_since(t_settle)
    if ok == 0:
        raise RuntimeError(f"no successful write in {settle} s of settling after restarting node {node}")
    return {"healthy_s": healthy_s, "settle_ok": ok, "settle_failed": failed}


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def run(args) -> dict:
    data_dir = tempfile.mkdtemp(prefix="triplica-failover-", dir="/tmp")
    srv = peers.start_cluster(sync=args.sync, data_dir=data_dir)
    base = srv.port
    writers = None
    doc = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "command": "python bench/failover.py " + " ".join(sys.argv[1:]),
           "kills": args.kills, "writers": args.writers, "settle_s": args.settle,
           "server_cpu": peers.SERVER_CPU, "client_cpu": CLIENT_CPU, "samples": [], "timeouts": 0}
    try:
        admin = client(srv.endpoint, attempts=5)
        admin.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                           KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                           AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        for _ in range(600):
            if admin.describe_table(TableName=TABLE)["Table"]["TableStatus"] == "ACTIVE":
                break
            time.sleep(0.1)
        writers = Writers(srv.endpoint, args.writers)
        writers.start()
        t = time.monotonic()
        time.sleep(args.settle)
        ok, failed = writers.counts_since(t)
        print(f"cluster on {srv.endpoint}; steady writes before the first kill: "
              f"{ok / args.settle:.0f}/s ok, {failed} failed", flush=True)
        for k in range(args.kills):
            leader = find_leader(base)
            if leader is None:
                raise RuntimeError("no node answers a strong read with 200")
            pid = peers.read_pids(data_dir).get(f"node-{leader}")
            if pid is None:
                raise RuntimeError(f"leader node {leader} has no live pid")
            os.kill(pid, signal.SIGKILL)
            t_kill = time.monotonic()
            ack = None
            while time.monotonic() < t_kill + FIRST_WRITE_WAIT_S:
                ack = writers.first_ok_sent_after(t_kill)
                if ack is not None:
                    break
                time.sleep(0.005)
            failed_n = writers.failed_between(t_kill, ack if ack is not None else time.monotonic())
            new_leader = find_leader(base, 5.0)
            sample = {"kill": k + 1, "leader": leader, "pid": pid, "new_leader": new_leader,
                      "failover_s": (ack - t_kill) if ack is not None else None,
                      "failed_writes": failed_n}
            if ack is None:
                doc["timeouts"] += 1
            # wait for the process to be gone before restarting it from its pid file
            for _ in range(500):
                if not _running(pid):
                    break
                time.sleep(0.01)
            r = subprocess.run(peers.cluster_cmd("start-node", "--data-dir", data_dir, "--node", str(leader)),
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"start-node {leader} failed: {r.stderr[-300:]}")
            new_pid = int(r.stdout.strip().split()[-1])
            peers.pin_pid_tree(new_pid, peers.SERVER_CPU)
            srv.pids[f"node-{leader}"] = new_pid
            sample.update(wait_healthy(srv, base, leader, writers, args.settle))
            doc["samples"].append(sample)
            fs = sample["failover_s"]
            print(f"kill {k + 1:2d}: leader node-{leader} -> node-{new_leader}: "
                  f"{'timeout' if fs is None else f'{fs * 1e3:7.0f} ms'}  "
                  f"({failed_n} failed writes; healthy again {sample['healthy_s']:.1f} s after restart)",
                  flush=True)
    except RuntimeError as e:   # keep the samples collected so far
        print(f"failover bench aborted: {e}", flush=True)
        doc["error"] = str(e)
    finally:
        if writers is not None:
            writers.close()
            doc["writes_ok"] = len(writers.ok)
            doc["writes_failed"] = len(writers.failed)
            doc["failure_samples"] = [f for _, _, f in writers.failed[:5]]
        srv.stop()
        for p in Path(data_dir).glob("*.log"):
            shutil.copy(p, peers.WORK_DIR / f"failover-{p.name}")
        shutil.rmtree(data_dir, ignore_errors=True)
    vals = [s["failover_s"] for s in doc["samples"] if s["failover_s"] is not None]
    if vals:
        doc["median_s"] = statistics.median(vals)
        doc["max_s"] = max(vals)
        doc["min_s"] = min(vals)
    return doc


def to_markdown(doc) -> str:
    def ms(v):
        return "timeout" if v is None else f"{v * 1e3:,.0f}"
    out = ["# triplica failover bench", "",
           f"- date: {doc['date']}", f"- command: `{doc['command']}`",
           f"- 3-node cluster (3 AZs) + router, processes pinned to CPU {doc['server_cpu']}; "
           f"{doc['writers']} PutItem writer threads (boto3, 1 attempt per request) on CPU {doc['client_cpu']}",
           "- failover time = kill -9 of the leader node -> acknowledgement of the first successful "
           "PutItem sent after the kill",
           f"- kills: {len(doc['samples'])} of {doc['kills']} planned; timeouts (> {FIRST_WRITE_WAIT_S:.0f} s): "
           f"{doc['timeouts']}",
           f"- writes: {doc.get('writes_ok', 0):,} ok, {doc.get('writes_failed', 0):,} failed in total", ""]
    if "median_s" in doc:
        out += [f"**median {ms(doc['median_s'])} ms, max {ms(doc['max_s'])} ms, min {ms(doc['min_s'])} ms**", ""]
    if doc.get("error"):
        out += [f"**aborted**: `{doc['error']}`", ""]
    out += ["| kill | leader killed | new leader | failover ms | writes failed during failover | healthy after restart s |",
            "|---|---|---|---|---|---|"]
    for s in doc["samples"]:
        out.append(f"| {s['kill']} | node-{s['leader']} | node-{s['new_leader']} | {ms(s['failover_s'])} | "
                   f"{s['failed_writes']} | {s['healthy_s']:.1f} |")
    if doc.get("failure_samples"):
        out += ["", "Failed write samples:", ""] + [f"- `{f}`" for f in doc["failure_samples"]]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--writers", type=int, default=4, help="concurrent PutItem loops")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds of steady writes between kills")
    ap.add_argument("--sync", default=None, help="pass --sync to cluster up (default batch)")
    args = ap.parse_args(argv)
    if (os.cpu_count() or 1) > CLIENT_CPU:
        os.sched_setaffinity(0, {CLIENT_CPU})
    peers.WORK_DIR.mkdir(parents=True, exist_ok=True)
    try:
        doc = run(args)
    except peers.Missing as e:
        print(f"failover bench aborted: {e}", flush=True)
        doc = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
               "command": "python bench/failover.py " + " ".join(sys.argv[1:]), "kills": args.kills,
               "writers": args.writers, "settle_s": args.settle, "server_cpu": peers.SERVER_CPU,
               "client_cpu": CLIENT_CPU, "samples": [], "timeouts": 0, "error": str(e)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "failover.json").write_text(json.dumps(doc, indent=2))
    text = to_markdown(doc)
    (RESULTS / "failover.md").write_text(text)
    print(text)
    return 0 if "median_s" in doc and not doc.get("error") else 1


if __name__ == "__main__":
    sys.exit(main())
