"""A minimal raw QMP client: one socket, JSON lines, events kept apart from replies.

Deliberately not `qemu.qmp`: the tests need to send malformed bytes, see every message
exactly as the daemon framed it, and notice events that arrive before a command's reply.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any


class QMPTimeout(AssertionError):
    """The daemon did not send an expected message in time (a test failure, not a hang)."""


class QMPClosed(AssertionError):
    """The daemon closed the monitor connection while a message was expected."""


@dataclass
class Received:
    """One message from the daemon together with its raw line (for framing checks)."""

    message: dict
    raw: bytes


@dataclass
class QMPClient:
    """A QMP connection over a UNIX or TCP stream socket.

    `events` accumulates every event received so far (in arrival order), including events
    that arrived while waiting for a command's reply. `replies` holds replies read while
    waiting for something else (only when the test sends without waiting).
    """

    sock: socket.socket
    timeout: float = 10.0
    events: list[dict] = field(default_factory=list)
    replies: list[Received] = field(default_factory=list)
    greeting: dict | None = None
    _buffer: bytearray = field(default_factory=bytearray)

    # -- connecting --------------------------------------------------------------------

    @classmethod
    def connect_unix(cls, path: str, timeout: float = 10.0, read_greeting: bool = True) -> "QMPClient":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return cls._start(sock, timeout, read_greeting)

    @classmethod
    def connect_tcp(cls, host: str, port: int, timeout: float = 10.0, read_greeting: bool = True) -> "QMPClient":
        sock = socket.create_connection((host, port))
        return cls._start(sock, timeout, read_greeting)

    @classmethod
    def _start(cls, sock: socket.socket, timeout: float, read_greeting: bool) -> "QMPClient":
        client = cls(sock=sock, timeout=timeout)
        if read_greeting:
            message = client.receive().message
            assert "QMP" in message, f"expected a QMP greeting, got {message!r}"
            client.greeting = message
        return client

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "QMPClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level ---------------------------------------------------------------------

    def send_bytes(self, data: bytes, timeout: float = 120.0) -> None:
        self.sock.settimeout(timeout)  # large inputs: the daemon parses while we send
        self.sock.sendall(data)

    def send(self, message: dict) -> None:
        self.send_bytes(json.dumps(message).encode() + b"\n")

    def _read_line(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[: newline + 1])
                del self._buffer[: newline + 1]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QMPTimeout(f"no complete QMP message within {timeout}s (buffered: {bytes(self._buffer[:200])!r})")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise QMPClosed(f"monitor connection closed (buffered: {bytes(self._buffer[:200])!r})")
            self._buffer += chunk

    def receive(self, timeout: float | None = None) -> Received:
        """Read the next message (event or reply), whatever it is."""
        line = self._read_line(self.timeout if timeout is None else timeout)
        try:
            message = json.loads(line)
        except json.JSONDecodeError as error:
            raise AssertionError(f"daemon sent invalid JSON {line!r}: {error}") from None
        assert isinstance(message, dict), f"daemon sent a non-object {line!r}"
        return Received(message=message, raw=line)

    def receive_reply(self, timeout: float | None = None) -> Received:
        """Read messages until a reply (return or error); events go to `self.events`."""
        if self.replies:
            return self.replies.pop(0)
        while True:
            received = self.receive(timeout)
            if "event" in received.message:
                self.events.append(received.message)
                continue
            assert "return" in received.message or "error" in received.message, (
                f"unexpected message {received.raw!r}"
            )
            return received

    # -- commands ----------------------------------------------------------------------

    def command(self, name: str, arguments: Any = None, id: Any = None) -> dict:
        """Send one command and return its full reply object (return or error).

        `arguments=None` omits the member; send a raw dict with `send` to test `null`.
        """
        request: dict[str, Any] = {"execute": name}
        if arguments is not None:
            request["arguments"] = arguments
        if id is not None:
            request["id"] = id
        self.send(request)
        return self.receive_reply().message

    def execute(self, name: str, arguments: Any = None) -> Any:
        """Send one command that must succeed; return its `return` value."""
        reply = self.command(name, arguments)
        assert "return" in reply, f"{name} {arguments!r} failed: {reply!r}"
        return reply["return"]

    def negotiate(self) -> None:
        assert self.execute("qmp_capabilities") == {}

    def sync(self) -> None:
        """Round trip a harmless command so every event emitted before it is in `events`."""
        reply = self.command("query-version", id="__sync__")
        assert reply.get("id") == "__sync__" and "return" in reply, reply

    # -- events ------------------------------------------------------------------------

    def take_events(self) -> list[dict]:
        events, self.events = self.events, []
        return events

    def wait_event(self, name: str, timeout: float | None = None) -> dict:
        """Wait for the next event called `name`; earlier other events stay in `events`."""
        for index, event in enumerate(self.events):
            if event["event"] == name:
                return self.events.pop(index)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QMPTimeout(f"event {name} not received")
            received = self.receive(remaining)
            if "event" not in received.message:
                self.replies.append(received)
                continue
            if received.message["event"] == name:
                return received.message
            self.events.append(received.message)

    def read_until_closed(self, timeout: float | None = None) -> list[dict]:
        """Collect messages until the daemon closes the connection (after `quit`)."""
        messages = []
        while True:
            try:
                messages.append(self.receive(timeout).message)
            except QMPClosed:
                return messages
