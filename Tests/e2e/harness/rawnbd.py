"""A deliberately dumb NBD client on a raw socket, for sending what real clients never send."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPTION_REPLY_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668E33EF

FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_SET_META_CONTEXT = 10

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_ERROR_BIT = 1 << 31
REP_NAMES = {
    1: "ACK", 2: "SERVER", 3: "INFO", 4: "META_CONTEXT",
    REP_ERROR_BIT | 1: "ERR_UNSUP", REP_ERROR_BIT | 2: "ERR_POLICY", REP_ERROR_BIT | 3: "ERR_INVALID",
    REP_ERROR_BIT | 4: "ERR_PLATFORM", REP_ERROR_BIT | 5: "ERR_TLS_REQD", REP_ERROR_BIT | 6: "ERR_UNKNOWN",
    REP_ERROR_BIT | 7: "ERR_SHUTDOWN", REP_ERROR_BIT | 8: "ERR_BLOCK_SIZE_REQD", REP_ERROR_BIT | 9: "ERR_TOO_BIG",
}

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

ERRNO_NAMES = {0: "OK", 1: "EPERM", 5: "EIO", 12: "ENOMEM", 22: "EINVAL", 28: "ENOSPC", 75: "EOVERFLOW",
               95: "ENOTSUP", 108: "ESHUTDOWN"}

STRUCTURED_DONE = 1
CHUNK_NONE = 0
CHUNK_OFFSET_DATA = 1
CHUNK_OFFSET_HOLE = 2
CHUNK_ERROR_BIT = 1 << 15


class Closed(Exception):
    """The server closed the connection."""


@dataclass
class OptionReply:
    option: int
    type: int
    data: bytes

    @property
    def name(self) -> str:
        return REP_NAMES.get(self.type, f"0x{self.type:x}")


@dataclass
class Reply:
    """A transmission reply: errno name and the data read (simple or structured)."""

    error: str
    data: bytes = b""
    chunks: list[str] = field(default_factory=list)


class RawNBD:
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.structured = False
        self.size = 0
        self.transmission_flags = 0
        self._cookie = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawNBD":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- bytes --

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, length: int) -> bytes:
        data = bytearray()
        while len(data) < length:
            try:
                chunk = self.sock.recv(min(length - len(data), 1 << 20))
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed(f"closed after {len(data)} of {length} bytes")
            data += chunk
        return bytes(data)

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection within `timeout` (data is discarded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
        return False

    # -- handshake --

    def read_greeting(self) -> int:
        magic, option_magic, flags = struct.unpack(">QQH", self.recv_exact(18))
        assert magic == NBDMAGIC and option_magic == IHAVEOPT, (hex(magic), hex(option_magic))
        return flags

    def send_client_flags(self, flags: int = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES) -> None:
        self.send(struct.pack(">I", flags))

    def handshake(self) -> None:
        self.read_greeting()
        self.send_client_flags()

    def send_option(self, option: int, data: bytes = b"", magic: int = IHAVEOPT, length: int | None = None) -> None:
        self.send(struct.pack(">QII", magic, option, len(data) if length is None else length) + data)

    def read_option_reply(self) -> OptionReply:
        magic, option, reply_type, length = struct.unpack(">QIII", self.recv_exact(20))
        assert magic == OPTION_REPLY_MAGIC, hex(magic)
        return OptionReply(option, reply_type, self.recv_exact(length))

    def option(self, option: int, data: bytes = b"") -> list[OptionReply]:
        """Send one option; return every reply up to and including the final one."""
        self.send_option(option, data)
        replies = []
        while True:
            reply = self.read_option_reply()
            replies.append(reply)
            if reply.type in (REP_SERVER, REP_INFO, 4):
                continue
            return replies

    @staticmethod
    def go_data(name: bytes, infos: tuple[int, ...] = ()) -> bytes:
        return struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos)) + b"".join(struct.pack(">H", i) for i in infos)

    def go(self, name: str | bytes, structured: bool = True) -> list[OptionReply]:
        """Negotiate (optionally structured replies) and enter transmission via GO."""
        if structured:
            assert self.option(OPT_STRUCTURED_REPLY)[-1].type == REP_ACK
            self.structured = True
        raw = name.encode() if isinstance(name, str) else name
        replies = self.option(OPT_GO, self.go_data(raw))
        if replies[-1].type == REP_ACK:
            for reply in replies:
                if reply.type == REP_INFO and struct.unpack(">H", reply.data[:2])[0] == 0:
                    self.size, self.transmission_flags = struct.unpack(">QH", reply.data[2:12])
        return replies

    def open(self, name: str, structured: bool = True) -> "RawNBD":
        self.handshake()
        replies = self.go(name, structured)
        assert replies[-1].type == REP_ACK, [r.name for r in replies]
        return self

    # -- transmission --

    def request(self, command: int, offset: int = 0, length: int = 0, flags: int = 0, payload: bytes = b"",
                magic: int = REQUEST_MAGIC) -> int:
        self._cookie += 1
        self.send(struct.pack(">IHHQQI", magic, flags, command, self._cookie, offset, length) + payload)
        return self._cookie

    def reply(self, cookie: int, read_length: int = 0) -> Reply:
        """Read one complete reply (all chunks) for `cookie`."""
        got, reply = self.any_reply({cookie: read_length})
        assert got == cookie, (got, cookie)
        return reply

    def any_reply(self, read_lengths: dict[int, int]) -> tuple[int, Reply]:
        """Read the next complete reply, whichever request it answers (replies may come out
        of order); `read_lengths` maps cookies of READs (simple replies) to their lengths.
        Structured chunks of different requests must not interleave here."""
        magic = struct.unpack(">I", self.recv_exact(4))[0]
        if magic == SIMPLE_REPLY_MAGIC:
            error, cookie = struct.unpack(">IQ", self.recv_exact(12))
            assert cookie in read_lengths, f"reply for unknown cookie {cookie}"
            read_length = read_lengths[cookie]
            data = self.recv_exact(read_length) if error == 0 and read_length else b""
            return cookie, Reply(ERRNO_NAMES.get(error, str(error)), data, ["simple"])
        assert magic == STRUCTURED_REPLY_MAGIC, hex(magic)
        result = Reply("OK")
        cookie = None
        while True:
            flags, chunk_type, got, length = struct.unpack(">HHQI", self.recv_exact(16))
            assert cookie in (None, got), f"chunks of {cookie} and {got} interleaved"
            cookie = got
            assert cookie in read_lengths, f"reply for unknown cookie {cookie}"
            payload = self.recv_exact(length)
            result.chunks.append(str(chunk_type))
            if chunk_type & CHUNK_ERROR_BIT:
                error = struct.unpack(">I", payload[:4])[0]
                result.error = ERRNO_NAMES.get(error, str(error))
            elif chunk_type == CHUNK_OFFSET_DATA:
                result.data += payload[8:]
            elif chunk_type == CHUNK_OFFSET_HOLE:
                result.data += bytes(struct.unpack(">I", payload[8:12])[0])
            if flags & STRUCTURED_DONE:
                return cookie, result
            magic = struct.unpack(">I", self.recv_exact(4))[0]
            assert magic == STRUCTURED_REPLY_MAGIC, hex(magic)

    def call(self, command: int, offset: int = 0, length: int = 0, flags: int = 0, payload: bytes = b"") -> Reply:
        cookie = self.request(command, offset, length, flags, payload)
        return self.reply(cookie, length if command == CMD_READ else 0)

    def read(self, offset: int, length: int) -> Reply:
        return self.call(CMD_READ, offset, length)

    def write(self, offset: int, data: bytes) -> Reply:
        return self.call(CMD_WRITE, offset, len(data), payload=data)
