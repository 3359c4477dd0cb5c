"""Bounds of the message transport, units in the names.

Kept beside the transport until `model/limits.py` grows a transport section.
"""

# Largest encoded message: a WAL record payload may be 64 MiB (see
# storage/wal.py RECORD_PAYLOAD_BYTES_MAX), plus envelope and batch overhead.
FRAME_BYTES_MAX = 80 * 1024 * 1024
# Frame header: u32 payload length + u32 crc32c of the payload.
FRAME_HEADER_BYTES = 8
# Requests a client may have outstanding, and handlers a server runs at once
# per connection (TCP) or per server (in-process); past it callers wait.
CALLS_IN_FLIGHT_MAX = 1024
# In-process server inbox: requests queued before senders wait.
INPROCESS_INBOX_MAX = 1024
# Bytes read from a socket per read call.
READ_CHUNK_BYTES = 256 * 1024
# Reconnect backoff: doubles from min to max after each failed connect.
RECONNECT_BACKOFF_S_MIN = 0.01
RECONNECT_BACKOFF_S_MAX = 1.0
# Deadline of a one-way send (connect and hand to the socket buffer).
SEND_DEADLINE_S_DEFAULT = 1.0
