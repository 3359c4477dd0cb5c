"""Minimal asyncio HTTP/1.1 load generator for DynamoDB JSON 1.0 requests.

Raw keep-alive sockets (asyncio Protocols, uvloop when available), fully
pre-built request bytes, one outstanding request per connection.  Servers that
answer ``Connection: close`` (moto's werkzeug server does) are handled by
reconnecting transparently before the next request.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import hmac
import time
from dataclasses import dataclass, field

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
REGION = "us-east-1"
ACCESS_KEY = "benchkey"
SECRET_KEY = "benchsecret"


# --------------------------------------------------------------------------
# SigV4: one signature per pre-built request (done at build time, not in the
# hot loop), so servers that do verify signatures still accept the requests.
# --------------------------------------------------------------------------
class SigV4:
    def __init__(self, host: str, region: str = REGION, service: str = "dynamodb",
                 access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY,
                 now: _dt.datetime | None = None):
        now = now or _dt.datetime.now(_dt.timezone.utc)
        self.host, self.region, self.service, self.access_key = host, region, service, access_key
        self.amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        self.datestamp = now.strftime("%Y%m%d")
        self.scope = f"{self.datestamp}/{region}/{service}/aws4_request"
        k = ("AWS4" + secret_key).encode()
        for part in (self.datestamp, region, service, "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        self.key = k

    def headers(self, target: str, body: bytes) -> dict[str, str]:
        payload_hash = hashlib.sha256(body).hexdigest()
        hdrs = {"content-type": CONTENT_TYPE, "host": self.host,
                "x-amz-date": self.amz_date, "x-amz-target": target}
        signed = ";".join(sorted(hdrs))
        canonical = "\n".join(["POST", "/", ""]
                              + [f"{k}:{hdrs[k]}" for k in sorted(hdrs)]
                              + ["", signed, payload_hash])
        sts = "\n".join(["AWS4-HMAC-SHA256", self.amz_date, self.scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
        sig = hmac.new(self.key, sts.encode(), hashlib.sha256).hexdigest()
        auth = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{self.scope}, "
                f"SignedHeaders={signed}, Signature={sig}")
        return {"Host": self.host, "Content-Type": CONTENT_TYPE,
                "X-Amz-Date": self.amz_date, "X-Amz-Target": target,
                "Authorization": auth}


def check_against_botocore(host: str) -> bool:
    """Self-test: our signature equals botocore's for a representative request."""
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError:
        return True
    body = b'{"TableName":"bench_kv","Key":{"pk":{"S":"k1"}}}'
    req = AWSRequest(method="POST", url=f"http://{host}/", data=body,
                     headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET_PREFIX + "GetItem"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "dynamodb", REGION).add_auth(req)
    now = _dt.datetime.strptime(req.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.timezone.utc)
    ours = SigV4(host, now=now).headers(TARGET_PREFIX + "GetItem", body)["Authorization"]
    return req.headers["Authorization"] == ours


def build_request(signer: SigV4, op: str, body: bytes) -> bytes:
    hdrs = signer.headers(TARGET_PREFIX + op, body)
    head = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return (f"POST / HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n"
            f"Connection: keep-alive\r\n\r\n").encode() + body


# --------------------------------------------------------------------------
# Client protocol
# --------------------------------------------------------------------------
class _Resp(asyncio.Protocol):
    """Parses one response at a time; resolves self.waiter with (status, body)."""

    def __init__(self):
        self.transport = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.keep_alive = True

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            # A body delimited by close: hand over what we have.
            if self.buf and self._until_close is not None:
                w.set_result((self._until_close, bytes(self.buf)))
            else:
                w.set_exception(ConnectionError("connection lost"))

    _until_close = None

    def data_received(self, data):
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            self._try_parse()

    def _try_parse(self):
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        clen = None
        chunked = False
        ka = parts[0] == "HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                clen = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection":
                v = value.strip().lower()
                ka = v == "keep-alive" if parts[0] != "HTTP/1.1" else v != "close"
        start = end + 4
        if clen is not None:
            if len(buf) - start < clen:
                return
            body = bytes(buf[start:start + clen])
            del buf[:start + clen]
        elif chunked:
            body = bytearray()
            pos = start
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    return
                size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
                if size == 0:
                    tail = buf.find(b"\r\n\r\n", nl)
                    if tail < 0:
                        return
                    del buf[:tail + 4]
                    break
                if len(buf) < nl + 2 + size + 2:
                    return
                body += buf[nl + 2:nl + 2 + size]
                pos = nl + 2 + size + 2
            body = bytes(body)
        else:  # delimited by close
            self._until_close = status
            del buf[:start]
            self.keep_alive = False
            return
        self.keep_alive = ka
        self.waiter.set_result((status, body))


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.proto: _Resp | None = None
        self.connects = 0

    async def _connect(self):
        loop = asyncio.get_running_loop()
        _, self.proto = await loop.create_connection(_Resp, self.host, self.port)
        self.connects += 1

    async def request(self, raw: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
        p = self.proto
        if p is None or p.closed or not p.keep_alive:
            if p is not None and not p.closed:
                p.transport.close()
            await self._connect()
            p = self.proto
        fut = asyncio.get_running_loop().create_future()
        p.waiter = fut
        p.transport.write(raw)
        if p.buf:
            p._try_parse()
        try:
            return await asyncio.wait_for(fut, timeout)
        except BaseException:
            self.close()
            raise
        finally:
            p.waiter = None

    def close(self):
        if self.proto is not None and not self.proto.closed:
            self.proto.transport.close()
        self.proto = None


# --------------------------------------------------------------------------
# Closed-loop run
# --------------------------------------------------------------------------
@dataclass
class RunResult:
    completed: int = 0          # successful responses inside the window
    errors: int = 0             # error responses / bad bodies / timeouts in window
    latencies: list = field(default_factory=list)   # seconds, successes only
    duration: float = 0.0
    connects: int = 0
    error_samples: list = field(default_factory=list)


async def run_closed_loop(host: str, port: int, next_request, concurrency: int,
                          warmup: float, duration: float, on_window_start=None, on_window_end=None,
                          max_requests: int = 50_000_000, timeout: float = 10.0) -> RunResult:
    """``next_request()`` -> (raw bytes, validator or None).  Each of
    ``concurrency`` connections sends back-to-back requests until the deadline.
    Only responses that complete inside [warm-up end, deadline) are counted (and
    their latencies kept); requests still in flight at the deadline are drained
    (bounded by ``timeout``) but not counted."""
    loop = asyncio.get_running_loop()
    res = RunResult()
    t0 = loop.time()
    win_start = t0 + warmup
    deadline = win_start + duration
    budget = [max_requests]
    pc = time.perf_counter
    lat = res.latencies

    async def window_marker():
        await asyncio.sleep(max(0.0, win_start - loop.time()))
        if on_window_start:
            on_window_start()
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        if on_window_end:
            on_window_end()

    async def worker():
        conn = Connection(host, port)
        try:
            while budget[0] > 0:
                now = loop.time()
                if now >= deadline:
                    break
                budget[0] -= 1
                raw, check = next_request()
                t = pc()
                try:
                    status, body = await conn.request(raw, timeout)
                    ok = status == 200 and (check is None or check(body))
                    err = None if ok else f"{status} {body[:160]!r}"
                except (OSError, asyncio.TimeoutError, ConnectionError) as e:
                    ok, err = False, repr(e)
                    await asyncio.sleep(0.01)
                done = loop.time()
                if win_start <= done < deadline:
                    if ok:
                        res.completed += 1
                        lat.append(pc() - t)
                    else:
                        res.errors += 1
                        if len(res.error_samples) < 5:
                            res.error_samples.append(err)
        finally:
            res.connects += conn.connects
            conn.close()

    marker = asyncio.ensure_future(window_marker())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await marker
    res.duration = duration
    return res


def percentile(sorted_vals, q: float) -> float:
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def new_loop():
    try:
        import uvloop
        return uvloop.new_event_loop(), "uvloop"
    except ImportError:
        return asyncio.new_event_loop(), "asyncio"
