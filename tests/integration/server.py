"""Start and stop a real `triplica serve` process for tests (127.0.0.1 only)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import boto3
from botocore.config import Config

STARTUP_SECONDS_MAX = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """One server subprocess; `kill()` is SIGKILL, `stop()` is SIGTERM."""

    def __init__(self, data_dir: str, *extra: str, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.extra = list(extra)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        command = [sys.executable, "-m", "triplica.cli", "serve", "--host", "127.0.0.1",
                   "--port", str(self.port), "--data-dir", self.data_dir, *self.extra]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=None, text=True)
        deadline = time.monotonic() + STARTUP_SECONDS_MAX
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening" not in line:
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not accept connections")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, validate: bool = True, **config: Any) -> Any:
        return boto3.client(
            "dynamodb", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
            config=Config(parameter_validation=validate, retries={"max_attempts": 1},
                          connect_timeout=5, read_timeout=30, **config))
