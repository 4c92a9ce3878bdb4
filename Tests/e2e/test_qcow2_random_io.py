"""A seeded random workload on a qcow2 export, checked against a raw shadow.

Thousands of writes, write-zeroes (with and without NO_HOLE), trims and reads — unaligned,
cluster-straddling, many in flight through python3-libnbd — go to the subject's qcow2
export, with and without a backing file, while a shadow (bytes in memory) takes the same
changes. Reads are checked as they complete. Trims may leave a fully covered cluster
unchanged or make it read as QEMU's qcow2 discard does (zeros), never anything else, and
never touch the partial clusters at their ends; where QEMU does not discard (discard=ignore,
or a v2 image with a backing file, whose data a discard would expose) nothing changes.

Afterwards, with the daemon stopped: `qemu-img compare` finds image and shadow identical,
`qemu-img check` finds neither errors nor leaks, and the image reopened by
qemu-storage-daemon reads back equal to the shadow.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import nbd
import pytest

from harness.nbdio import connect_unix, run_tool
from harness.nbdload import READ, TRIM, WRITE, ZERO, Pipeline, Request
from harness.qcow2 import (
    ImageSpec,
    KiB,
    MiB,
    NBD_SOCKET,
    assert_clean,
    create,
    export_to_raw,
    export_uri,
    file_digest,
    first_difference,
    output_of,
    qcow2_args,
    qemu_io_file,
    to_raw,
)

IMAGE = "disk.qcow2"
TIME_BUDGET = 12.0  # seconds of I/O per case (the debug build is slow; the case count keeps the total bounded)


@dataclass(frozen=True)
class Case:
    name: str
    spec: ImageSpec
    operations: int
    backing: str | None = None  # "qcow2" or "raw": a base image with data under the overlay
    discard: bool = True  # discard=unmap on the qcow2 and file nodes (else QSD's default: ignore)
    seed: int = 1

    def __str__(self) -> str:
        return self.name


CASES = [
    Case("v3-64k", ImageSpec(size=32 * MiB, compat="1.1"), operations=3000, seed=11),
    Case("v3-4k-backing-qcow2", ImageSpec(size=16 * MiB, cluster_size=4 * KiB, compat="1.1"), operations=3000,
         backing="qcow2", seed=12),
    Case("v2-64k-backing-raw", ImageSpec(size=16 * MiB, compat="0.10"), operations=2000, backing="raw", seed=13),
    Case("v3-512-refcount64-discard-ignored", ImageSpec(size=4 * MiB, cluster_size=512, compat="1.1", refcount_bits=64),
         operations=2000, discard=False, seed=14),
    Case("v2-4k-refcount16", ImageSpec(size=8 * MiB, cluster_size=4 * KiB, compat="0.10"), operations=2000, seed=15),
]


def make_images(workdir: Path, case: Case) -> None:
    spec = case.spec
    if case.backing == "qcow2":
        base = create(workdir / "base.qcow2", ImageSpec(size=spec.size - 3 * MiB, cluster_size=64 * KiB))
        qemu_io_file(base, ["write -P 0x3c 0 5M", "write -z 1M 1M", f"write -P 0x3d {spec.size - 4 * MiB} 1M"])
        spec = replace(spec, backing="base.qcow2", backing_format="qcow2")
    elif case.backing == "raw":
        base = workdir / "base.raw"
        base.write_bytes(random.Random(case.seed).randbytes(spec.size // 2))
        spec = replace(spec, backing="base.raw", backing_format="raw")
    create(workdir / IMAGE, spec)


class Workload:
    """Random requests and the shadow they produce."""

    def __init__(self, case: Case, initial: bytes) -> None:
        self.case = case
        self.cluster = case.spec.cluster_size or 64 * KiB
        self.size = case.spec.size
        self.shadow = bytearray(initial)
        self.random = random.Random(case.seed)
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}
        self.discarded_clusters = 0  # fully trimmed clusters whose content changed

    # -- request shapes ------------------------------------------------------------------

    def span(self) -> tuple[int, int]:
        r, c = self.random, self.cluster
        shape = r.random()
        if shape < 0.3:  # byte-unaligned anywhere
            length = r.randint(1, 3 * c)
            offset = r.randrange(0, self.size - length + 1)
        elif shape < 0.55:  # straddling a cluster boundary
            boundary = r.randrange(1, self.size // c) * c
            before, after = r.randint(1, 2 * c), r.randint(1, 2 * c)
            offset, length = max(0, boundary - before), min(self.size, boundary + after) - max(0, boundary - before)
        elif shape < 0.85:  # sector-aligned
            length = r.randint(1, 4 * c // 512 + 1) * 512
            offset = r.randrange(0, (self.size - length) // 512 + 1) * 512
        else:  # whole clusters
            count = r.randint(1, 4)
            offset = r.randrange(0, self.size // c - count + 1) * c
            length = count * c
        return offset, length

    def next_request(self) -> Request:
        """A random request; its effect on the shadow (or the expectation it checks) is taken
        when it is sent, i.e. after every overlapping earlier request completed."""
        r = self.random
        offset, length = self.span()
        choice = r.random()
        if choice < 0.5:
            data = r.randbytes(length)
            flags = nbd.CMD_FLAG_FUA if r.random() < 0.05 else 0
            return self.counted(Request(WRITE, offset, length, flags=flags, data=data, on_issue=self.apply_write,
                                        on_done=self.check_done))
        if choice < 0.65:
            flags = nbd.CMD_FLAG_NO_HOLE if r.random() < 0.5 else 0
            return self.counted(Request(ZERO, offset, length, flags=flags, on_issue=self.apply_zero,
                                        on_done=self.check_done))
        if choice < 0.8:
            return self.counted(Request(TRIM, offset, length, on_issue=self.remember, follow_up=self.read_back))
        return self.counted(Request(READ, offset, length, on_issue=self.remember, on_done=self.check_read))

    def counted(self, request: Request) -> Request:
        self.counts[request.kind] = self.counts.get(request.kind, 0) + 1
        return request

    # -- the shadow, as requests are sent --------------------------------------------------

    def apply_write(self, request: Request) -> None:
        self.shadow[request.offset:request.end] = request.data

    def apply_zero(self, request: Request) -> None:
        self.shadow[request.offset:request.end] = bytes(request.length)

    def remember(self, request: Request) -> None:
        request.data = bytes(self.shadow[request.offset:request.end])  # what it holds now

    # -- checks as requests complete ---------------------------------------------------

    def failed(self, request: Request, what: str) -> None:
        if len(self.errors) < 10:
            self.errors.append(f"#{request.serial} {request.kind} {request.offset}+{request.length}: {what}")

    def check_done(self, request: Request) -> None:
        if request.error:
            self.failed(request, f"errno {request.error}")

    def check_read(self, request: Request) -> None:
        if request.error:
            self.failed(request, f"errno {request.error}")
        elif request.result != request.data:
            index = next(i for i, (a, b) in enumerate(zip(request.result, request.data)) if a != b)
            self.failed(request, f"read differs from the shadow at byte {request.offset + index}")

    def read_back(self, trim: Request) -> Request | None:
        """After a trim, read its range (nothing overlapping is sent before this read
        completed) and adopt what the server holds if qcow2 discard semantics allow it."""
        if trim.error:
            self.failed(trim, f"errno {trim.error}")
            return None
        old = trim.data
        return Request(READ, trim.offset, trim.length, on_done=lambda read: self.judge_trim(read, old))

    def judge_trim(self, read: Request, old: bytes) -> None:
        if read.error:
            self.failed(read, f"errno {read.error} reading back a trim")
            return
        data, c, base = read.result, self.cluster, read.offset
        head_end = min(read.end, -(-base // c) * c)  # end of the partial cluster at the start
        full_end = max(head_end, (read.end // c) * c)  # end of the fully covered clusters
        if data[:head_end - base] != old[:head_end - base] or data[full_end - base:] != old[full_end - base:]:
            self.failed(read, "a trim changed a partially covered cluster")
            return
        for position in range(head_end, full_end, c):
            got = data[position - base:position - base + c]
            if got != old[position - base:position - base + c]:
                discarded = self.discarded(position, c)
                if discarded is None:
                    self.failed(read, f"cluster at {position} changed by a trim where QEMU does not discard "
                                      f"(now reads {'zeros' if not any(got) else 'other data'})")
                    return
                if got != discarded:
                    self.failed(read, f"cluster at {position} reads neither its old data nor zeros")
                    return
                self.discarded_clusters += 1
            self.shadow[position:position + c] = got

    def discarded(self, offset: int, length: int) -> bytes | None:
        """What a discarded cluster reads as in QEMU: zeros (v3: zero flag; v2 without a
        backing file: unallocated). None where QEMU does not discard: with discard=ignore,
        and on a v2 image with a backing file (it could only expose the backing data)."""
        if not self.discards:
            return None
        return bytes(length)

    @property
    def discards(self) -> bool:
        return self.case.discard and not (self.case.spec.compat == "0.10" and self.case.backing is not None)

    # -- running -------------------------------------------------------------------------

    def run(self, pipeline: Pipeline, budget: float) -> None:
        deadline = time.monotonic() + budget
        for index in range(self.case.operations):
            pipeline.submit(self.next_request())
            if index % 200 == 199:
                assert time.monotonic() < deadline, f"{index + 1} operations took more than {budget}s"
        pipeline.drain()


def read_all(handle: nbd.NBD, size: int) -> bytes:
    chunks = []
    for offset in range(0, size, 4 * MiB):
        chunks.append(handle.pread(min(4 * MiB, size - offset), offset))
    return b"".join(chunks)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_random_workload_matches_shadow(case: Case, start_daemon, subject_command, reference_command) -> None:
    discard = ",discard=unmap" if case.discard else ""
    daemon = start_daemon(subject_command, qcow2_args(IMAGE, writable=True, qcow2_opts=discard, file_opts=discard),
                          start=False)
    workdir = daemon.workdir
    make_images(workdir, case)
    initial = to_raw(workdir / IMAGE, workdir / "initial.raw").read_bytes()
    daemon.start()

    handle = connect_unix(workdir / NBD_SOCKET, "disk0")
    workload = Workload(case, initial)
    pipeline = Pipeline(handle, depth=16)
    workload.run(pipeline, TIME_BUDGET)
    assert not workload.errors, f"{case.name} (seed {case.seed}, counts {workload.counts}):\n" + "\n".join(workload.errors)
    # QEMU passes full-cluster discards to qcow2 only with discard=unmap on the node.
    if workload.discards:
        assert workload.discarded_clusters > 0, "discard=unmap, yet no trimmed cluster was discarded"
    failed = [r for r in pipeline.completed if r.error]
    assert not failed, [(r.kind, r.offset, r.length, r.error) for r in failed[:10]]
    content = read_all(handle, case.spec.size)
    assert content == bytes(workload.shadow), f"export differs from the shadow at byte {first_difference_bytes(content, workload.shadow)}"
    handle.flush()
    handle.shutdown()
    daemon.stop()

    shadow = workdir / "shadow.raw"
    shadow.write_bytes(workload.shadow)
    result = run_tool(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(workdir / IMAGE), str(shadow)], cwd=workdir)
    assert result.returncode == 0, f"qemu-img compare: {output_of(result)}"
    assert_clean(workdir / IMAGE)

    qsd = start_daemon(reference_command, qcow2_args(str(workdir / IMAGE)))
    back = export_to_raw(export_uri(qsd.workdir), qsd.workdir / "back.raw")
    assert first_difference(back, shadow) is None, "QSD reads the image back differently"
    assert file_digest(back) == file_digest(shadow)
    qsd.stop()


def first_difference_bytes(a: bytes, b: bytes) -> int | None:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))
