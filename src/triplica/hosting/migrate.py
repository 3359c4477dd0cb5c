"""`triplica migrate --data-dir D`: convert a data directory of the earlier release in place.

The earlier release (format 1, hosting/legacy_layout.py) kept one catalogue
for the server and a directory per partition; `triplica serve` now keeps a
deployment (format 2, hosting/serve.py): `D/deployment.json` and a directory
per storage node, the catalogue in the metadata group's log. serve refuses a
format 1 directory and names this command.

The conversion goes through the code the server runs, nothing written by
hand: the old partitions are recovered (their WAL replayed, their Paxos
groups run until a leader has applied every chosen entry; on copies), and a
Deployment started in this process on a fresh directory gets every table by
CreateTable on its control plane (keeping the table's id, creation time and
billing history: metadata/planning.py `restore`; ARN and region too, from
the table's region) and every item by BatchWriteItem through its router. A
table's item count is checked (a consistent Scan) before anything moves.
What is not kept: the partition layout. A table starts with the partitions
a new table of its billing mode and throughput gets, and splits again by
size (`serve --split-size-bytes`).

Crash safety. Everything is built in `D/.migrating-<stamp>/` (`old/`: the
copies that are recovered, `new/`: the new layout). Once the new layout is
complete and on disk, `manifest.json` is written there (durably): that is
the decision. Then the old entries (`tables/`) move into
`D/pre-migration-<stamp>/`, the new ones (`node-*`, then `deployment.json`)
into D, and last `catalog.json` moves out: until that rename D holds a
catalogue, so serve keeps refusing it; after it D is the new layout. A rerun
finds the work directory: with a manifest it finishes the moves (each one is
skipped if already done) and cleans up; without one it was cut short while
building, so it is deleted and the migration starts over. The old files are
never written: the old layout stays in `pre-migration-<stamp>/` for the
operator to delete. Two runs at once are kept apart by a lock on D.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from triplica.common.redirects import NotLeaderError
from triplica.engine.catalogue import CATALOGUE_FILE_NAME, TableInfo
from triplica.errors import (DynamoError, InternalServerError,
                             ProvisionedThroughputExceededException, ServiceUnavailable,
                             ThrottlingException)
from triplica.hosting.legacy_layout import (TABLES_DIRECTORY, LegacyLayoutError, is_legacy,
                                            is_replicated, items_of, partition_directory,
                                            read_tables, recover)
from triplica.hosting.serve import DEPLOYMENT_FILE, DataDirectoryError, Deployment, ServeSettings
from triplica.metadata.control_plane import ControlPlane
from triplica.router.node_client import Call
from triplica.storage.files import fsync_directory, read_json, write_json_durably

WORK_PREFIX = ".migrating-"
KEPT_PREFIX = "pre-migration-"
MANIFEST_FILE = "manifest.json"
NEW_DIRECTORY = "new"
COPIES_DIRECTORY = "old"
# What the earlier release wrote at the top of D; the catalogue moves last (the switch).
OLD_ENTRIES = (TABLES_DIRECTORY, CATALOGUE_FILE_NAME + ".tmp")
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
HOST = "migrate"
BATCH_ITEMS_MAX = 25                # BatchWriteItem's limit
WRITE_ATTEMPTS_MAX = 100            # per batch, for throttling and leader changes
RETRY_S_MAX = 0.5
READY_WAIT_S = 60.0
CONTROL_WAIT_S_MAX = 60.0
CONTROL_POLL_S = 0.05
RETRYABLE = (InternalServerError, ServiceUnavailable, ThrottlingException,
             ProvisionedThroughputExceededException)

Print = Callable[[str], None]


class MigrateError(Exception):
    """The directory can't be migrated (the message says why; nothing was moved)."""


@dataclass(frozen=True)
class Plan:
    """What a run does with D: migrate it, finish an interrupted run, or refuse."""

    action: str                 # "migrate" | "finish" | "refuse"
    reason: str = ""            # why it refuses
    work: str | None = None     # the work directory to finish
    stale: tuple[str, ...] = ()  # work directories of runs cut short while building


def plan(data_dir: str) -> Plan:
    """Decide from what D holds (see the module docstring)."""
    if not os.path.isdir(data_dir):
        return Plan("refuse", f"{data_dir} does not exist; nothing to migrate")
    names = sorted(os.listdir(data_dir))
    works = [os.path.join(data_dir, n) for n in names if n.startswith(WORK_PREFIX)]
    decided = [w for w in works if os.path.exists(os.path.join(w, MANIFEST_FILE))]
    if decided:
        return Plan("finish", work=decided[-1],
                    stale=tuple(w for w in works if w != decided[-1]))
    if is_legacy(data_dir):
        return Plan("migrate", stale=tuple(works))
    if os.path.exists(os.path.join(data_dir, DEPLOYMENT_FILE)):
        return Plan("refuse", f"{data_dir} is already in the current layout ({DEPLOYMENT_FILE}); "
                              "nothing to migrate, nothing was changed")
    if not names:
        return Plan("refuse", f"{data_dir} is empty; nothing to migrate (triplica serve makes "
                              "its own layout in an empty directory)")
    return Plan("refuse", f"{data_dir} is not a triplica data directory this release knows "
                          f"(no {CATALOGUE_FILE_NAME}, no {DEPLOYMENT_FILE}); nothing was changed")


def run_migrate(data_dir: str, replicas: int | None = None, out: Print = print) -> int:
    """The command: 0 once D is in the current layout, 1 (message on stderr) if refused."""
    try:
        with _locked(data_dir):
            decided = plan(data_dir)
            if decided.action == "refuse":
                raise MigrateError(decided.reason)
            for stale in decided.stale:
                out(f"removing {stale}: an earlier run stopped before its new layout was complete")
                shutil.rmtree(stale)
            if decided.action == "finish":
                assert decided.work is not None
                out(f"finishing the migration that {decided.work} records")
                manifest = read_json(os.path.join(decided.work, MANIFEST_FILE))
            else:
                manifest = _build(data_dir, replicas, out)
            _switch(data_dir, manifest, out)
    except (MigrateError, LegacyLayoutError, DataDirectoryError) as error:
        print(f"triplica migrate: {error}", file=sys.stderr, flush=True)
        return 1
    flags = "" if manifest["replicas"] == 3 else " --replicas 1"
    out(f"{data_dir} is in the current layout; serve it with: "
        f"triplica serve --data-dir {data_dir}{flags}")
    return 0


class _locked:
    """An exclusive lock on D itself (no file of ours left behind), for the run."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.fd: int | None = None

    def __enter__(self) -> None:
        if not os.path.isdir(self.data_dir):
            return  # plan() refuses it
        self.fd = os.open(self.data_dir, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise MigrateError(f"another triplica migrate is running on {self.data_dir}") from None

    def __exit__(self, *exc_info: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock


# ------------------------------------------------------------------ building

def _build(data_dir: str, replicas: int | None, out: Print) -> dict[str, Any]:
    """Build the new layout in a work directory; the manifest that decides the switch."""
    import uvloop

    tables = read_tables(data_dir)
    stamp = time.strftime(STAMP_FORMAT, time.gmtime())
    work = os.path.join(data_dir, WORK_PREFIX + stamp)
    os.makedirs(work)
    try:
        copies = _copy_partitions(data_dir, tables, os.path.join(work, COPIES_DIRECTORY))
        if replicas is None:
            replicas = 1 if copies and not any(is_replicated(c) for c in copies.values()) else 3
        out(f"migrating {data_dir}: {len(tables)} tables, {replicas} replicas per partition; "
            f"building the new layout in {work}")
        settings = ServeSettings(data_dir=os.path.join(work, NEW_DIRECTORY),
                                 nodes=3 if replicas == 3 else 1, replicas=replicas)
        counts = uvloop.run(_fill(settings, tables, copies, out))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # nothing was moved: D is as it was
        raise
    shutil.rmtree(os.path.join(work, COPIES_DIRECTORY), ignore_errors=True)  # none: no tables
    os.sync()  # the new layout's LMDB stores are written without fsync: all of it to disk
    present = set(os.listdir(data_dir))
    new = sorted(os.listdir(settings.data_dir), key=lambda n: (n == DEPLOYMENT_FILE, n))
    assert not present & set(new), present & set(new)
    manifest = {"stamp": stamp, "replicas": replicas, "nodes": settings.nodes,
                "old": [n for n in OLD_ENTRIES if n in present], "new": new, "items": counts}
    write_json_durably(os.path.join(work, MANIFEST_FILE), manifest)
    return manifest


def _copy_partitions(data_dir: str, tables: list[TableInfo], into: str) -> dict[str, str]:
    """Copies of the partitions the catalogue names, by partition id (recovery writes)."""
    copies = {}
    for info in tables:
        for partition in info.partitions:
            source = partition_directory(data_dir, info, partition)
            target = os.path.join(into, info.table_id, partition.partition_id)
            if os.path.isdir(source):
                shutil.copytree(source, target, symlinks=True)
            copies[partition.partition_id] = target
    return copies


async def _fill(settings: ServeSettings, tables: list[TableInfo], copies: dict[str, str],
                out: Print) -> dict[str, int]:
    deployment = Deployment(settings)
    try:
        await deployment.start()
        waiting = await deployment.wait_ready(READY_WAIT_S)
        if waiting:
            raise MigrateError(f"the new deployment has groups with no leader: {waiting}")
        counts = {}
        for info in tables:
            await _create(deployment, info)
            written = 0
            for partition in info.partitions:
                store = await recover(copies[partition.partition_id])
                written += await _write_items(deployment, info, items_of(store, partition))
            found = await _count(deployment, info)
            if found != written:
                raise MigrateError(f"table {info.name}: wrote {written} items but a scan of the "
                                   f"new layout finds {found}; nothing was moved")
            counts[info.name] = written
            out(f"table {info.name}: {written} items "
                f"(from {len(info.partitions)} partitions)")
        return counts
    finally:
        await deployment.close()


def create_request(info: TableInfo) -> dict[str, Any]:
    """The CreateTable that makes `info` again (its definition, not its partitions)."""
    request: dict[str, Any] = {
        "TableName": info.name, "KeySchema": info.key_schema(),
        "AttributeDefinitions": info.attribute_definitions, "BillingMode": info.billing_mode,
        "TableClass": info.table_class, "DeletionProtectionEnabled": info.deletion_protection}
    if info.billing_mode == "PROVISIONED":
        request["ProvisionedThroughput"] = {"ReadCapacityUnits": info.read_units,
                                            "WriteCapacityUnits": info.write_units}
    if info.tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in info.tags.items()]
    return request


async def _create(deployment: Deployment, info: TableInfo) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONTROL_WAIT_S_MAX
    while True:
        control = _control_leader(deployment)
        try:
            if control is not None:
                await control.handle("CreateTable", create_request(info), info.region, HOST,
                                     restore=info)
                break
        except RETRYABLE:
            pass
        except DynamoError as error:
            raise MigrateError(f"table {info.name}: CreateTable refused: {error.message}") from None
        except NotLeaderError as error:  # the metadata group changed leader meanwhile
            if loop.time() >= deadline:
                raise MigrateError(f"table {info.name}: CreateTable failed: {error!r}") from None
        if loop.time() >= deadline:
            raise MigrateError(f"table {info.name}: no metadata leader took CreateTable in "
                               f"{CONTROL_WAIT_S_MAX:.0f} s")
        await asyncio.sleep(CONTROL_POLL_S)
    while (await _ask(deployment, "DescribeTable", {"TableName": info.name},
                      info))["Table"]["TableStatus"] != "ACTIVE":
        if loop.time() >= deadline:
            raise MigrateError(f"table {info.name}: not ACTIVE after {CONTROL_WAIT_S_MAX:.0f} s")
        await asyncio.sleep(CONTROL_POLL_S)


def _control_leader(deployment: Deployment) -> ControlPlane | None:
    for role in deployment.roles.values():
        if role.control is not None and role.control.metadata.is_leader():
            return role.control
    return None


async def _write_items(deployment: Deployment, info: TableInfo,
                       items: Iterator[dict[str, Any]]) -> int:
    written = 0
    for batch in _batches(items, BATCH_ITEMS_MAX):
        requests = [{"PutRequest": {"Item": item}} for item in batch]
        for attempt in range(WRITE_ATTEMPTS_MAX):
            try:
                answer = await _ask(deployment, "BatchWriteItem",
                                    {"RequestItems": {info.name: requests}}, info)
                requests = answer.get("UnprocessedItems", {}).get(info.name, [])
            except RETRYABLE:
                pass
            if not requests:
                break
            await asyncio.sleep(min(RETRY_S_MAX, 0.01 * 2 ** attempt))
        else:
            raise MigrateError(f"table {info.name}: {len(requests)} items still unwritten after "
                               f"{WRITE_ATTEMPTS_MAX} attempts; nothing was moved")
        written += len(batch)
    return written


async def _count(deployment: Deployment, info: TableInfo) -> int:
    count, start = 0, None
    while True:
        request: dict[str, Any] = {"TableName": info.name, "Select": "COUNT",
                                   "ConsistentRead": True}
        if start is not None:
            request["ExclusiveStartKey"] = start
        page = await _ask(deployment, "Scan", request, info)
        count += page["Count"]
        start = page.get("LastEvaluatedKey")
        if start is None:
            return count


async def _ask(deployment: Deployment, operation: str, parameters: dict[str, Any],
               info: TableInfo) -> dict[str, Any]:
    """One operation through the deployment's router, as the HTTP front would send it."""
    assert deployment.router is not None
    answer = deployment.router.handle(Call(operation, parameters, info.region, HOST))
    if asyncio.isfuture(answer) or asyncio.iscoroutine(answer):
        answer = await answer
    return orjson.loads(answer) if isinstance(answer, (bytes, bytearray)) else answer


def _batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ----------------------------------------------------------------- switching

def _switch(data_dir: str, manifest: dict[str, Any], out: Print) -> None:
    """Move the old layout aside and the new one in, catalogue last (module docstring).
    Every step is skipped if done, so an interrupted switch is finished by a rerun."""
    work = os.path.join(data_dir, WORK_PREFIX + manifest["stamp"])
    kept = os.path.join(data_dir, KEPT_PREFIX + manifest["stamp"])
    os.makedirs(kept, exist_ok=True)
    for name in manifest["old"]:
        _move(os.path.join(data_dir, name), os.path.join(kept, name))
    for name in manifest["new"]:
        _move(os.path.join(work, NEW_DIRECTORY, name), os.path.join(data_dir, name))
    fsync_directory(kept)
    fsync_directory(data_dir)
    _move(os.path.join(data_dir, CATALOGUE_FILE_NAME), os.path.join(kept, CATALOGUE_FILE_NAME))
    fsync_directory(kept)
    fsync_directory(data_dir)
    shutil.rmtree(work)
    for table, items in sorted(manifest["items"].items()):
        out(f"migrated table {table}: {items} items")
    left = sorted(n for n in os.listdir(data_dir) if n not in manifest["new"]
                  and not n.startswith(KEPT_PREFIX))
    if left:
        out(f"left as they were in {data_dir}: {', '.join(left)}")
    out(f"the previous layout is kept in {kept}; delete it once the new one serves")


def _move(source: str, target: str) -> None:
    if os.path.lexists(source):
        os.rename(source, target)
