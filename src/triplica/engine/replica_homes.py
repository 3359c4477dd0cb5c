"""Where a node keeps its replicas of one partition: one home per replica id.

A partition's directory on a node (`tables/<table id>/<partition id>/`) is
the home of the node's generation-0 replica (replica id = node id, every
replica placed by the metadata system and every replica of data
directories older than replica ids). A replica that replaces a stopped one
on the same node (metadata/replica_mover.py) has a later generation and
its home in a subdirectory, `r<generation>/`, so that two replicas of one
group can live on one node while the replacement is under way. A home
holds the group file (`group.json`: group key, members, `replica` id,
`joining` while the move that added it is not recorded) and the replica's
files (`replica/`, with quarantined copies beside it).
"""
from __future__ import annotations

import os
import shutil

from triplica.common.replica_ids import generation_of, node_of
from triplica.storage.files import read_json

GROUP_FILE = "group.json"
GENERATION_PREFIX = "r"


def home_of(partition_dir: str, replica: int) -> str:
    generation = generation_of(replica)
    if generation == 0:
        return partition_dir
    return os.path.join(partition_dir, f"{GENERATION_PREFIX}{generation}")


def _is_generation_dir(name: str) -> bool:
    return name.startswith(GENERATION_PREFIX) and name[len(GENERATION_PREFIX):].isdigit()


def read_homes(partition_dir: str, node: int) -> dict[int, dict]:
    """The replicas of `node` with a group file under `partition_dir`: replica id ->
    the group file's document."""
    found: dict[int, dict] = {}
    if not os.path.isdir(partition_dir):
        return found
    candidates = [partition_dir] + [os.path.join(partition_dir, name)
                                    for name in sorted(os.listdir(partition_dir))
                                    if _is_generation_dir(name)]
    for home in candidates:
        path = os.path.join(home, GROUP_FILE)
        if not os.path.exists(path):
            continue
        document = read_json(path)
        replica = int(document.get("replica", node))
        assert node_of(replica) == node and home_of(partition_dir, replica) == home, \
            (path, replica, node)
        found[replica] = document
    return found


def remove_home(partition_dir: str, replica: int) -> None:
    """Delete one replica's home, leaving the node's other replicas of the partition."""
    home = home_of(partition_dir, replica)
    if home != partition_dir:
        shutil.rmtree(home, ignore_errors=True)
        return
    if not os.path.isdir(partition_dir):
        return
    for name in os.listdir(partition_dir):
        if _is_generation_dir(name):
            continue
        path = os.path.join(partition_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(partition_dir)  # only if no other generation lives here
    except OSError:
        pass
