"""triplica: a DynamoDB-compatible database with replicated, self-verifying storage."""

__version__ = "0.1.0"
