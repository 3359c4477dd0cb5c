"""Send fuzz cases to a real server and check every answer.

A case is a JSON request (operation + document), a raw body with chosen
headers, or raw bytes on a fresh socket. After each one:
- the answer is well formed: 200 with a JSON object, or 400/413 with
  DynamoDB's error body (`__type` ending in `#<ErrorName>`, a string
  message) and the x-amzn-RequestId / x-amz-crc32 headers; never a 5xx;
- the server is still up (the next request gets an answer);
- a request the service model alone says must fail (tests/fuzz/oracle.py)
  did fail;
- a rejected request changed nothing: the fuzz tables' items, settings and
  tags and the table list equal the snapshot taken before it. A successful
  request that may write takes a new snapshot, and the harness then puts
  the world back in shape (extra tables deleted, missing ones recreated,
  tables kept small) so later cases still reach the interesting code.
"""
from __future__ import annotations

import collections
import http.client
import json
import socket
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from tests.fuzz.oracle import must_be_refused
from tests.integration.raw_http import AUTH, TARGET_PREFIX

BASE_TABLES = {
    "fz-hash": {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}},
    "fz-range": {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                               {"AttributeName": "sk", "KeyType": "RANGE"}],
                 "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                          {"AttributeName": "sk", "AttributeType": "N"}],
                 "BillingMode": "PAY_PER_REQUEST"},
    # Secondary indexes: a local one (its entries are part of the snapshot) and a global one.
    "fz-index": {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                               {"AttributeName": "sk", "KeyType": "RANGE"}],
                 "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                          {"AttributeName": "sk", "AttributeType": "N"},
                                          {"AttributeName": "a", "AttributeType": "N"},
                                          {"AttributeName": "s", "AttributeType": "S"}],
                 "LocalSecondaryIndexes": [
                     {"IndexName": "by_a", "Projection": {"ProjectionType": "INCLUDE",
                                                          "NonKeyAttributes": ["b"]},
                      "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "a", "KeyType": "RANGE"}]}],
                 "GlobalSecondaryIndexes": [
                     {"IndexName": "by_s", "Projection": {"ProjectionType": "KEYS_ONLY"},
                      "KeySchema": [{"AttributeName": "s", "KeyType": "HASH"}]}],
                 "BillingMode": "PAY_PER_REQUEST"},
}
# Local secondary indexes whose entries the snapshot holds: table -> index names.
LOCAL_INDEXES = {"fz-index": ("by_a",)}
# Operations that never write: their successes must leave the snapshot alone too.
READ_ONLY = frozenset({
    "GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "ListTables",
    "ListTagsOfResource", "DescribeLimits", "DescribeEndpoints", "DescribeTimeToLive",
    "DescribeContinuousBackups", "ListBackups", "ListGlobalTables", "ListExports",
    "ListImports", "ListContributorInsights", "TransactGetItems",
})
ITEMS_PER_TABLE_MAX = 40
TAGS_PER_TABLE_MAX = 40
ACCEPTED_STATUSES = (200, 400, 413)
RAW_TIMEOUT_S = 5.0


class FuzzFailure(AssertionError):
    pass


@dataclass
class Tally:
    """What the run saw: answers by status class and by error type."""
    cases: int = 0
    by_class: collections.Counter = field(default_factory=collections.Counter)
    by_error: collections.Counter = field(default_factory=collections.Counter)
    by_kind: collections.Counter = field(default_factory=collections.Counter)
    server_errors: int = 0
    started_s: float = field(default_factory=time.monotonic)

    def note(self, kind: str, status: int | None, error: str | None) -> None:
        self.cases += 1
        self.by_kind[kind] += 1
        status_class = "no answer" if status is None else f"{status // 100}xx"
        self.by_class[status_class] += 1
        if status is not None and status >= 500:
            self.server_errors += 1
        if error:
            self.by_error[error] += 1

    def summary(self) -> str:
        seconds = time.monotonic() - self.started_s
        classes = ", ".join(f"{name}: {count}" for name, count in sorted(self.by_class.items()))
        kinds = ", ".join(f"{name}: {count}" for name, count in sorted(self.by_kind.items()))
        errors = ", ".join(f"{name} {count}" for name, count in self.by_error.most_common())
        return (f"fuzz: {self.cases} cases in {seconds:.1f} s ({kinds}); answers {classes}; "
                f"5xx: {self.server_errors}; errors: {errors}")


class Target:
    """One server under fuzz, with its fuzz tables and the last snapshot."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.tally = Tally()
        self._connection: http.client.HTTPConnection | None = None
        self.restore()
        self.snapshot = self.take_snapshot()

    # ----- plain requests ----------------------------------------------------

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        for attempt in range(2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                              timeout=60)
            try:
                self._connection.request("POST", "/", body=body, headers=headers)
                response = self._connection.getresponse()
                payload = response.read()
                answer = response.status, {k.lower(): v for k, v in response.getheaders()}, payload
                if response.will_close:
                    self._close()
                return answer
            except (http.client.HTTPException, ConnectionError, OSError):
                self._close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def call(self, operation: str, document: Any) -> tuple[int, Any]:
        """A harness request (not a case): must succeed or fail cleanly."""
        status, _, body = self._post(json.dumps(document).encode(), {
            "X-Amz-Target": TARGET_PREFIX + operation, "Authorization": AUTH,
            "Content-Type": "application/x-amz-json-1.0"})
        if status >= 500:
            raise FuzzFailure(f"harness {operation} got {status}: {body[:300]!r}")
        return status, json.loads(body) if body else {}

    # ----- the world ---------------------------------------------------------

    def restore(self) -> None:
        """Fuzz tables present and small, nothing else."""
        _, listed = self.call("ListTables", {})
        names = set(listed.get("TableNames", []))
        for name in names - set(BASE_TABLES):
            self.call("UpdateTable", {"TableName": name, "DeletionProtectionEnabled": False})
            self.call("DeleteTable", {"TableName": name})
        for name, spec in BASE_TABLES.items():
            if name not in names:
                status, answer = self.call("CreateTable", {"TableName": name, **spec})
                if status != 200:
                    raise FuzzFailure(f"cannot create {name}: {answer}")
            self._trim(name)

    def _trim(self, name: str) -> None:
        _, found = self.call("Scan", {"TableName": name, "ConsistentRead": True})
        keys = [{k: item[k] for k in ("pk", "sk") if k in item} for item in found.get("Items", [])]
        for key in keys[ITEMS_PER_TABLE_MAX:]:
            self.call("DeleteItem", {"TableName": name, "Key": key})
        arn = self._arn(name)
        if arn is not None:
            _, tags = self.call("ListTagsOfResource", {"ResourceArn": arn})
            keys_of_tags = [tag["Key"] for tag in tags.get("Tags", [])]
            if len(keys_of_tags) > TAGS_PER_TABLE_MAX:
                self.call("UntagResource", {"ResourceArn": arn, "TagKeys": keys_of_tags})

    def _arn(self, name: str) -> str | None:
        status, described = self.call("DescribeTable", {"TableName": name})
        return described["Table"]["TableArn"] if status == 200 else None

    def take_snapshot(self) -> dict[str, Any]:
        _, listed = self.call("ListTables", {})
        state: dict[str, Any] = {"tables": sorted(listed.get("TableNames", []))}
        for name in BASE_TABLES:
            status, described = self.call("DescribeTable", {"TableName": name})
            if status != 200:
                state[name] = None
                continue
            table = described["Table"]
            _, found = self.call("Scan", {"TableName": name, "ConsistentRead": True})
            _, tags = self.call("ListTagsOfResource", {"ResourceArn": table["TableArn"]})
            entries = {}
            for index in LOCAL_INDEXES.get(name, ()):
                _, answer = self.call("Scan", {"TableName": name, "IndexName": index,
                                               "ConsistentRead": True})
                entries[index] = [json.dumps(item, sort_keys=True)
                                  for item in answer.get("Items", [])]
            state[name] = {
                "items": sorted(json.dumps(item, sort_keys=True) for item in found["Items"]),
                "index entries": entries,
                # A global index's counts follow propagation (eventually consistent, from
                # the answering node's replicas): not part of what a request may change.
                "indexes": (table.get("LocalSecondaryIndexes"), [
                    {k: v for k, v in i.items()
                     if k not in ("IndexStatus", "IndexSizeBytes", "ItemCount")}
                    for i in table.get("GlobalSecondaryIndexes", [])]),
                "schema": (table["KeySchema"], table["AttributeDefinitions"]),
                "billing": table["BillingModeSummary"]["BillingMode"],
                "throughput": (table["ProvisionedThroughput"]["ReadCapacityUnits"],
                               table["ProvisionedThroughput"]["WriteCapacityUnits"]),
                "class": table.get("TableClassSummary"),
                "protected": table.get("DeletionProtectionEnabled"),
                "tags": sorted((t["Key"], t["Value"]) for t in tags.get("Tags", [])),
                "id": table["TableId"],
            }
        return state

    # ----- cases -------------------------------------------------------------

    def request_case(self, operation: str, document: Any, kind: str = "json") -> None:
        body = json.dumps(document).encode()
        headers = {"X-Amz-Target": TARGET_PREFIX + operation, "Authorization": AUTH,
                   "Content-Type": "application/x-amz-json-1.0"}
        refused_because = must_be_refused(operation, document)
        status = self._case(kind, operation, body, headers)
        if status == 200 and refused_because is not None:
            raise FuzzFailure(f"{operation} succeeded but must be refused ({refused_because})\n"
                              f"request: {body[:2000]!r}")

    def body_case(self, operation: str, body: bytes, headers: dict[str, str]) -> None:
        base = {"X-Amz-Target": TARGET_PREFIX + operation, "Authorization": AUTH}
        base.update(headers)
        self._case("raw-body", operation, body, {k: v for k, v in base.items() if v is not None})

    def _case(self, kind: str, operation: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            status, reply_headers, reply = self._post(body, headers)
        except (http.client.HTTPException, OSError) as error:
            self.tally.note(kind, None, None)
            raise FuzzFailure(f"no answer to {operation}: {error!r}; server down?") from None
        error = check_answer(status, reply_headers, reply, operation)
        self.tally.note(kind, status, error)
        if status >= 500 or status not in ACCEPTED_STATUSES:
            raise FuzzFailure(f"{operation} answered {status}: {reply[:500]!r}\n"
                              f"request: {body[:2000]!r}")
        self._check_world(operation, status == 200)
        return status

    def _check_world(self, operation: str, succeeded: bool) -> None:
        if succeeded and operation not in READ_ONLY:
            self.restore()
            self.snapshot = self.take_snapshot()
            return
        now = self.take_snapshot()
        if now != self.snapshot:
            changed = {k for k in now if now[k] != self.snapshot.get(k)}
            raise FuzzFailure(f"{'a read' if succeeded else 'a rejected'} {operation} "
                              f"changed {sorted(changed)}: before {self.snapshot} after {now}")

    def socket_case(self, data: bytes) -> None:
        """Raw bytes on a fresh connection, then half-close: any answer must be an
        HTTP response with a non-5xx status, and the server must stay up."""
        status = None
        with socket.create_connection(("127.0.0.1", self.port), timeout=RAW_TIMEOUT_S) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                received = _read_all(sock)
            except OSError:
                received = b""
        if received:
            line = received.split(b"\r\n", 1)[0]
            parts = line.split(b" ")
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                self.tally.note("socket", None, None)
                raise FuzzFailure(f"not an HTTP response: {received[:200]!r} to {data[:200]!r}")
            status = int(parts[1])
        self.tally.note("socket", status, None)
        if status is not None and status >= 500:
            raise FuzzFailure(f"raw bytes answered {status}: {received[:300]!r} "
                              f"to {data[:300]!r}")
        self._check_world("raw bytes", False)

    def check_up(self) -> None:
        status, _ = self.call("ListTables", {})
        if status != 200:
            raise FuzzFailure(f"server no longer answers ListTables: {status}")


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    deadline = time.monotonic() + RAW_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


# Successes DynamoDB answers with an empty body.
EMPTY_SUCCESSES = frozenset({"TagResource", "UntagResource"})


def check_answer(status: int, headers: dict[str, str], body: bytes,
                 operation: str = "") -> str | None:
    """Raise FuzzFailure unless the answer is well formed; return the error name."""
    if "x-amzn-requestid" not in headers:
        raise FuzzFailure(f"no x-amzn-RequestId on a {status} answer: {headers}")
    crc = headers.get("x-amz-crc32")
    if crc is None or int(crc) != zlib.crc32(body):
        raise FuzzFailure(f"x-amz-crc32 {crc} does not match the body")
    if status == 200 and not body and operation in EMPTY_SUCCESSES:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        raise FuzzFailure(f"{status} answer is not JSON: {body[:300]!r}") from None
    if not isinstance(document, dict):
        raise FuzzFailure(f"{status} answer is not a JSON object: {body[:300]!r}")
    if status == 200:
        return None
    kind = document.get("__type")
    message = document.get("message", document.get("Message"))
    if not isinstance(kind, str) or "#" not in kind or not kind.rpartition("#")[2]:
        raise FuzzFailure(f"error without a DynamoDB __type: {body[:300]!r}")
    if not isinstance(message, str):
        raise FuzzFailure(f"error without a message: {body[:300]!r}")
    return kind.rpartition("#")[2]
