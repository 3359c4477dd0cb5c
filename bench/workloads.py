"""Tables, data loading and the request mixes of each workload."""
from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

from loadgen import ACCESS_KEY, REGION, SECRET_KEY, SigV4, build_request

KV, Q = "bench_kv", "bench_q"   # DynamoDB table names need >= 3 chars
KV_ITEMS = 10_000
Q_KEYS, Q_PER_KEY = 1_000, 10
PAYLOAD_LEN = 170          # with keys and names, items are ~200 bytes

WORKLOADS = {
    # name: (description, [(cumulative probability, pool)])
    "get":    ("GetItem (eventually consistent), uniform random key over 10,000 items", [(1.0, "get")]),
    "get_strong": ("GetItem ConsistentRead=true, uniform random key over 10,000 items",
                   [(1.0, "get_strong")]),
    "put":    ("PutItem of a ~200 B item, uniform random key (overwrite)", [(1.0, "put")]),
    "update": ("UpdateItem SET n = n + :one IF attribute_exists(pk)", [(1.0, "update")]),
    "query":  ("Query one partition key, 10 items back", [(1.0, "query")]),
    "ycsb_a": ("YCSB A: 50% GetItem / 50% UpdateItem", [(0.5, "get"), (1.0, "update")]),
    "ycsb_b": ("YCSB B: 95% GetItem / 5% UpdateItem", [(0.95, "get"), (1.0, "update")]),
}


def kv_key(i: int) -> str:
    return f"k{i:07d}"


def q_key(i: int) -> str:
    return f"p{i:05d}"


def _payload(rng: random.Random) -> str:
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=PAYLOAD_LEN))


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _client(endpoint: str):
    import boto3
    from botocore.config import Config
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                      max_pool_connections=8))


def _wait_active(c, table: str, limit: float = 60.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if c.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise RuntimeError(f"table {table} not ACTIVE after {limit} s")


def _batch_write(c, table: str, items: list[dict]):
    pending = {table: [{"PutRequest": {"Item": it}} for it in items]}
    for attempt in range(20):             # bounded retries of UnprocessedItems
        out = c.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not out:
            return
        pending = out
        time.sleep(min(1.0, 0.05 * 2 ** attempt))
    raise RuntimeError(f"BatchWriteItem on {table}: items still unprocessed after 20 tries")


def setup(endpoint: str, seed: int = 1):
    """Create kv (pk) and q (pk, sk), wait for ACTIVE, load the data."""
    c = _client(endpoint)
    for name, keys in ((KV, [("pk", "HASH")]), (Q, [("pk", "HASH"), ("sk", "RANGE")])):
        c.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": a, "KeyType": t} for a, t in keys],
                       AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in keys])
    for name in (KV, Q):
        _wait_active(c, name)
    rng = random.Random(seed)
    kv = [{"pk": {"S": kv_key(i)}, "n": {"N": "0"}, "data": {"S": _payload(rng)}} for i in range(KV_ITEMS)]
    q = [{"pk": {"S": q_key(i)}, "sk": {"S": f"s{j:03d}"}, "n": {"N": str(j)}, "data": {"S": _payload(rng)}}
         for i in range(Q_KEYS) for j in range(Q_PER_KEY)]
    jobs = [(KV, kv[i:i + 25]) for i in range(0, len(kv), 25)]
    jobs += [(Q, q[i:i + 25]) for i in range(0, len(q), 25)]
    with ThreadPoolExecutor(4) as ex:
        for f in [ex.submit(_batch_write, c, t, items) for t, items in jobs]:
            f.result()
    # Sanity: the data is there.
    got = c.get_item(TableName=KV, Key={"pk": {"S": kv_key(KV_ITEMS - 1)}}).get("Item")
    cnt = c.query(TableName=Q, KeyConditionExpression="pk = :p",
                  ExpressionAttributeValues={":p": {"S": q_key(0)}})["Count"]
    if not got or cnt != Q_PER_KEY:
        raise RuntimeError(f"load check failed (item={bool(got)}, query count={cnt})")


def _has_item(body: bytes) -> bool:
    return b'"Item"' in body


def _ten_items(body: bytes) -> bool:
    try:
        return len(json.loads(body)["Items"]) == Q_PER_KEY
    except (ValueError, KeyError, TypeError):
        return False


def build_pools(host: str, seed: int = 2) -> dict[str, list[tuple[bytes, object]]]:
    """Pre-built, pre-signed raw requests per pool: (bytes, validator)."""
    s = SigV4(host)
    rng = random.Random(seed)
    pools = {"get": [], "get_strong": [], "put": [], "update": [], "query": []}
    for i in range(KV_ITEMS):
        k = {"pk": {"S": kv_key(i)}}
        pools["get"].append((build_request(s, "GetItem", _dumps({"TableName": KV, "Key": k})), _has_item))
        pools["get_strong"].append((build_request(s, "GetItem", _dumps(
            {"TableName": KV, "Key": k, "ConsistentRead": True})), _has_item))
        item = {"pk": {"S": kv_key(i)}, "n": {"N": "0"}, "data": {"S": _payload(rng)}}
        pools["put"].append((build_request(s, "PutItem", _dumps({"TableName": KV, "Item": item})), None))
        upd = {"TableName": KV, "Key": k, "ConditionExpression": "attribute_exists(pk)",
               "UpdateExpression": "SET n = n + :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}
        pools["update"].append((build_request(s, "UpdateItem", _dumps(upd)), None))
    for i in range(Q_KEYS):
        qb = {"TableName": Q, "KeyConditionExpression": "pk = :p",
              "ExpressionAttributeValues": {":p": {"S": q_key(i)}}}
        pools["query"].append((build_request(s, "Query", _dumps(qb)), _ten_items))
    return pools


def make_picker(workload: str, pools, seed: int = 3):
    """Return next_request() -> (raw, validator) for the workload's mix."""
    mix = [(p, pools[name]) for p, name in WORKLOADS[workload][1]]
    rnd = random.Random(seed).random
    if len(mix) == 1:
        pool = mix[0][1]
        n = len(pool)
        return lambda: pool[int(rnd() * n)]

    def pick():
        r = rnd()
        for p, pool in mix:
            if r < p:
                return pool[int(rnd() * len(pool))]
        return mix[-1][1][0]
    return pick
