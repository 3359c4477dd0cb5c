"""HTTP answers that are not DynamoDB operations: the health check and CORS.

Pure functions of a parsed request; the HTTP front (http_server.py) asks
them before and after the application.

- `GET /` answers 200 `healthy: <Host header>` without authentication, as
  DynamoDB's endpoints do; load balancers and health checks poll it.
- CORS, for browser tools such as dynamodb-admin: a request with an Origin
  header gets `Access-Control-Allow-Origin: *` and the headers a browser
  script may read; an OPTIONS preflight is answered here (no
  authentication, the browser sends none) and allows exactly the method
  and headers it asks for, cached for Max-Age seconds.
"""
from __future__ import annotations

from typing import Any

SERVER_NAME = "triplica"
PREFLIGHT_MAX_AGE_S = 172800   # two days, what DynamoDB answers
EXPOSED_HEADERS = "x-amzn-RequestId,x-amzn-ErrorType,x-amzn-ErrorMessage,x-amz-crc32,Date"
ALLOW_ORIGIN = {"Access-Control-Allow-Origin": "*",
                "Access-Control-Expose-Headers": EXPOSED_HEADERS}

Response = tuple[int, bytes, dict[str, str] | None]


def answer_without_application(request: Any) -> Response | None:
    """The health check or a CORS preflight; None for anything else."""
    method = request.method
    if method == "GET" and request.path == "/":
        host = request.headers.get("host", "")
        return 200, b"healthy: " + host.encode("latin-1"), {"Content-Type": "text/plain"}
    if method == "OPTIONS":
        return 200, b"", preflight_headers(request.headers)
    return None


def preflight_headers(headers: dict[str, str]) -> dict[str, str]:
    allowed = dict(ALLOW_ORIGIN)
    allowed["Access-Control-Allow-Methods"] = headers.get(
        "access-control-request-method", "GET,POST,OPTIONS")
    requested = headers.get("access-control-request-headers")
    if requested:
        allowed["Access-Control-Allow-Headers"] = requested
    allowed["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
    return allowed


def cors_headers(request: Any) -> dict[str, str] | None:
    """Headers to add to any answer to a request from a browser origin."""
    return ALLOW_ORIGIN if request is not None and "origin" in request.headers else None
