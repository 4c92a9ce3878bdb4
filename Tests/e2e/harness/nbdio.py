"""NBD client helpers: python3-libnbd handles, qemu-io/qemu-img runs, data patterns."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import socket
import subprocess
import sys
from pathlib import Path

import nbd

TOOL_TIMEOUT = 60


def unix_uri(export: str, socket_path: str | Path) -> str:
    return f"nbd+unix:///{export}?socket={socket_path}"


def connect_unix(socket_path: str | Path, export: str, *, strict: bool = True, allocation: bool = True) -> nbd.NBD:
    """A libnbd handle on `export`. `strict=False` lets out-of-range requests reach the server."""
    handle = nbd.NBD()
    if allocation:
        handle.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    if not strict:
        handle.set_strict_mode(0)
    handle.set_export_name(export)
    handle.connect_unix(str(socket_path))
    return handle


def errno_name(error: nbd.Error) -> str:
    """libnbd's error as a symbolic errno name (EINVAL, ENOSPC, …) for comparisons."""
    if isinstance(error.errno, str):  # python3-libnbd gives the name already
        return error.errno
    return errno.errorcode.get(error.errno or 0, f"errno{error.errno}")


def pattern(seed: int, length: int) -> bytes:
    """Deterministic, non-repeating test data (so misplaced blocks are detected)."""
    return random.Random(seed).randbytes(length)


def digest(data: bytes) -> str:
    """Short description of read data: all-zero runs are visible, other data hashed."""
    if not any(data):
        return f"zero*{len(data)}"
    return f"sha256:{hashlib.sha256(data).hexdigest()[:16]}*{len(data)}"


def block_status(handle: nbd.NBD, offset: int, length: int) -> list[tuple[int, int]]:
    """base:allocation extents (length, flags) covering [offset, offset+length)."""
    extents: list[tuple[int, int]] = []
    position = offset
    end = offset + length
    while position < end:
        found: list[int] = []

        def callback(metacontext: str, _offset: int, entries: list[int], _err: list[int]) -> int:
            if metacontext == nbd.CONTEXT_BASE_ALLOCATION:
                found.extend(entries)
            return 0

        handle.block_status(end - position, position, callback)
        assert found, "server returned no base:allocation extents"
        for index in range(0, len(found), 2):
            extent_length = min(found[index], end - position)
            if extent_length <= 0:
                break
            flags = found[index + 1]
            if extents and extents[-1][1] == flags:
                extents[-1] = (extents[-1][0] + extent_length, flags)
            else:
                extents.append((extent_length, flags))
            position += extent_length
    return extents


def host_allocation_map(path: str | Path) -> list[tuple[str, int, int]]:
    """The host file's data/hole layout via SEEK_DATA/SEEK_HOLE: [(kind, start, end)]."""
    layout: list[tuple[str, int, int]] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        position = 0
        while position < size:
            try:
                data = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as error:
                if error.errno != errno.ENXIO:
                    raise
                data = size
            if data > position:
                layout.append(("hole", position, data))
            if data >= size:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            layout.append(("data", data, hole))
            position = hole
    finally:
        os.close(fd)
    return layout


# qemu-io prints throughput lines such as "4 KiB, 1 ops; 00.00 sec (95.367 MiB/sec and ...)".
_TIMING_LINE = re.compile(r"^.* ops; .* sec \(.*\)$")


def tool_environment() -> dict[str, str]:
    """PATH with this interpreter first: nbdsh runs `python3 -m nbd`, which must find libnbd."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def run_tool(argv: list[str], input: bytes | None = None, timeout: float = TOOL_TIMEOUT,
             cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=tool_environment(), cwd=cwd)


def qemu_io(uri: str, commands: list[str], *, fmt: str = "raw", extra: list[str] | None = None) -> tuple[int, str]:
    """Run qemu-io commands on an NBD URI; return (exit status, output without timings)."""
    argv = ["qemu-io", "-f", fmt, *(extra or [])]
    for command in commands:
        argv += ["-c", command]
    argv.append(uri)
    result = run_tool(argv)
    lines = (result.stdout + result.stderr).decode(errors="replace").splitlines()
    kept = [line for line in lines if not _TIMING_LINE.match(line)]
    return result.returncode, "\n".join(kept)


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
