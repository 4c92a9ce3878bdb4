"""Many NBD requests in flight on one libnbd handle, in a well-defined order of effects.

`Pipeline` keeps up to `depth` requests in flight. A request whose byte range overlaps one
still in flight waits until that one completed, so the content after any prefix of the
request stream is defined (the NBD protocol leaves overlapping requests in flight unordered).
`on_issue` runs just before a request is sent — when everything it overlaps has completed —
so a model of the disk updated there follows the server's order exactly. A completed
request may ask for a follow-up (e.g. reading back what a trim left); its range stays busy
until the follow-up completed too.
FLUSH has no range and never waits; it records which writes had completed when it was sent:
those are the ones a completed FLUSH makes durable (NBD: a flush covers every write whose
reply the client had before it sent the flush).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import nbd

WRITE, ZERO, TRIM, READ, FLUSH = "write", "zero", "trim", "read", "flush"


@dataclass(eq=False)
class Request:
    kind: str
    offset: int = 0
    length: int = 0
    flags: int = 0
    data: bytes | None = None  # WRITE payload; other kinds: the caller's (e.g. the content expected)
    serial: int = -1  # issue order, set by the pipeline
    error: int | None = None  # errno from the server (0 = success), None while in flight
    result: bytes | None = None  # READ data
    covers: frozenset[int] = frozenset()  # FLUSH: serials of writes completed before it was sent
    on_issue: Callable[["Request"], None] | None = None
    on_done: Callable[["Request"], None] | None = None
    follow_up: Callable[["Request"], "Request | None"] | None = None
    _buffer: object = None
    _parent: "Request | None" = None

    @property
    def end(self) -> int:
        return self.offset + self.length

    def overlaps(self, other: "Request") -> bool:
        if self.kind == FLUSH or other.kind == FLUSH:
            return False
        return self.offset < other.end and other.offset < self.end


@dataclass
class Pipeline:
    handle: nbd.NBD
    depth: int = 16
    in_flight: list[Request] = field(default_factory=list)
    completed: list[Request] = field(default_factory=list)
    completed_writes: set[int] = field(default_factory=set)  # serials of successful WRITE/ZERO/TRIM
    held: list[Request] = field(default_factory=list)  # completed, their follow-up not yet
    queued: list[Request] = field(default_factory=list)  # follow-ups to send first
    _serial: int = 0

    def submit(self, request: Request) -> Request:
        """Wait for room (and for overlapping requests), then send `request`."""
        while True:
            self._send_follow_ups()
            busy = self.in_flight + self.held
            if not (len(self.in_flight) >= self.depth or any(request.overlaps(r) for r in busy)):
                break
            self._poll()
        return self._send(request)

    def _send_follow_ups(self) -> None:
        while self.queued:
            self._send(self.queued.pop(0))

    def _send(self, request: Request) -> Request:
        if request.on_issue is not None:
            request.on_issue(request)
        request.serial = self._serial
        self._serial += 1
        self.in_flight.append(request)

        def done(error, request: Request = request) -> int:
            request.error = error.value
            self.in_flight.remove(request)
            self.completed.append(request)
            if request.error == 0 and request.kind in (WRITE, ZERO, TRIM):
                self.completed_writes.add(request.serial)
            if request.kind == READ and request.error == 0:
                request.result = bytes(request._buffer.to_bytearray())
            if request.on_done is not None:
                request.on_done(request)
            if request._parent is not None:
                self.held.remove(request._parent)
            if request.follow_up is not None and (next_request := request.follow_up(request)) is not None:
                next_request._parent = request
                self.held.append(request)
                self.queued.append(next_request)
            return 1  # retire the command

        handle = self.handle
        if request.kind == WRITE:
            request._buffer = nbd.Buffer.from_bytearray(request.data)
            handle.aio_pwrite(request._buffer, request.offset, completion=done, flags=request.flags)
        elif request.kind == ZERO:
            handle.aio_zero(request.length, request.offset, completion=done, flags=request.flags)
        elif request.kind == TRIM:
            handle.aio_trim(request.length, request.offset, completion=done, flags=request.flags)
        elif request.kind == READ:
            request._buffer = nbd.Buffer(request.length)
            handle.aio_pread(request._buffer, request.offset, completion=done, flags=request.flags)
        elif request.kind == FLUSH:
            request.covers = frozenset(self.completed_writes)
            handle.aio_flush(completion=done, flags=request.flags)
        else:
            raise ValueError(request.kind)
        return request

    def _poll(self) -> None:
        self.handle.poll(-1)

    def drain(self) -> None:
        while self.in_flight or self.queued:
            self._send_follow_ups()
            if self.in_flight:
                self._poll()

    def durable(self) -> frozenset[int]:
        """Writes covered by the last FLUSH that completed successfully."""
        flushes = [r for r in self.completed if r.kind == FLUSH and r.error == 0]
        return max(flushes, key=lambda r: r.serial).covers if flushes else frozenset()
