"""Small durable-file helpers shared by the WAL, the drivers and the node.

A rename or a new file is durable only once its directory is fsynced; a
JSON document replaces its predecessor atomically (write a temporary file,
fsync it, rename it over, fsync the directory).
"""
from __future__ import annotations

import json
import os
from typing import Any


def fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_durably(path: str, document: Any) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    temporary = path + ".tmp"
    with open(temporary, "w") as file:
        json.dump(document, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    fsync_directory(directory)


def read_json(path: str) -> Any:
    with open(path, "rb") as file:
        return json.load(file)
