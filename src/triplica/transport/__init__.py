"""Messages between nodes and routers: framed msgpack over TCP or in-process.

See base.py for the interface and its errors, framing.py for the wire
format, tcp.py and inprocess.py for the two implementations.
"""
from triplica.transport.base import (
    Address,
    AddressInUseError,
    CallTimeoutError,
    Client,
    ConnectionLostError,
    FrameCorruptError,
    FrameTooLargeError,
    FramingError,
    Handler,
    RemoteError,
    Server,
    Transport,
    TransportClosedError,
    TransportError,
)
from triplica.transport.framing import FrameDecoder, encode_frame
from triplica.transport.inprocess import InProcessClient, InProcessNetwork, InProcessServer
from triplica.transport.tcp import TcpClient, TcpServer, TcpTransport

__all__ = [
    "Address", "AddressInUseError", "CallTimeoutError", "Client",
    "ConnectionLostError", "FrameCorruptError", "FrameDecoder",
    "FrameTooLargeError", "FramingError", "Handler", "InProcessClient",
    "InProcessNetwork", "InProcessServer", "RemoteError", "Server",
    "TcpClient", "TcpServer", "TcpTransport", "Transport",
    "TransportClosedError", "TransportError", "encode_frame",
]
