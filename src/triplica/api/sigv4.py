"""AWS Signature Version 4 checking for DynamoDB requests.

Implements "Create a signed AWS API request" (AWS IAM User Guide, Signature
Version 4): canonical request -> string to sign -> HMAC with the key derived
from secret, date, region and service. Pure: the caller passes `now`; the
only state is a bounded cache of derived signing keys.

Two modes, chosen by whether a credentials mapping is given:
- None (the default, like DynamoDB Local): the Authorization header must be
  present and well formed, nothing is verified, any key id is accepted.
- {access_key_id: secret}: the signature is verified exactly, and x-amz-date
  (or Date) must be within 15 minutes of `now`.

Only the Authorization header is supported; query-string (presigned)
authentication is not (the SDKs never presign DynamoDB calls). Any region is
accepted; the service in the credential scope must be `dynamodb`.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote

from triplica.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "dynamodb"
TERMINATOR = "aws4_request"
CLOCK_SKEW_MAX = timedelta(minutes=15)
SIGNING_KEY_CACHE_ENTRIES_MAX = 1024
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_CREDENTIAL_LINE = re.compile(r"([^\s=]+)\s*[=\s]\s*(\S+)")
_AUTHORIZATION_FAST = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/,\s]+)/([^/,\s]+)/([^/,\s]+)/([^/,\s]+)"
    r"/([^/,\s]+), ?SignedHeaders=([^,;\s]+(?:;[^,;\s]+)*), ?"
    r"Signature=([0-9a-f]{64})")
_HEX_DIGITS = frozenset("0123456789abcdef")
_MESSAGE_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method. Consult "
    "the service documentation for details.")


class Authorization:
    """The parsed parts of an `Authorization: AWS4-HMAC-SHA256 ...` header."""

    __slots__ = ("access_key_id", "date", "region", "service", "terminator",
                 "signed_headers", "signature")

    def __init__(self, access_key_id: str, date: str, region: str,
                 service: str, terminator: str, signed_headers: list[str],
                 signature: str) -> None:
        self.access_key_id = access_key_id
        self.date = date
        self.region = region
        self.service = service
        self.terminator = terminator
        self.signed_headers = signed_headers
        self.signature = signature

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


def parse_authorization(header: str | None) -> Authorization:
    """Parse the header or raise the error DynamoDB gives for its defect."""
    if header is not None:
        match = _AUTHORIZATION_FAST.fullmatch(header)
        if match is not None:   # the SDKs' exact layout: one regex, no loops
            key_id, date, region, service, terminator, signed, signature = \
                match.groups()
            return Authorization(key_id, date, region, service, terminator,
                                 signed.split(";"), signature)
    return _parse_authorization_slowly(header)


def _parse_authorization_slowly(header: str | None) -> Authorization:
    """Any layout the grammar allows, and an exact message for each defect."""
    if header is None or not header.strip():
        raise MissingAuthenticationTokenException(
            "Request is missing Authentication Token")
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureException(
            f"Unsupported AWS 'algorithm': '{algorithm}'; expected "
            f"'{ALGORITHM}'. Authorization={header}")
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            params[name] = value.strip()
    missing = [name for name in ("Credential", "Signature", "SignedHeaders")
               if not params.get(name)]
    if missing:
        raise IncompleteSignatureException(" ".join(
            f"Authorization header requires '{name}' parameter." for name in missing)
            + f" Authorization={header}")
    credential = params["Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        raise IncompleteSignatureException(
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{params['Credential']}'")
    signature = params["Signature"]
    if len(signature) != 64 or not _HEX_DIGITS.issuperset(signature.lower()):
        raise IncompleteSignatureException(
            f"Signature must be 64 hexadecimal characters, got "
            f"'{signature}'")
    signed_headers = params["SignedHeaders"].split(";")
    if not all(signed_headers):
        raise IncompleteSignatureException(
            f"SignedHeaders has an empty header name: '{params['SignedHeaders']}'")
    key_id, date, region, service, terminator = credential
    return Authorization(key_id, date, region, service, terminator,
                         signed_headers, signature)


def load_credentials(path: str) -> dict[str, str]:
    """Read `ACCESS_KEY_ID SECRET` or `ACCESS_KEY_ID=SECRET` lines; `#` starts a
    comment (at line start, or after whitespace)."""
    credentials: dict[str, str] = {}
    with open(path, encoding="utf-8") as file:
        for number, raw in enumerate(file, 1):
            line = raw.split(" #", 1)[0].split("\t#", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            match = _CREDENTIAL_LINE.fullmatch(line)
            if match is None:
                raise ValueError(f"{path}:{number}: expected "
                                 "'ACCESS_KEY_ID SECRET' or 'ACCESS_KEY_ID=SECRET'")
            key_id, secret = match.groups()
            if key_id in credentials:
                raise ValueError(f"{path}:{number}: duplicate access key id "
                                 f"'{key_id}'")
            credentials[key_id] = secret
    return credentials


class Authenticator:
    """Checks a request's SigV4 Authorization; returns the access key id."""

    def __init__(self, credentials: dict[str, str] | None) -> None:
        self._credentials = credentials
        self._signing_keys: dict[tuple[str, str, str], bytes] = {}

    def check(self, request: Any, now: datetime | None) -> str:
        """`request` has method, path, query, headers (lower-cased), body.
        `now` may be None only when no credentials are configured (nothing is verified)."""
        auth = parse_authorization(request.headers.get("authorization"))
        if self._credentials is None:
            return auth.access_key_id
        assert now is not None, "signature verification needs the current time"
        secret = self._credentials.get(auth.access_key_id)
        if secret is None:
            raise UnrecognizedClientException(
                "The security token included in the request is invalid.")
        if "host" not in auth.signed_headers:
            raise InvalidSignatureException(
                "'Host' must be a 'SignedHeader' in the AWS Authorization.")
        request_time, stamp = _request_time(request.headers)
        _check_scope(auth, request_time, stamp)
        _check_skew(request_time, stamp, now)
        string_to_sign = "\n".join((
            ALGORITHM, stamp, auth.scope,
            hashlib.sha256(canonical_request(request, auth.signed_headers)
                           .encode("utf-8")).hexdigest()))
        key = self._signing_key(secret, auth.date, auth.region)
        expected = hmac.digest(key, string_to_sign.encode("utf-8"), "sha256").hex()
        if not hmac.compare_digest(expected, auth.signature.lower()):
            raise InvalidSignatureException(_MESSAGE_SIGNATURE_MISMATCH)
        return auth.access_key_id

    def _signing_key(self, secret: str, date: str, region: str) -> bytes:
        cache_key = (secret, date, region)
        key = self._signing_keys.get(cache_key)
        if key is None:
            key = derive_signing_key(secret, date, region, SERVICE)
            if len(self._signing_keys) >= SIGNING_KEY_CACHE_ENTRIES_MAX:
                self._signing_keys.clear()
            self._signing_keys[cache_key] = key
        return key


def derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, TERMINATOR):
        key = hmac.digest(key, part.encode("utf-8"), "sha256")
    return key


def canonical_request(request: Any, signed_headers: list[str]) -> str:
    headers = request.headers
    payload_hash = hashlib.sha256(request.body).hexdigest()
    lines = [request.method.upper(), canonical_uri(request.path),
             canonical_query(request.query)]
    for name in signed_headers:
        value = headers.get(name.lower(), "")
        lines.append(f"{name.lower()}:{' '.join(value.split())}")
    lines.append("")
    lines.append(";".join(signed_headers))
    lines.append(payload_hash)
    return "\n".join(lines)


def canonical_uri(path: str) -> str:
    """Dot segments removed, then URI-encoded (once more, for non-S3)."""
    if path == "/":
        return path
    segments: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if segments:
                segments.pop()
        elif segment != ".":
            segments.append(segment)
    normalized = "/" + "/".join(segments)
    return quote(normalized, safe="/~")


def canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"),
                      quote(unquote(value), safe="-_.~")))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def _request_time(headers: dict[str, str]) -> tuple[datetime, str]:
    """The signing time and its ISO-8601 basic form, from X-Amz-Date or Date."""
    amz_date = headers.get("x-amz-date")
    if amz_date is not None:
        try:
            return _parse_amz_date(amz_date), amz_date
        except ValueError:
            raise IncompleteSignatureException(
                "X-Amz-Date must be in ISO-8601 basic format "
                f"(YYYYMMDD'T'HHMMSS'Z'), got '{amz_date}'") from None
    date = headers.get("date")
    if date is None:
        raise IncompleteSignatureException(
            "Authorization header requires existence of either a "
            "'X-Amz-Date' or a 'Date' header.")
    try:
        parsed = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise IncompleteSignatureException(
            f"Date header is not an HTTP date: '{date}'") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    parsed = parsed.astimezone(timezone.utc)
    return parsed, parsed.strftime(AMZ_DATE_FORMAT)


def _parse_amz_date(text: str) -> datetime:
    """YYYYMMDDTHHMMSSZ; by hand, because strptime costs ~10 µs a call, and
    remembered, because requests in the same second carry the same stamp."""
    global _last_amz_date
    last_text, last_time = _last_amz_date
    if text == last_text:
        return last_time
    parsed = _parse_amz_date_uncached(text)
    _last_amz_date = (text, parsed)
    return parsed


_last_amz_date: tuple[str | None, datetime] = (
    None, datetime.min.replace(tzinfo=timezone.utc))


def _parse_amz_date_uncached(text: str) -> datetime:
    if len(text) != 16 or text[8] != "T" or text[15] != "Z" \
            or not (text[:8] + text[9:15]).isdigit():
        raise ValueError(text)
    return datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]),
                    int(text[9:11]), int(text[11:13]), int(text[13:15]),
                    tzinfo=timezone.utc)


def _check_scope(auth: Authorization, request_time: datetime, stamp: str) -> None:
    if auth.service != SERVICE:
        raise InvalidSignatureException(
            f"Credential should be scoped to correct service: '{SERVICE}'.")
    if auth.terminator != TERMINATOR:
        raise InvalidSignatureException(
            "Credential should be scoped with a valid terminator: "
            f"'{TERMINATOR}', not '{auth.terminator}'.")
    date = stamp[:8]
    if auth.date != date:
        raise InvalidSignatureException(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 "
            f"version of date from HTTP: '{auth.date}' != '{date}', from "
            f"'{stamp}'.")


def _check_skew(request_time: datetime, stamp: str, now: datetime) -> None:
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    if -CLOCK_SKEW_MAX <= now - request_time <= CLOCK_SKEW_MAX:
        return
    now_stamp = now.strftime(AMZ_DATE_FORMAT)
    if request_time < now - CLOCK_SKEW_MAX:
        raise InvalidSignatureException(
            f"Signature expired: {stamp} is now earlier than "
            f"{(now - CLOCK_SKEW_MAX).strftime(AMZ_DATE_FORMAT)} "
            f"({now_stamp} - 15 min.)")
    if request_time > now + CLOCK_SKEW_MAX:
        raise InvalidSignatureException(
            f"Signature not yet current: {stamp} is still later than "
            f"{(now + CLOCK_SKEW_MAX).strftime(AMZ_DATE_FORMAT)} "
            f"({now_stamp} + 15 min.)")
