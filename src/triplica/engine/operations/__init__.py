"""DynamoDB's operations as a storage node runs them on its partitions.

Importing the package registers every handler in `service.OPERATIONS`.
"""
from triplica.engine.operations import batch, items, query, tables  # noqa: F401
