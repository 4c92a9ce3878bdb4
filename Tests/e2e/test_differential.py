"""Differential suite: every scenario runs on the reference (QSD) and on the subject, and the
normalised records (QMP returns, error class+desc, events with their data, NBD results,
thresholds, host file layout) must be equal step by step.

Steps marked `ok(...)`/`err(...)` are also checked on the reference so that a scenario that
means "bad argument" really is one. Deliberate HighWater/QSD differences are `Divergent`.
"""

from __future__ import annotations

import random

import nbd
import pytest

from harness.nbdio import connect_unix, pattern, run_tool
from harness.qcow2 import qcow2_args
from harness.scenario import (
    AtLeastAllocated,
    Connect,
    Disconnect,
    Divergent,
    Flush,
    Highest,
    HostMap,
    Q,
    QemuIo,
    Quit,
    Read,
    Scenario,
    Status,
    Terminate,
    Thresholds,
    Trim,
    Write,
    Zero,
    assert_same,
    err,
    ok,
    run,
    written,
)

KiB = 1024
MiB = 1024 * KiB
DISK = 16 * MiB
U64_MAX = 2**64 - 1

NBD_SERVER = ["--nbd-server", "addr.type=unix,addr.path={dir}/nbd.sock"]


def disk(file_opts: str = "", raw_opts: str = "", export_opts: str = ",writable=on") -> list[str]:
    """file0 (file on {dir}/disk.img) <- disk0 (raw) exported as 'disk0' on {dir}/nbd.sock."""
    return [
        "--blockdev", f"driver=file,node-name=file0,filename={{dir}}/disk.img{file_opts}",
        "--blockdev", f"driver=raw,node-name=disk0,file=file0{raw_opts}",
        *NBD_SERVER,
        "--export", f"type=nbd,id=exp0,node-name=disk0,name=disk0{export_opts}",
    ]


IMAGE = {"disk.img": DISK}
SCENARIOS: list[Scenario] = []


def scenario(name: str, args: list[str], steps: list, files: dict[str, int] | None = None) -> None:
    SCENARIOS.append(Scenario(name=name, args=args, steps=steps, files=IMAGE if files is None else files))


# -- NBD I/O -----------------------------------------------------------------------------------

scenario("io-basic", disk(), [
    Connect("c", "disk0"),
    Write("c", 0, 4 * KiB, seed=1),
    Read("c", 0, 4 * KiB, expect=written(1, 4 * KiB)),
    Write("c", 1, 3, seed=2),  # unaligned
    Read("c", 0, 8 * KiB),
    Write("c", 1 * MiB, 64 * KiB, seed=3, fua=True),
    Read("c", 1 * MiB, 64 * KiB, expect=written(3, 64 * KiB)),
    Zero("c", 1 * MiB, 16 * KiB, no_hole=True),
    Read("c", 1 * MiB, 16 * KiB, expect=f"zero*{16 * KiB}"),
    Zero("c", 1 * MiB + 16 * KiB, 16 * KiB),
    Read("c", 1 * MiB, 64 * KiB),
    Trim("c", 1 * MiB + 32 * KiB, 16 * KiB),  # discard=ignore: data stays
    Read("c", 1 * MiB + 32 * KiB, 32 * KiB),
    Flush("c"),
    Read("c", DISK - 4 * KiB, 4 * KiB, expect=f"zero*{4 * KiB}"),
    Write("c", DISK - 512, 512, seed=4),  # last sector
    Read("c", DISK - 512, 512, expect=written(4, 512)),
    Highest(),
    ok("query-blockstats", {"query-nodes": True}),
    AtLeastAllocated(Status("c", 0, DISK)),
    AtLeastAllocated(HostMap("disk.img")),
    Disconnect("c"),
    QemuIo("disk0", ["write -P 0xab 2M 128k", "read -P 0xab 2M 128k", "write -z 2M 4k", "write -z -u 2101248 4k",
                     "read -P 0 2M 8k", "discard 2162688 64k", "flush", "read -P 0xab 2105344 120k"]),
    QemuIo("disk0", ["read -P 0xcd 2M 4k"], expect_status=None),  # pattern mismatch is reported
    Highest(),
])

scenario("io-large-requests", disk(), [
    Connect("c", "disk0"),
    Write("c", 0, 8 * MiB, seed=5),  # one request, far above the preferred size
    Read("c", 0, 8 * MiB, expect=written(5, 8 * MiB)),
    Zero("c", 0, DISK, no_hole=True),  # payload-free command spanning the whole disk
    Read("c", 4 * MiB, 1 * MiB, expect=f"zero*{MiB}"),
    Read("c", DISK, 0),  # zero length at the end
    Highest(),
])

scenario("io-out-of-range", disk(), [
    Connect("c", "disk0", strict=False),
    Read("c", DISK - 512, 1024),
    Read("c", DISK, 512),
    Trim("c", DISK - 512, 1024),
    Divergent(Zero("c", DISK, 512), reference={"EINVAL"}, subject={"EINVAL", "ENOSPC"},
              why="NBD spec: WRITE_ZEROES past the end is ENOSPC; QEMU says EINVAL"),
    # QEMU answers EINVAL for writes past the end; the NBD spec says ENOSPC. HighWater may
    # follow either (the suite accepts both for the subject, QSD must still say EINVAL).
    Divergent(Write("c", DISK - 512, 1024), reference={"EINVAL"}, subject={"EINVAL", "ENOSPC"},
              why="NBD spec: WRITE past the end is ENOSPC; QEMU says EINVAL"),
    Divergent(Write("c", 2**62, 512), reference={"EINVAL"}, subject={"EINVAL", "ENOSPC"},
              why="NBD spec: WRITE past the end is ENOSPC; QEMU says EINVAL"),
    Read("c", 0, 512),  # connection still usable
    Highest(),
])

scenario("io-read-only-export", disk(export_opts=""), [
    Connect("c", "disk0", strict=False),
    Read("c", 0, 4 * KiB),
    Flush("c"),
    # The NBD spec requires EPERM for writes to a read-only export; QEMU answers EINVAL
    # ("Export is read-only"). HighWater follows the spec.
    Divergent(Write("c", 0, 512), reference={"EINVAL"}, subject={"EPERM"},
              why="NBD spec: write/trim/zero on a read-only export is EPERM"),
    Divergent(Zero("c", 0, 512), reference={"EINVAL"}, subject={"EPERM"},
              why="NBD spec: write/trim/zero on a read-only export is EPERM"),
    Divergent(Trim("c", 0, 512), reference={"EINVAL"}, subject={"EPERM"},
              why="NBD spec: write/trim/zero on a read-only export is EPERM"),
    Read("c", 0, 512),
    Highest(),
])

scenario("io-discard-unmap", disk(file_opts=",discard=unmap", raw_opts=",discard=unmap"), [
    Connect("c", "disk0"),
    Write("c", 0, 4 * MiB, seed=6),
    Flush("c"),
    AtLeastAllocated(HostMap("disk.img")),
    Trim("c", 1 * MiB, 1 * MiB),
    Read("c", 1 * MiB, 1 * MiB),
    Zero("c", 2 * MiB, 512 * KiB),  # may punch a hole
    Zero("c", 3 * MiB, 512 * KiB, no_hole=True),  # must stay allocated
    Read("c", 2 * MiB, 2 * MiB),
    Flush("c"),
    AtLeastAllocated(HostMap("disk.img")),
    AtLeastAllocated(Status("c", 0, 8 * MiB)),
    Highest(),
])

scenario("io-discard-ignore", disk(), [
    Connect("c", "disk0"),
    Write("c", 0, 4 * MiB, seed=6),
    Trim("c", 1 * MiB, 1 * MiB),  # dropped: the data stays
    Read("c", 1 * MiB, 1 * MiB),
    Zero("c", 2 * MiB, 512 * KiB),  # without may-unmap: stays allocated
    Zero("c", 3 * MiB, 512 * KiB, no_hole=True),
    Read("c", 0, 4 * MiB),
    Flush("c"),
    HostMap("disk.img"),
    Status("c", 0, 8 * MiB),
])

scenario("io-raw-offset-size", [
    "--blockdev", "driver=file,node-name=file0,filename={dir}/disk.img",
    "--blockdev", "driver=raw,node-name=disk0,file=file0,offset=1048576,size=4194304",
    *NBD_SERVER,
    "--export", "type=nbd,id=exp0,node-name=disk0,name=disk0,writable=on",
], [
    Connect("c", "disk0", strict=False),
    Write("c", 0, 64 * KiB, seed=7),
    Write("c", 4 * MiB - 4 * KiB, 4 * KiB, seed=8),
    Read("c", 0, 64 * KiB, expect=written(7, 64 * KiB)),
    Divergent(Write("c", 4 * MiB, 512), reference={"EINVAL"}, subject={"EINVAL", "ENOSPC"},
              why="NBD spec: WRITE past the end is ENOSPC; QEMU says EINVAL"),
    Read("c", 4 * MiB, 512),
    Flush("c"),
    HostMap("disk.img"),  # data landed at host offsets 1 MiB.. and 5 MiB-4 KiB..
    Highest(),  # disk0 in guest offsets, file0 in host offsets
    ok("block-set-write-threshold", {"node-name": "file0", "write-threshold": 1 * MiB + 128 * KiB}),
    Write("c", 128 * KiB, 4 * KiB, seed=9),  # host end 1 MiB + 132 KiB
    Thresholds(),
    ok("query-named-block-nodes", {"flat": True}),
    err("block_resize", {"node-name": "disk0", "size": 8 * MiB}),
])

scenario("io-qemu-io-patterns", disk(), [
    QemuIo("disk0", ["write -P 0x11 0 1M", "write -P 0x22 512k 4k", "read -P 0x11 0 512k",
                     "read -P 0x22 512k 4k", "read -P 0x11 516k 508k"]),
    QemuIo("disk0", ["write -z -u 0 64k", "read -P 0 0 64k", "discard 64k 64k", "flush"]),
    QemuIo("disk0", ["aio_write -P 0x33 2M 64k", "aio_write -P 0x44 3M 64k", "aio_flush", "read -P 0x33 2M 64k",
                     "read -P 0x44 3M 64k"], unordered=True),
    QemuIo("disk0", ["write 16M 4k"], expect_status=1),  # past the end
    Highest(),
])

# -- write threshold ---------------------------------------------------------------------------

THRESHOLD_EVENT = "BLOCK_WRITE_THRESHOLD"


def threshold_steps(node: str, highest_of: tuple[str, ...] | None = None) -> list:
    """Arm, fire once, disarm, re-arm on `node` through writes on export disk0.
    `highest_of`: the nodes whose wr_highest_offset is compared (default: all)."""
    arm = lambda value: ok("block-set-write-threshold", {"node-name": node, "write-threshold": value})  # noqa: E731
    return [
        Connect("c", "disk0"),
        Thresholds(),
        arm(1 * MiB),
        Thresholds(),
        Write("c", 0, 64 * KiB),  # below: no event
        Write("c", 1 * MiB - 4 * KiB, 4 * KiB),  # ends exactly at the threshold: no event
        Read("c", 1 * MiB, 1 * MiB),  # reads never trigger
        Flush("c"),
        Write("c", 1 * MiB - 4 * KiB, 8 * KiB),  # crosses: event, threshold reset to 0
        Thresholds(),
        Write("c", 2 * MiB, 4 * KiB),  # one-shot: no second event
        arm(4 * MiB),  # re-arm
        Write("c", 4 * MiB + 1 * KiB, 1 * KiB),  # starts above: fires
        Thresholds(),
        arm(8 * MiB),
        arm(0),  # disarm
        Write("c", 9 * MiB, 4 * KiB),
        Thresholds(),
        arm(64 * KiB),  # below the highest offset written so far: no event by itself
        Thresholds(),
        Highest(highest_of),
        Write("c", 0, 4 * KiB),  # still below the threshold
        Zero("c", 64 * KiB, 4 * KiB),  # write-zeroes triggers too
        Thresholds(),
        arm(12 * MiB),
        Zero("c", 12 * MiB, 1 * MiB, no_hole=True),
        arm(U64_MAX),  # reads back as -1 (BlockDeviceInfo.write_threshold is an int)
        Thresholds(),
        Write("c", DISK - 512, 512),
        arm(2**63),
        Thresholds(),
        arm(-1),  # accepted and wrapped to 2^64-1
        Thresholds(),
        arm(1 * MiB),
        arm(2 * MiB),  # re-arming replaces the old value
        Write("c", 1 * MiB, 1 * MiB + 512),
        Thresholds(),
        Highest(highest_of),
    ]


scenario("threshold-format-node", disk(), threshold_steps("disk0"))
scenario("threshold-protocol-node", disk(), threshold_steps("file0"))

scenario("threshold-both-nodes-and-offset", [
    "--blockdev", "driver=file,node-name=file0,filename={dir}/disk.img,discard=unmap",
    "--blockdev", "driver=raw,node-name=disk0,file=file0,offset=65536,discard=unmap",
    *NBD_SERVER,
    "--export", "type=nbd,id=exp0,node-name=disk0,name=disk0,writable=on",
], [
    Connect("c", "disk0"),
    ok("block-set-write-threshold", {"node-name": "disk0", "write-threshold": 1 * MiB}),
    ok("block-set-write-threshold", {"node-name": "file0", "write-threshold": 1 * MiB}),
    Write("c", 1 * MiB - 64 * KiB - 512, 512),  # host end = 1 MiB - 0: nothing
    Write("c", 1 * MiB - 64 * KiB, 512),  # host end past 1 MiB: file0 fires, disk0 not
    Thresholds(),
    Write("c", 1 * MiB, 512),  # guest end past 1 MiB: disk0 fires
    Thresholds(),
    ok("block-set-write-threshold", {"node-name": "disk0", "write-threshold": 2 * MiB}),
    ok("block-set-write-threshold", {"node-name": "file0", "write-threshold": 2 * MiB}),
    Trim("c", 2 * MiB, 64 * KiB),  # discard=unmap: a discard crossing both fires both
    Thresholds(),
    ok("block-set-write-threshold", {"node-name": "disk0", "write-threshold": 3 * MiB}),
    Read("c", 3 * MiB, 64 * KiB),
    Flush("c"),
    Thresholds(),
    Highest(),
])

# -- qcow2 -------------------------------------------------------------------------------------

QCOW2 = "disk.qcow2"


def qcow2_image(*options: str, size: int = DISK, backing: str | None = None) -> list[list[str]]:
    """`qemu-img create` of {dir}/disk.qcow2 (and, with `backing`, a base image with data)."""
    commands = []
    argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if options:
        argv += ["-o", ",".join(options)]
    if backing is not None:
        commands += [
            ["qemu-img", "create", "-q", "-f", "qcow2", backing, str(size // 2)],
            ["qemu-io", "-f", "qcow2", "-c", "write -P 0x5b 0 3M", "-c", "write -z 1M 64k", backing],
        ]
        argv += ["-b", backing, "-F", "qcow2"]
    return commands + [argv + [QCOW2, str(size)]]


def qcow2(qcow2_opts: str = "", file_opts: str = "") -> list[str]:
    return qcow2_args(QCOW2, writable=True, qcow2_opts=qcow2_opts, file_opts=file_opts)


def qcow2_scenario(name: str, args: list[str], steps: list, prepare: list[list[str]]) -> None:
    SCENARIOS.append(Scenario(name=name, args=args, steps=steps, prepare=prepare))


# Thresholds on the qcow2 node watch guest offsets: exactly QSD's events and values.
qcow2_scenario("qcow2-threshold-format-node", qcow2(), threshold_steps("disk0"), qcow2_image())
# QEMU allocates an (empty) L2 table for a write-zeroes over an unallocated range of a v2
# image, which changes nothing a guest can see: the host layout may differ, so only the
# qcow2 node's wr_highest_offset is compared.
qcow2_scenario("qcow2-threshold-format-node-v2-4k", qcow2(), threshold_steps("disk0", highest_of=("disk0",)),
               qcow2_image("compat=0.10", "cluster_size=4096"))
qcow2_scenario("qcow2-threshold-format-node-backing", qcow2(), threshold_steps("disk0"),
               qcow2_image(backing="base.qcow2"))



def arm(node: str, value: int) -> Q:
    return ok("block-set-write-threshold", {"node-name": node, "write-threshold": value})


# Thresholds on the qcow2 node's file: where QEMU's host layout is reproducible (a fresh image,
# clusters allocated one after the other: L2 table at 0x40000, data from 0x50000 on), the
# events must be QSD's exactly, metadata writes included.
qcow2_scenario("qcow2-threshold-file-node-sequential", qcow2(), [
    Connect("c", "disk0"),
    arm("file0", 0x48000),  # inside the first L2 table
    Write("c", 0, 64 * KiB),  # L2 table 0x40000.., data 0x50000..0x60000
    Thresholds(),
    Highest(),
    arm("file0", 0x58000),  # below the highest offset: the next allocation fires
    Write("c", 64 * KiB, 64 * KiB),  # data 0x60000..0x70000
    Thresholds(),
    arm("file0", 0x70000),  # exactly the end so far
    Write("c", 0, 64 * KiB, seed=2),  # rewrite in place: no host growth, no event
    Flush("c"),  # metadata below the end: no event
    Thresholds(),
    Write("c", 128 * KiB, 64 * KiB),  # data 0x70000..0x80000
    Thresholds(),
    arm("file0", 0x80100),
    Write("c", 192 * KiB, 64 * KiB, fua=True),
    Thresholds(),
    arm("file0", 0xA0000),
    Zero("c", 256 * KiB, 64 * KiB, no_hole=True),  # v3: a zero flag in L2, no data cluster
    Thresholds(),
    Write("c", 320 * KiB, 64 * KiB),  # data 0x90000..0xA0000: ends at the threshold
    Thresholds(),
    Write("c", 384 * KiB, 64 * KiB),  # data 0xA0000..0xB0000: fires
    Thresholds(),
    Highest(),
    HostMap(QCOW2),
], qcow2_image())

qcow2_scenario("qcow2-threshold-file-node-sequential-requests", qcow2(), [
    Connect("c", "disk0"),
    Write("c", 0, 64 * KiB),  # L2 table 0x40000, data 0x50000..0x60000
    arm("file0", 0x60000 + 512 * KiB),
    Write("c", 64 * KiB, 1 * MiB),  # 16 clusters in one request: 0x60000..0x160000
    Thresholds(),
    arm("file0", 0x160000 + 4 * KiB),
    Write("c", 1088 * KiB, 4 * KiB),  # a partial cluster: the rest of it is zero-filled
    Thresholds(),
    arm("file0", 0x170000 + 1),
    Write("c", 1152 * KiB + 100, 1000),  # unaligned, inside a fresh cluster
    Thresholds(),
    arm("file0", 0x180000 + 32 * KiB),
    Write("c", 1216 * KiB + 60 * KiB, 8 * KiB),  # straddles two fresh clusters
    Thresholds(),
    Highest(),
    HostMap(QCOW2),
], qcow2_image())

# Discards reach the qcow2 node with discard=unmap (and the freed host clusters reach the file
# with discard=unmap there too): they count for both thresholds, as writes do.
qcow2_scenario("qcow2-threshold-discard", qcow2(qcow2_opts=",discard=unmap", file_opts=",discard=unmap"), [
    Connect("c", "disk0"),
    Write("c", 0, 1 * MiB),  # L2 table 0x40000, data 0x50000..0x150000
    Flush("c"),
    arm("disk0", 512 * KiB),
    arm("file0", 0x100000),
    Trim("c", 512 * KiB, 64 * KiB),  # guest end past 512 KiB: disk0 fires; host cluster 0xD0000 freed
    Thresholds(),
    Trim("c", 960 * KiB, 64 * KiB),  # the last data cluster 0x140000..0x150000 is freed
    Flush("c"),
    Thresholds(),
    Read("c", 512 * KiB, 64 * KiB, expect=f"zero*{64 * KiB}"),
    arm("disk0", 2 * MiB),
    Trim("c", 2 * MiB, 64 * KiB),  # nothing allocated there: still a discard crossing 2 MiB
    Thresholds(),
    arm("disk0", 4 * MiB),
    Zero("c", 4 * MiB - 4 * KiB, 8 * KiB),  # write-zeroes crosses too
    Thresholds(),
    Highest(),
    Status("c", 0, 8 * MiB),
], qcow2_image())

scenario("threshold-discard-ignored", disk(), [
    Connect("c", "disk0"),
    ok("block-set-write-threshold", {"node-name": "disk0", "write-threshold": 1 * MiB}),
    ok("block-set-write-threshold", {"node-name": "file0", "write-threshold": 1 * MiB}),
    Trim("c", 2 * MiB, 64 * KiB),  # discard=ignore: the discard never reaches the check
    Thresholds(),
    Zero("c", 2 * MiB, 64 * KiB),
    Thresholds(),
])

scenario("threshold-arguments", disk(), [
    err("block-set-write-threshold", {"node-name": "disk0", "write-threshold": "4096"},
        desc="Parameter 'write-threshold' expects uint64"),
    err("block-set-write-threshold", {"node-name": "disk0", "write-threshold": 1.5}),
    err("block-set-write-threshold", {"node-name": "disk0", "write-threshold": 1e3}),
    err("block-set-write-threshold", {"node-name": "disk0", "write-threshold": 2**64}),
    err("block-set-write-threshold", {"node-name": "disk0", "write-threshold": -(2**63) - 1}),
    ok("block-set-write-threshold", {"node-name": "disk0", "write-threshold": -(2**63)}),
    err("block-set-write-threshold", {"node-name": "disk0", "write-threshold": True}),
    err("block-set-write-threshold", {"node-name": "disk0", "write-threshold": None}),
    err("block-set-write-threshold", {"node-name": "disk0", "write-threshold": [1]}),
    err("block-set-write-threshold", {"node-name": "disk0", "write-threshold": {}}),
    err("block-set-write-threshold", {"node-name": "disk0"}, desc="Parameter 'write-threshold' is missing"),
    err("block-set-write-threshold", {"write-threshold": 4}),
    err("block-set-write-threshold", {}),
    err("block-set-write-threshold"),
    err("block-set-write-threshold", {"node-name": "nope", "write-threshold": 4}, desc="Device 'nope' not found"),
    err("block-set-write-threshold", {"node-name": "exp0", "write-threshold": 4}),  # an export id is no node
    err("block-set-write-threshold", {"node-name": "", "write-threshold": 4}),
    err("block-set-write-threshold", {"node-name": 5, "write-threshold": 4}),
    err("block-set-write-threshold", {"node-name": None, "write-threshold": 4}),
    err("block-set-write-threshold", {"node-name": "disk0", "write-threshold": 4, "extra": 1},
        desc="Parameter 'extra' is unexpected"),
    err("block-set-write-threshold", {"node-name": "disk0", "write-threshold": "x", "extra": 1}),
    Q("block-set-write-threshold", raw={"execute": "block-set-write-threshold", "arguments": None}, expect="error"),
    Q("block-set-write-threshold", raw={"execute": "block-set-write-threshold", "arguments": []}, expect="error"),
    Thresholds(),
])

scenario("threshold-null-co", [
    "--blockdev", "driver=null-co,node-name=null0,size=67108864,read-zeroes=on",
    *NBD_SERVER,
    "--export", "type=nbd,id=exp0,node-name=null0,name=null0,writable=on",
], [
    ok("block-set-write-threshold", {"node-name": "null0", "write-threshold": 32 * MiB}),
    Connect("c", "null0"),
    Write("c", 32 * MiB - 4 * KiB, 4 * KiB),
    Write("c", 32 * MiB, 4 * KiB),
    Read("c", 32 * MiB, 4 * KiB, expect=f"zero*{4 * KiB}"),
    Thresholds(),
    Highest(),
    Status("c", 0, 64 * MiB),
], files={})

# -- blockdev-add / blockdev-del / null-co ---------------------------------------------------

scenario("blockdev-lifecycle", NBD_SERVER, [
    ok("query-named-block-nodes"),
    ok("blockdev-add", {"driver": "file", "node-name": "file0", "filename": "{dir}/disk.img"}),
    err("blockdev-add", {"driver": "file", "node-name": "file0", "filename": "{dir}/disk.img"},
        desc="Duplicate nodes with node-name='file0'"),
    ok("blockdev-add", {"driver": "raw", "node-name": "disk0", "file": "file0"}),
    ok("query-named-block-nodes", {"flat": True}),
    ok("query-named-block-nodes", {"flat": False}),
    ok("query-named-block-nodes"),
    ok("query-blockstats", {"query-nodes": True}),
    ok("query-blockstats", {"query-nodes": False}),
    ok("query-blockstats"),
    err("blockdev-del", {"node-name": "file0"}),  # has a parent
    err("blockdev-del", {"node-name": "nosuch"}, desc="Failed to find node with node-name='nosuch'"),
    ok("block-export-add", {"type": "nbd", "id": "exp0", "node-name": "disk0", "writable": True}),
    err("blockdev-del", {"node-name": "disk0"}),  # in use by an export
    ok("block-export-del", {"id": "exp0"}),
    ok("blockdev-del", {"node-name": "disk0"}),
    ok("blockdev-del", {"node-name": "file0"}),
    err("blockdev-del", {"node-name": "file0"}),
    ok("query-named-block-nodes"),
    # inline child: an implicitly named file node
    ok("blockdev-add", {"driver": "raw", "node-name": "disk1", "file": {"driver": "file", "filename": "{dir}/disk.img"}}),
    ok("query-named-block-nodes", {"flat": True}),
    ok("blockdev-del", {"node-name": "disk1"}),
    ok("query-named-block-nodes", {"flat": True}),
    # node names
    err("blockdev-add", {"driver": "null-co", "node-name": "1bad"}),
    err("blockdev-add", {"driver": "null-co", "node-name": "a" * 32}),
    ok("blockdev-add", {"driver": "null-co", "node-name": "a" * 31}),
    err("blockdev-add", {"driver": "null-co", "node-name": "bad name"}),
    err("blockdev-add", {"driver": "null-co", "node-name": "#block1"}),
    err("blockdev-add", {"driver": "null-co", "node-name": ""}),
    ok("blockdev-add", {"driver": "null-co", "node-name": "A-b_c.9"}),
    err("blockdev-add", {"driver": "null-co"}),  # no node name for the root node
    ok("query-named-block-nodes", {"flat": True}),
], files=IMAGE)

scenario("blockdev-add-arguments", NBD_SERVER, [
    err("blockdev-add"),
    err("blockdev-add", {}),
    err("blockdev-add", {"node-name": "n"}),
    err("blockdev-add", {"driver": "bogus", "node-name": "n"}),
    err("blockdev-add", {"driver": 5, "node-name": "n"}),
    err("blockdev-add", {"driver": "null-co", "node-name": 5}),
    err("blockdev-add", {"driver": "null-co", "node-name": "n", "bogus": 1}),
    err("blockdev-add", {"driver": "null-co", "node-name": "n", "size": "1M"}),
    err("blockdev-add", {"driver": "null-co", "node-name": "n", "size": 1.5}),
    err("blockdev-add", {"driver": "null-co", "node-name": "n", "read-zeroes": "on"}),
    err("blockdev-add", {"driver": "null-co", "node-name": "n", "read-only": 1}),
    err("blockdev-add", {"driver": "null-co", "node-name": "n", "discard": "bogus"}),
    err("blockdev-add", {"driver": "null-co", "node-name": "n", "detect-zeroes": "bogus"}),
    err("blockdev-add", {"driver": "null-co", "node-name": "n", "cache": {"direct": "yes"}}),
    err("blockdev-add", {"driver": "null-co", "node-name": "n", "cache": {"bogus": True}}),
    err("blockdev-add", {"driver": "null-co", "node-name": "n", "cache": 1}),
    err("blockdev-add", {"driver": "file", "node-name": "f"}),
    err("blockdev-add", {"driver": "file", "node-name": "f", "filename": 5}),
    err("blockdev-add", {"driver": "file", "node-name": "f", "filename": "{dir}/nonexistent"}),
    err("blockdev-add", {"driver": "file", "node-name": "f", "filename": "{dir}/disk.img", "aio": "bogus"}),
    err("blockdev-add", {"driver": "file", "node-name": "f", "filename": "{dir}/disk.img", "locking": "maybe"}),
    err("blockdev-add", {"driver": "host_device", "node-name": "h", "filename": "{dir}/disk.img"}),
    err("blockdev-add", {"driver": "raw", "node-name": "r"}),
    err("blockdev-add", {"driver": "raw", "node-name": "r", "file": "nosuch"}),
    err("blockdev-add", {"driver": "raw", "node-name": "r", "file": 5}),
    err("blockdev-add", {"driver": "raw", "node-name": "r", "file": {"driver": "file"}}),
    ok("blockdev-add", {"driver": "file", "node-name": "file0", "filename": "{dir}/disk.img"}),
    err("blockdev-add", {"driver": "raw", "node-name": "r", "file": "file0", "size": 1000}),
    err("blockdev-add", {"driver": "raw", "node-name": "r", "file": "file0", "offset": DISK, "size": 512}),
    err("blockdev-add", {"driver": "raw", "node-name": "r", "file": "file0", "offset": -1}),
    err("blockdev-add", {"driver": "raw", "node-name": "r", "file": "file0", "size": -512}),
    ok("blockdev-add", {"driver": "raw", "node-name": "r1", "file": "file0", "offset": DISK - 512, "size": 512}),
    ok("blockdev-add", {"driver": "raw", "node-name": "r2", "file": "file0", "offset": 12345}),
    ok("blockdev-add", {"driver": "raw", "node-name": "r3", "file": "file0", "read-only": True}),
    ok("query-named-block-nodes", {"flat": True}),
    err("blockdev-add", {"driver": "raw", "node-name": "r1", "file": "file0"}),  # duplicate id
    err("blockdev-add", {"driver": "null-co", "node-name": "file0"}),  # duplicate id, other driver
    ok("blockdev-add", {"driver": "null-co", "node-name": "n0"}),
    ok("blockdev-add", {"driver": "null-co", "node-name": "n1", "size": 4096, "read-zeroes": True,
                        "latency-ns": 0, "read-only": True, "discard": "unmap",
                        "cache": {"direct": False, "no-flush": True}, "detect-zeroes": "on"}),
    ok("blockdev-add", {"driver": "null-co", "node-name": "n2", "size": 0}),
    ok("blockdev-add", {"driver": "null-aio", "node-name": "n3", "size": 1 * MiB}),
    ok("query-named-block-nodes", {"flat": True}),
    ok("query-blockstats", {"query-nodes": True}),
], files=IMAGE)

scenario("many-nodes", [], [
    *[ok("blockdev-add", {"driver": "null-co", "node-name": f"n{index}", "size": (index + 1) * MiB}) for index in range(40)],
    ok("query-named-block-nodes", {"flat": True}),
    *[ok("blockdev-del", {"node-name": f"n{index}"}) for index in range(0, 40, 3)],
    ok("blockdev-add", {"driver": "null-co", "node-name": "n0"}),
    ok("query-named-block-nodes", {"flat": True}),
    ok("query-named-block-nodes"),
    ok("query-blockstats", {"query-nodes": True}),
    *[ok("block-set-write-threshold", {"node-name": f"n{index}", "write-threshold": index * 4096}) for index in range(1, 40, 3)],
    Thresholds(),
], files={})

scenario("shared-file-node", disk(), [
    Q("blockdev-add", {"driver": "raw", "node-name": "second", "file": "file0"}),  # two parents on file0
    Q("blockdev-add", {"driver": "raw", "node-name": "third", "file": "file0", "read-only": True}),
    ok("query-named-block-nodes", {"flat": True}),
    err("blockdev-del", {"node-name": "file0"}),
    Q("blockdev-del", {"node-name": "second"}),
    Q("blockdev-del", {"node-name": "third"}),
    err("blockdev-del", {"node-name": "file0"}),
    ok("query-named-block-nodes", {"flat": True}),
])

scenario("null-co-export", [
    "--blockdev", "driver=null-co,node-name=null0,size=1073741824,read-zeroes=on",
    "--blockdev", "null-co,node-name=null1,size=4194304",
    *NBD_SERVER,
    "--export", "type=nbd,id=exp0,node-name=null0,name=null0,writable=on",
    "--export", "type=nbd,id=exp1,node-name=null1",
], [
    Connect("z", "null0"),
    Write("z", 0, 64 * KiB),
    Read("z", 0, 64 * KiB, expect=f"zero*{64 * KiB}"),
    Zero("z", 0, 1 * MiB),
    Trim("z", 0, 1 * MiB),
    Flush("z"),
    Status("z", 0, 1 * MiB),
    Connect("r", "null1"),
    Highest(),
    ok("query-named-block-nodes", {"flat": True}),
    ok("query-block-exports"),
    err("block_resize", {"node-name": "null0", "size": 2 * MiB}),
], files={})

# -- block_resize ----------------------------------------------------------------------------

scenario("block-resize", [
    "--blockdev", "driver=file,node-name=file0,filename={dir}/disk.img",
    "--blockdev", "driver=raw,node-name=disk0,file=file0",
    "--blockdev", "driver=file,node-name=file1,filename={dir}/other.img",
    "--blockdev", "driver=raw,node-name=disk1,file=file1,size=1048576",
    *NBD_SERVER,
], [
    ok("block_resize", {"node-name": "disk0", "size": 32 * MiB}),
    HostMap("disk.img"),
    ok("block_resize", {"node-name": "file0", "size": 8 * MiB}),  # shrink through the protocol node
    ok("query-named-block-nodes", {"flat": True}),
    ok("block_resize", {"node-name": "disk0", "size": 16 * MiB + 512}),
    ok("query-named-block-nodes", {"flat": True}),
    HostMap("disk.img"),
    ok("block_resize", {"node-name": "disk0", "size": 1000}),  # raw/file take any byte size
    ok("query-named-block-nodes", {"flat": True}),
    ok("block_resize", {"node-name": "disk0", "size": 16 * MiB + 512}),
    ok("block_resize", {"node-name": "disk0", "size": 0}),
    ok("query-named-block-nodes", {"flat": True}),
    ok("block_resize", {"node-name": "disk0", "size": 16 * MiB + 512}),
    err("block_resize", {"node-name": "disk0", "size": -512}),
    err("block_resize", {"node-name": "disk0", "size": "1M"}),
    err("block_resize", {"node-name": "disk0"}),
    err("block_resize", {"size": 512}),
    err("block_resize", {"node-name": "nosuch", "size": 512}),
    err("block_resize", {"device": "nosuch", "size": 512}),
    err("block_resize", {"device": "disk0", "size": 512}),  # node names are not devices
    err("block_resize", {"device": "", "node-name": "", "size": 512}),
    err("block_resize", {"node-name": "disk0", "size": 512, "bogus": 1}),
    err("block_resize", {"node-name": "disk1", "size": 2 * MiB}),  # fixed-size raw
    ok("block-export-add", {"type": "nbd", "id": "exp0", "node-name": "disk0", "writable": True}),
    Connect("c", "disk0"),  # sees the new size
    Write("c", 16 * MiB, 512),
    err("block_resize", {"node-name": "disk0", "size": 64 * MiB}),  # the export does not share resize
    err("block_resize", {"node-name": "file0", "size": 64 * MiB}),
    ok("query-named-block-nodes", {"flat": True}),
], files={"disk.img": DISK, "other.img": 4 * MiB})

# -- NBD server and exports ------------------------------------------------------------------

scenario("nbd-server-and-exports", [
    "--blockdev", "driver=file,node-name=file0,filename={dir}/disk.img",
    "--blockdev", "driver=raw,node-name=disk0,file=file0",
    "--blockdev", "driver=null-co,node-name=null0,read-zeroes=on",
], [
    ok("query-block-exports"),
    err("block-export-add", {"type": "nbd", "id": "e0", "node-name": "disk0"}, desc="NBD server not running"),
    err("nbd-server-stop", desc="NBD server not running"),
    err("nbd-server-start"),
    err("nbd-server-start", {"addr": {"type": "unix", "path": "{dir}/nbd.sock"}}),  # flat form is CLI only
    err("nbd-server-start", {"addr": {"type": "bogus", "data": {}}}),
    err("nbd-server-start", {"addr": {"type": "unix", "data": {}}}),
    err("nbd-server-start", {"addr": {"type": "unix", "data": {"path": 5}}}),
    err("nbd-server-start", {"addr": {"type": "unix", "data": {"path": "{dir}/nbd.sock"}}, "max-connections": -1}),
    err("nbd-server-start", {"addr": {"type": "unix", "data": {"path": "{dir}/nbd.sock"}}, "bogus": 1}),
    err("nbd-server-start", {"addr": {"type": "unix", "data": {"path": "{dir}/nbd.sock"}}, "tls-creds": "nosuch"}),
    err("nbd-server-start", {"addr": {"type": "unix", "data": {"path": "/nonexistent-dir/x.sock"}}}),
    err("nbd-server-start", {"addr": "{dir}/nbd.sock"}),
    err("nbd-server-start", {"addr": {"type": "unix", "data": {"path": "{dir}/nbd.sock"}}, "max-connections": "1"}),
    err("nbd-server-start", {"addr": {"type": "unix", "data": {"path": "{dir}/nbd.sock"}}, "tls-creds": 5}),
    err("nbd-server-start", {"addr": {"type": "inet", "data": {"host": "127.0.0.1"}}}),
    err("nbd-server-start", {"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": 10809}}}),
    ok("nbd-server-start", {"addr": {"type": "unix", "data": {"path": "{dir}/nbd.sock"}}}),
    err("nbd-server-start", {"addr": {"type": "unix", "data": {"path": "{dir}/nbd3.sock"}}},
        desc="NBD server already running"),
    ok("block-export-add", {"type": "nbd", "id": "e0", "node-name": "disk0", "name": "disk0", "writable": True}),
    err("block-export-add", {"type": "nbd", "id": "e0", "node-name": "disk0", "name": "other"}),  # duplicate id
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "name": "disk0"}),  # duplicate name
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "nosuch"}),
    err("block-export-add", {"type": "nbd", "id": "e1"}),
    err("block-export-add", {"type": "nbd", "node-name": "disk0"}),
    err("block-export-add", {"id": "e1", "node-name": "disk0"}),
    err("block-export-add", {"type": "bogus", "id": "e1", "node-name": "disk0"}),
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "bogus": 1}),
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "writable": "yes"}),
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "bitmap": "b"}),
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "name": "x" * 4097}),
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "description": "d" * 4097}),
    err("block-export-add", {"type": "nbd", "id": "1bad", "node-name": "disk0"}),
    err("block-export-add", {"type": "nbd", "id": 5, "node-name": "disk0"}),
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": 5}),
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "name": 5}),
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "description": ["d"]}),
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "writethrough": "x"}),
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "name": "b", "bitmaps": ["nosuch"]}),
    err("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "iothread": "nosuch"}),
    Q("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "allocation-depth": True}),
    Q("block-export-del", {"id": "e1"}),
    err("block-export-add", {"type": "vhost-user-blk", "id": "e1", "node-name": "disk0"}),
    ok("block-export-add", {"type": "nbd", "id": "e1", "node-name": "disk0", "name": "ro", "description": "read only"}),
    ok("block-export-add", {"type": "nbd", "id": "e2", "node-name": "null0"}),  # name defaults to the node
    ok("query-block-exports"),
    Connect("c", "disk0"),
    Connect("r", "ro"),
    Connect("n", "null0"),
    Connect("x", "nosuch", expect_fail=True),
    Connect("d", "", expect_fail=True),
    Write("c", 0, 4 * KiB),
    Read("r", 0, 4 * KiB),
    Disconnect("r"),
    ok("block-export-del", {"id": "e1"}),  # no clients: event before the return
    err("block-export-del", {"id": "e1"}, desc="Export 'e1' is not found"),
    err("block-export-del", {"id": "nosuch"}),
    err("block-export-del", {"id": "e0", "mode": "bogus"}),
    err("block-export-del", {"id": 5}),
    err("block-export-del"),
    err("block-export-del", {"id": "e0", "bogus": 1}),
    err("block-export-del", {"id": "e0"}),  # safe mode with a connected client
    ok("query-block-exports"),
    ok("block-export-del", {"id": "e0", "mode": "hard"}, settle_event="BLOCK_EXPORT_DELETED"),
    ok("query-block-exports"),
    err("query-block-exports", {"bogus": 1}),
    ok("nbd-server-stop"),  # deletes the remaining export e2: event before the return
    ok("query-block-exports"),
    err("nbd-server-stop"),
    err("nbd-server-stop", {"bogus": 1}),
    ok("nbd-server-start", {"addr": {"type": "unix", "data": {"path": "{dir}/nbd.sock"}}, "max-connections": 1}),
    ok("block-export-add", {"type": "nbd", "id": "e3", "node-name": "disk0", "name": "disk0", "writable": True}),
    Connect("c2", "disk0"),
    Read("c2", 0, 4 * KiB, expect=written(1, 4 * KiB)),
    Thresholds(),
    ok("query-block-exports"),
], files=IMAGE)

scenario("legacy-nbd-server-add", disk(export_opts=",writable=on"), [
    ok("nbd-server-add", {"device": "disk0", "name": "legacy", "writable": True}),
    ok("query-block-exports"),
    Connect("c", "legacy"),
    Write("c", 0, 512),
    Disconnect("c"),
    err("nbd-server-remove", {"name": "nosuch"}),
    ok("nbd-server-remove", {"name": "legacy"}),
    ok("query-block-exports"),
])

# -- the other commands' argument checking -----------------------------------------------------

scenario("command-arguments", disk(), [
    err("qmp_capabilities"),  # already negotiated
    err("qmp_capabilities", {"enable": ["oob"]}),
    ok("query-version"),
    err("query-version", {"bogus": 1}),
    Q("query-version", raw={"execute": "query-version", "arguments": {}}, expect="ok"),
    Q("query-version", raw={"execute": "query-version", "arguments": None}, expect="error"),
    err("query-commands", {"bogus": 1}),
    err("query-named-block-nodes", {"flat": "yes"}),
    err("query-named-block-nodes", {"flat": 1}),
    err("query-named-block-nodes", {"flat": None}),
    err("query-named-block-nodes", {"bogus": True}),
    err("query-blockstats", {"query-nodes": "yes"}),
    err("query-blockstats", {"query-nodes": 0}),
    err("query-blockstats", {"bogus": True}),
    err("blockdev-del", {}),
    err("blockdev-del", {"node-name": 5}),
    err("blockdev-del", {"node-name": "disk0", "bogus": 1}),
    err("blockdev-del", {"node-name": "disk0"}),  # exported
    err("blockdev-del", {"node-name": "file0"}),  # has a parent
    err("quit", {"bogus": 1}),
    err("quit", {"now": True}),
    err("no-such-command", desc="The command no-such-command has not been found"),
    err("query-status"),  # not a QSD command
    err("", {}),
    Thresholds(),
])


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_differential(scenario: Scenario, reference_command, subject_command, subject_is_qsd) -> None:
    expected = run(scenario, reference_command, subject_is_qsd)
    actual = run(scenario, subject_command, subject_is_qsd)
    assert_same(expected, actual)


# -- scenarios ending the daemon --------------------------------------------------------------

ENDINGS = [
    Scenario("quit", disk() + ["--export", "type=nbd,id=exp1,node-name=disk0,name=second"],
             [Connect("c", "disk0"), Write("c", 0, 512), Quit()], files=IMAGE),
    Scenario("quit-no-exports", ["--blockdev", "null-co,node-name=n0"], [Quit()], files={}),
    Scenario("sigterm", disk(), [Connect("c", "disk0"), Write("c", 0, 512), Terminate()], files=IMAGE),
]


@pytest.mark.parametrize("scenario", ENDINGS, ids=str)
def test_differential_ending(scenario: Scenario, reference_command, subject_command, subject_is_qsd) -> None:
    expected = run(scenario, reference_command, subject_is_qsd)
    assert expected[-1]["result"]["exit"] == 0
    actual = run(scenario, subject_command, subject_is_qsd)
    assert_same(expected, actual)


# -- threshold under concurrent writes ----------------------------------------------------------


@pytest.mark.parametrize("node", ["disk0", "file0"])
def test_threshold_fires_once_under_concurrency(start_daemon, any_command, node: str) -> None:
    """Many writes in flight on several connections cross the threshold: exactly one event,
    whose amount matches one of the crossing writes; the threshold reads back as 0."""
    daemon = start_daemon(any_command, disk(), files=IMAGE)
    threshold = 4 * MiB
    daemon.qmp.execute("block-set-write-threshold", {"node-name": node, "write-threshold": threshold})
    handles = [connect_unix(daemon.workdir / "nbd.sock", "disk0") for _ in range(4)]
    crossing_ends = set()
    for round_index in range(8):
        for index, handle in enumerate(handles):
            offset = (round_index * 4 + index) * 256 * KiB
            handle.aio_pwrite(pattern(offset, 256 * KiB), offset)
            if offset + 256 * KiB > threshold:
                crossing_ends.add(offset + 256 * KiB)
    for handle in handles:
        while handle.aio_in_flight() > 0:
            handle.poll(-1)
    daemon.qmp.sync()
    events = daemon.qmp.take_events()
    assert [event["event"] for event in events] == [THRESHOLD_EVENT], events
    data = events[0]["data"]
    assert data["node-name"] == node and data["write-threshold"] == threshold, data
    assert data["amount-exceeded"] + threshold in crossing_ends, data
    nodes = daemon.qmp.execute("query-named-block-nodes", {"flat": True})
    assert {n["node-name"]: n["write_threshold"] for n in nodes}[node] == 0
    for handle in handles:
        handle.shutdown()
    daemon.stop()


# -- qcow2: threshold on the file node, any host layout -------------------------------------------


def file_highest_offset(daemon, node: str = "disk0") -> int:
    entries = daemon.qmp.execute("query-blockstats", {"query-nodes": True})
    entry = next(entry for entry in entries if entry.get("node-name") == node)
    return entry["parent"]["stats"]["wr_highest_offset"]


@pytest.mark.parametrize("backing", [False, True], ids=["fresh", "backing"])
def test_qcow2_file_threshold_follows_highest_offset(start_daemon, any_command, backing: bool) -> None:
    """Where the host layout is the implementation's own business (random guest offsets, L2
    tables and refcount blocks allocated on the way), a threshold on the qcow2's file node
    must fire exactly when the file's highest written offset first passes it — in the
    request that made it pass, once — with amount-exceeded = end of that (data or metadata)
    write - threshold, so threshold < threshold + amount <= wr_highest_offset afterwards."""
    daemon = start_daemon(any_command, qcow2(), start=False)
    for argv in qcow2_image("cluster_size=4096", size=64 * MiB, backing="base.qcow2" if backing else None):
        result = run_tool(argv, cwd=daemon.workdir)
        assert result.returncode == 0, result
    daemon.start()
    handle = connect_unix(daemon.workdir / "nbd.sock", "disk0")
    generator = random.Random(17 + backing)
    size = 64 * MiB

    def arm_above(highest: int) -> int:
        value = highest + generator.randint(1, 384 * KiB)
        daemon.qmp.execute("block-set-write-threshold", {"node-name": "file0", "write-threshold": value})
        return value

    highest = file_highest_offset(daemon)
    threshold = arm_above(highest)
    fired = 0
    for index in range(160):
        choice = generator.random()
        offset = generator.randrange(0, size - 256 * KiB)
        if choice < 0.6:
            length = generator.choice([generator.randint(1, 9000), 4 * KiB, generator.randint(1, 64) * 4 * KiB])
            handle.pwrite(pattern(index, length), offset)
            what = f"pwrite {offset}+{length}"
        elif choice < 0.75:
            length = generator.randint(1, 32) * 4 * KiB
            handle.zero(length, offset, nbd.CMD_FLAG_NO_HOLE if generator.random() < 0.5 else 0)
            what = f"zero {offset}+{length}"
        elif choice < 0.85:
            handle.flush()
            what = "flush"
        else:  # rewrite something already written (no growth expected)
            handle.pwrite(pattern(index, 512), generator.randrange(0, 64) * 512)
            what = "rewrite"
        daemon.qmp.sync()
        events = [event for event in daemon.qmp.take_events() if event["event"] == THRESHOLD_EVENT]
        after = file_highest_offset(daemon)
        context = f"{any_command.role} op {index} ({what}): highest {highest:#x} -> {after:#x}, threshold {threshold:#x}"
        assert after >= highest, context
        if after > threshold:
            assert len(events) == 1, f"{context}: events {events}"
            data = events[0]["data"]
            assert data["node-name"] == "file0" and data["write-threshold"] == threshold, f"{context}: {data}"
            assert 0 < data["amount-exceeded"] <= after - threshold, f"{context}: {data}"
            fired += 1
            threshold = arm_above(after)
        else:
            assert events == [], f"{context}: events {events}"
        highest = after
    assert fired >= 10, f"only {fired} threshold events: the workload does not exercise the file threshold"
    handle.shutdown()
    daemon.stop()


# -- query-commands ---------------------------------------------------------------------------

PROJECT_COMMANDS = {
    "qmp_capabilities", "query-version", "query-commands", "query-qmp-schema", "quit",
    "blockdev-add", "blockdev-del", "query-named-block-nodes", "query-blockstats",
    "block-set-write-threshold", "block_resize", "nbd-server-start", "nbd-server-stop",
    "nbd-server-add", "nbd-server-remove", "block-export-add", "block-export-del",
    "query-block-exports", "object-add",
}


def test_query_commands(start_daemon, reference_command, subject_command) -> None:
    """The command list is unordered; compare it as a set.

    Deliberate expectation (not equality): the subject lists every command the project
    implements and nothing QSD doesn't have, except its downstream `__io.highwater_` ones. QSD's other commands (jobs, bitmaps, …) are out
    of the project's scope, so the subject may leave them out.
    """
    names = {}
    for command in (reference_command, subject_command):
        daemon = start_daemon(command, [])
        reply = daemon.qmp.execute("query-commands")
        assert all(set(entry) == {"name"} for entry in reply), reply
        listed = [entry["name"] for entry in reply]
        assert len(listed) == len(set(listed)), f"{command.role} lists duplicates"
        names[command.role] = set(listed)
        daemon.stop()
    assert PROJECT_COMMANDS <= names["reference"]
    missing = PROJECT_COMMANDS - names["subject"]
    assert not missing, f"subject does not list {sorted(missing)}"
    # HighWater's own commands carry QAPI's downstream prefix; anything else must be QSD's.
    extra = {name for name in names["subject"] - names["reference"] if not name.startswith("__io.highwater_")}
    assert not extra, f"subject lists commands QSD does not have: {sorted(extra)}"
