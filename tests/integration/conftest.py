from __future__ import annotations

import itertools
from typing import Any, Iterator

import pytest

from tests.integration.server import ServerProcess

_names = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(str(tmp_path_factory.mktemp("data"))).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def ddb(server: ServerProcess) -> Any:
    return server.client()


@pytest.fixture(scope="session")
def raw(server: ServerProcess) -> Any:
    """A client without botocore's parameter validation, to send bad input."""
    return server.client(validate=False)


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}-{next(_names)}"


def make_table(ddb: Any, name: str | None = None, range_key: tuple[str, str] | None = ("sk", "S"),
               hash_key: tuple[str, str] = ("pk", "S")) -> str:
    name = name or unique_name()
    schema = [{"AttributeName": hash_key[0], "KeyType": "HASH"}]
    definitions = [{"AttributeName": hash_key[0], "AttributeType": hash_key[1]}]
    if range_key:
        schema.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
        definitions.append({"AttributeName": range_key[0], "AttributeType": range_key[1]})
    ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=definitions,
                     BillingMode="PAY_PER_REQUEST")
    return name
