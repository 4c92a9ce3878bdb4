"""kill -9 in the middle of an allocating write load on a qcow2 export.

Each trial starts the subject on a fresh qcow2 image (every other one with a backing file),
runs random allocating writes through python3-libnbd (many in flight) with a FLUSH every
few dozen writes, and SIGKILLs the daemon at a random moment. Then:

* `qemu-img check` finds no corruption (leaked clusters are allowed: exit status 0 or 3);
* every write acknowledged before the last completed FLUSH was sent reads back (NBD: a
  flush covers the writes whose replies the client had when it sent the flush);
* every other sector holds the data of its last such durable write (or the image's initial
  data) or of a later write to it — each sector carries its write's number and its own
  position, so data from anywhere else (stale clusters, metadata, other sectors) is caught.

A SIGKILL loses no data the daemon handed to the kernel, so this checks the daemon's own
ordering: metadata it keeps in memory must never make the file reference a cluster that
is not safely allocated, nor lose what a completed FLUSH promised.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import struct
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import nbd
import pytest

from harness.nbdio import connect_unix
from harness.nbdload import FLUSH, WRITE, Pipeline, Request
from harness.qcow2 import (
    CHECK_CLEAN,
    CHECK_LEAKS_ONLY,
    NBD_SOCKET,
    ImageSpec,
    KiB,
    MiB,
    check,
    create,
    qcow2_args,
    to_raw,
    tool,
)

TRIALS = 20
IMAGE = "disk.qcow2"
SECTOR = 512
MAGIC = b"hwcrash."
BASE_WRITE = 0  # the write number of the backing file's sectors


def sector_data(write: int, sector: int) -> bytes:
    """512 bytes that say which write put them where."""
    fill = hashlib.blake2b(struct.pack(">II", write, sector), digest_size=64).digest() * 8
    return MAGIC + struct.pack(">II", write, sector) + fill[16:]


def payload(write: int, first_sector: int, count: int) -> bytes:
    return b"".join(sector_data(write, first_sector + index) for index in range(count))


@dataclass(frozen=True)
class Trial:
    index: int
    cluster_size: int
    compat: str
    refcount_bits: int | None
    backing: bool
    size: int

    def __str__(self) -> str:
        refcount = f"-refcount{self.refcount_bits}" if self.refcount_bits else ""
        return f"{self.index:02d}-cluster{self.cluster_size}-v{self.compat}{refcount}{'-backing' if self.backing else ''}"


SHAPES = [  # (cluster size, compat, refcount bits, virtual size)
    (64 * KiB, "1.1", None, 64 * MiB),
    (4 * KiB, "1.1", None, 32 * MiB),
    (512, "1.1", 64, 8 * MiB),  # tiny refcount blocks: the refcount table grows during the load
    (64 * KiB, "0.10", None, 64 * MiB),
    (2 * MiB, "1.1", None, 128 * MiB),
]
TRIAL_LIST = [Trial(index, *SHAPES[index % len(SHAPES)][:3], backing=index % 2 == 1, size=SHAPES[index % len(SHAPES)][3])
              for index in range(TRIALS)]


def make_image(workdir: Path, trial: Trial) -> None:
    spec = ImageSpec(size=trial.size, cluster_size=trial.cluster_size, compat=trial.compat,
                     refcount_bits=trial.refcount_bits)
    if trial.backing:
        # The base holds tagged sectors (write number 0) in its first half.
        sectors = trial.size // 2 // SECTOR
        raw = workdir / "base.raw"
        raw.write_bytes(payload(BASE_WRITE, 0, sectors))
        tool(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, workdir / "base.qcow2"], "qemu-img convert")
        raw.unlink()
        spec = replace(spec, backing="base.qcow2", backing_format="qcow2")
    create(workdir / IMAGE, spec)


@dataclass
class Load:
    """The random writes: which write (number) covers which sectors, in issue order."""

    trial: Trial
    generator: random.Random
    writes: dict[int, Request]  # serial -> request
    numbers: dict[int, int]  # serial -> write number (the tag in the data)

    def next_write(self, number: int) -> Request:
        sectors = self.trial.size // SECTOR
        shape = self.generator.random()
        if shape < 0.2:  # rewrite near the start (in place once allocated)
            count = self.generator.randint(1, 16)
            first = self.generator.randrange(0, 4096 - count)
        else:  # anywhere: mostly allocating
            count = self.generator.randint(1, 128)
            first = self.generator.randrange(0, sectors - count)
        return Request(WRITE, first * SECTOR, count * SECTOR, data=payload(number, first, count))


def run_until_killed(pipeline: Pipeline, load: Load, kill_after: float, kill) -> tuple[int, int]:
    """Write (flushing now and then) until the daemon dies; return (writes, flushes) sent."""
    timer = threading.Timer(kill_after, kill)
    timer.start()
    number, flushes, next_flush = 0, 0, load.generator.randint(10, 60)
    deadline = time.monotonic() + kill_after + 30
    try:
        while time.monotonic() < deadline:
            if number == next_flush:
                pipeline.submit(Request(FLUSH))
                flushes += 1
                next_flush = number + load.generator.randint(10, 60)
            number += 1
            request = load.next_write(number)
            pipeline.submit(request)
            load.writes[request.serial] = request
            load.numbers[request.serial] = number
    except nbd.Error:
        pass  # the daemon is gone
    finally:
        timer.cancel()
    return number, flushes


def allowed_writes(load: Load, durable: frozenset[int]) -> dict[int, set[int]]:
    """For every sector some write touched: the write numbers it may hold after the crash
    (BASE_WRITE standing for the initial content). Overlapping writes were never in flight
    together, so serial order is the order in which they took effect."""
    allowed: dict[int, set[int]] = {}
    for serial in sorted(load.writes):
        request = load.writes[serial]
        for sector in range(request.offset // SECTOR, request.end // SECTOR):
            if serial in durable:
                allowed[sector] = {load.numbers[serial]}  # older content may no longer show
            else:
                allowed.setdefault(sector, {BASE_WRITE}).add(load.numbers[serial])
    return allowed


def verify(content: bytes, trial: Trial, allowed: dict[int, set[int]]) -> list[str]:
    problems: list[str] = []
    base_sectors = trial.size // 2 // SECTOR if trial.backing else 0
    zero = bytes(SECTOR)
    for sector in range(len(content) // SECTOR):
        data = content[sector * SECTOR:(sector + 1) * SECTOR]
        may_hold = allowed.get(sector, {BASE_WRITE})
        initial = "initial zeros" if sector >= base_sectors else "initial (backing) data"
        if data == zero:
            holds, what = (BASE_WRITE, initial) if sector >= base_sectors else (None, "zeros")
        elif data[:8] == MAGIC:
            number, origin = struct.unpack(">II", data[8:16])
            if origin != sector or data != sector_data(number, origin):
                holds, what = None, f"data of sector {origin} (write {number}) or damaged data"
            else:
                holds, what = number, initial if number == BASE_WRITE else f"write {number}"
        else:
            holds, what = None, "untagged data (written nowhere)"
        if holds not in may_hold:
            allowed_text = ", ".join(initial if n == BASE_WRITE else f"write {n}" for n in sorted(may_hold))
            problems.append(f"sector {sector}: holds {what}; allowed: {allowed_text}")
            if len(problems) >= 10:
                break
    return problems


@pytest.mark.parametrize("trial", TRIAL_LIST, ids=str)
def test_kill_during_writes(trial: Trial, start_daemon, subject_command) -> None:
    daemon = start_daemon(subject_command, qcow2_args(IMAGE, writable=True), start=False)
    workdir = daemon.workdir
    make_image(workdir, trial)
    daemon.start()
    generator = random.Random(1000 + trial.index)
    handle = connect_unix(workdir / NBD_SOCKET, "disk0", allocation=False)
    pipeline = Pipeline(handle, depth=16)
    load = Load(trial, generator, writes={}, numbers={})
    kill_after = generator.uniform(0.2, 1.5)
    pid = daemon.process.pid
    writes, flushes = run_until_killed(pipeline, load, kill_after, lambda: os.kill(pid, signal.SIGKILL))
    status = daemon.wait()
    assert status == -signal.SIGKILL, f"daemon ended with {status} before the kill; log:\n{daemon.log}"
    durable = pipeline.durable()
    completed = sum(1 for r in pipeline.completed if r.kind == WRITE and r.error == 0)
    summary = (f"trial {trial}: killed after {kill_after:.2f}s, {writes} writes sent, {completed} acknowledged, "
               f"{flushes} flushes, {len(durable)} writes durable")

    result = check(workdir / IMAGE)
    assert result.status in (CHECK_CLEAN, CHECK_LEAKS_ONLY) and result.corruptions == 0, (
        f"{summary}\nqemu-img check exit {result.status}:\n{result.output}")
    content = to_raw(workdir / IMAGE, workdir / "after.raw").read_bytes()
    assert len(content) == trial.size
    problems = verify(content, trial, allowed_writes(load, durable))
    assert not problems, f"{summary}\n" + "\n".join(problems)
    print(f"{summary}; qemu-img check: exit {result.status}, {result.leaks} leaked clusters")
