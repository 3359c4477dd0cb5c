"""DynamoDB error types.

Every expected failure is one of these exceptions. Each maps to exactly one
DynamoDB error type (the `__type` suffix in the JSON error body) and an HTTP
status. A broken invariant is not one of these: it is an AssertionError or
another bug, and the HTTP layer turns it into a 500 InternalServerError.
"""
from __future__ import annotations

from typing import Any

ERROR_PREFIX_DYNAMODB = "com.amazonaws.dynamodb.v20120810#"
ERROR_PREFIX_COYOTE = "com.amazon.coral.service#"
ERROR_PREFIX_VALIDATE = "com.amazon.coral.validate#"
ERROR_PREFIX_AVAILABILITY = "com.amazon.coral.availability#"


class DynamoError(Exception):
    """Base class: a DynamoDB error with its wire type name and status."""

    type_name: str = "InternalServerError"
    status: int = 400
    prefix: str = ERROR_PREFIX_DYNAMODB

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"__type": self.prefix + self.type_name, "message": self.message}


class ValidationException(DynamoError):
    type_name = "ValidationException"
    prefix = ERROR_PREFIX_VALIDATE


class SerializationException(DynamoError):
    type_name = "SerializationException"
    prefix = ERROR_PREFIX_COYOTE


class UnknownOperationException(DynamoError):
    type_name = "UnknownOperationException"
    prefix = ERROR_PREFIX_COYOTE


class MissingAuthenticationTokenException(DynamoError):
    type_name = "MissingAuthenticationTokenException"
    prefix = ERROR_PREFIX_COYOTE


class UnrecognizedClientException(DynamoError):
    type_name = "UnrecognizedClientException"
    prefix = ERROR_PREFIX_COYOTE


class InvalidSignatureException(DynamoError):
    type_name = "InvalidSignatureException"
    prefix = ERROR_PREFIX_COYOTE


class IncompleteSignatureException(DynamoError):
    type_name = "IncompleteSignatureException"
    prefix = ERROR_PREFIX_COYOTE


class AccessDeniedException(DynamoError):
    type_name = "AccessDeniedException"
    prefix = ERROR_PREFIX_COYOTE


class RequestEntityTooLarge(DynamoError):
    type_name = "RequestEntityTooLarge"
    status = 413


class ResourceNotFoundException(DynamoError):
    type_name = "ResourceNotFoundException"


class ResourceInUseException(DynamoError):
    type_name = "ResourceInUseException"


class LimitExceededException(DynamoError):
    type_name = "LimitExceededException"


class ConditionalCheckFailedException(DynamoError):
    """Carries the old item when ReturnValuesOnConditionCheckFailure=ALL_OLD."""

    type_name = "ConditionalCheckFailedException"

    def __init__(self, message: str = "The conditional request failed",
                 item: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.item = item

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.item is not None:
            body["Item"] = self.item
        return body


class ItemCollectionSizeLimitExceededException(DynamoError):
    type_name = "ItemCollectionSizeLimitExceededException"


class ProvisionedThroughputExceededException(DynamoError):
    type_name = "ProvisionedThroughputExceededException"


class ThrottlingException(DynamoError):
    type_name = "ThrottlingException"
    prefix = ERROR_PREFIX_AVAILABILITY


class TransactionConflictException(DynamoError):
    type_name = "TransactionConflictException"


class InternalServerError(DynamoError):
    type_name = "InternalServerError"
    status = 500


class ServiceUnavailable(DynamoError):
    type_name = "ServiceUnavailable"
    prefix = ERROR_PREFIX_COYOTE
    status = 503
