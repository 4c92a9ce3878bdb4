"""Interoperability with the real clients: qemu-io, qemu-img, nbdinfo, nbdcopy, fio, libnbd,
the `qemu.qmp` library, TCP exports and TCP monitors.

Every test runs on both implementations (they are cheap); where the tools print something
deterministic, the subject's output is also compared with the reference's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import nbd
import pytest
from qemu.qmp import QMPClient as LibraryQMPClient

from harness.daemon import Daemon, DaemonCommand
from harness.nbdio import connect_unix, free_tcp_port, pattern, qemu_io, run_tool, unix_uri
from harness.qmp import QMPClient

MiB = 1024 * 1024
DISK = 32 * MiB


def disk_args(writable: bool = True) -> list[str]:
    return [
        "--blockdev", "driver=file,node-name=file0,filename={dir}/disk.img,discard=unmap",
        "--blockdev", "driver=raw,node-name=disk0,file=file0,discard=unmap",
        "--nbd-server", "addr.type=unix,addr.path={dir}/nbd.sock",
        "--export", f"type=nbd,id=exp0,node-name=disk0,name=disk0,writable={'on' if writable else 'off'},description=test disk",
        "--export", "type=nbd,id=exp1,node-name=disk0,name=readonly",
    ]


@pytest.fixture
def disk(start_daemon, any_command: DaemonCommand) -> Daemon:
    return start_daemon(any_command, disk_args(), files={"disk.img": DISK})


def uri(daemon: Daemon, export: str = "disk0") -> str:
    return unix_uri(export, daemon.workdir / "nbd.sock")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_source(path: Path, size: int) -> bytes:
    """A local image with data, a zero run and a hole, so copies exercise every path."""
    data = bytearray(pattern(42, size))
    data[size // 4: size // 2] = bytes(size // 4)
    with open(path, "wb") as image:
        image.write(data[: size // 2])
        image.truncate(size)  # the second half is a hole
    return bytes(data[: size // 2]) + bytes(size - size // 2)


def check(result, what: str) -> str:
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{output}"
    return output


# -- qemu-io / qemu-img ----------------------------------------------------------------------


def test_qemu_io_write_read_verify(disk: Daemon) -> None:
    status, output = qemu_io(uri(disk), [
        "write -P 0x5a 0 1M", "write -P 0xa5 1M 3M", "write -z 4M 1M", "discard 5M 1M", "flush",
        "read -P 0x5a 0 1M", "read -P 0xa5 1M 3M", "read -P 0 4M 2M",
        "writev -P 0x11 8M 4k 8k", "readv -P 0x11 8M 4k 8k",
        "aio_write -P 0x22 10M 64k", "aio_flush", "read -P 0x22 10M 64k",
    ])
    assert status == 0, output
    assert "failed" not in output.lower(), output


def test_qemu_io_read_only_export(disk: Daemon) -> None:
    status, output = qemu_io(uri(disk, "readonly"), ["read 0 4k"], extra=["-r"])
    assert status == 0, output
    status, output = qemu_io(uri(disk, "readonly"), ["write 0 4k"])
    assert status != 0 or "failed" in output, output


def test_qemu_img_convert_compare_info(disk: Daemon) -> None:
    source = disk.workdir / "source.img"
    make_source(source, DISK)
    check(run_tool(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(source), uri(disk)]), "qemu-img convert")
    check(run_tool(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(source), uri(disk)]), "qemu-img compare")
    info = json.loads(check(run_tool(["qemu-img", "info", "--output=json", "-f", "raw", uri(disk)]), "qemu-img info"))
    assert info["virtual-size"] == DISK and info["format"] == "raw", info
    # The reverse direction, into a fresh local file.
    copy = disk.workdir / "copy.img"
    check(run_tool(["qemu-img", "convert", "-f", "raw", "-O", "raw", uri(disk), str(copy)]), "qemu-img convert back")
    assert sha(copy.read_bytes()) == sha(source.read_bytes())
    # What the daemon wrote is what is on its disk.
    assert sha((disk.workdir / "disk.img").read_bytes()) == sha(source.read_bytes())


def test_qemu_img_map(start_daemon, reference_command, subject_command) -> None:
    """qemu-img map over NBD (base:allocation) matches between the implementations."""
    maps = {}
    for command in (reference_command, subject_command):
        daemon = start_daemon(command, disk_args(), files={"disk.img": DISK})
        status, output = qemu_io(uri(daemon), ["write -P 1 1M 1M", "write -P 2 8M 64k", "write -z 9M 1M", "discard 1M 512k"])
        assert status == 0, output
        result = run_tool(["qemu-img", "map", "--output=json", "-f", "raw", uri(daemon)])
        maps[command.role] = json.loads(check(result, "qemu-img map"))
        daemon.stop()
    assert maps["subject"] == maps["reference"]


# -- libnbd tools ----------------------------------------------------------------------------


def nbdinfo_json(daemon: Daemon, *options: str, export: str = "disk0") -> object:
    result = run_tool(["nbdinfo", "--json", *options, uri(daemon, export)])
    text = check(result, f"nbdinfo {options}").replace(str(daemon.workdir), "$DIR")
    return json.loads(text)


def test_nbdinfo_list_and_map(start_daemon, reference_command, subject_command) -> None:
    outputs = {}
    for command in (reference_command, subject_command):
        daemon = start_daemon(command, disk_args(), files={"disk.img": DISK})
        status, output = qemu_io(uri(daemon), ["write -P 7 0 1M", "write -P 8 4M 4k", "write -z 6M 1M"])
        assert status == 0, output
        listed = nbdinfo_json(daemon, "--list")
        names = sorted(export["export-name"] for export in listed["exports"])
        assert names == ["disk0", "readonly"], listed
        outputs[command.role] = {
            "list": listed,
            "info": nbdinfo_json(daemon),
            "map": nbdinfo_json(daemon, "--map"),
            "totals": nbdinfo_json(daemon, "--map", "--totals"),
            "size": check(run_tool(["nbdinfo", "--size", uri(daemon)]), "nbdinfo --size").strip(),
        }
        daemon.stop()
    assert outputs["reference"]["size"] == str(DISK)
    for key in outputs["reference"]:
        assert outputs["subject"][key] == outputs["reference"][key], f"nbdinfo {key} differs"


@pytest.mark.parametrize("connections", [1, 4])
def test_nbdcopy_roundtrip(disk: Daemon, connections: int) -> None:
    source = disk.workdir / "source.img"
    expected = make_source(source, DISK)
    check(run_tool(["nbdcopy", "--flush", f"--connections={connections}", str(source), uri(disk)]), "nbdcopy to export")
    back = disk.workdir / "back.img"
    check(run_tool(["nbdcopy", f"--connections={connections}", uri(disk), str(back)]), "nbdcopy from export")
    assert sha(back.read_bytes()) == sha(expected)
    assert sha((disk.workdir / "disk.img").read_bytes()) == sha(expected)
    # Export to export through the same daemon (source read-only export).
    check(run_tool(["nbdcopy", uri(disk, "readonly"), "null:"]), "nbdcopy to null:")


def test_nbdsh_script(disk: Daemon) -> None:
    script = (
        "h.pwrite(b'hello world', 4096)\n"
        "assert h.pread(11, 4096) == b'hello world'\n"
        "h.zero(4096, 8192, nbd.CMD_FLAG_NO_HOLE)\n"
        "h.flush()\n"
        "print(h.get_size())\n"
    )
    result = run_tool(["nbdsh", "-u", uri(disk), "-c", script])
    assert check(result, "nbdsh").strip() == str(DISK)


def test_fio_verify(disk: Daemon) -> None:
    result = run_tool([
        "fio", "--name=verify", "--ioengine=nbd", f"--uri={uri(disk)}", "--rw=randwrite", "--bs=4k",
        "--size=8M", "--iodepth=16", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1",
        "--verify_state_save=0", "--output-format=json",
    ], timeout=120, cwd=disk.workdir)
    output = check(result, "fio")
    report = json.loads(output[output.index("{"):])
    job = report["jobs"][0]
    assert job["error"] == 0, job
    assert job["write"]["io_bytes"] == 8 * MiB and job["read"]["io_bytes"] == 8 * MiB, job


def test_fio_mixed_queue_depth(disk: Daemon) -> None:
    result = run_tool([
        "fio", "--name=mixed", "--ioengine=nbd", f"--uri={uri(disk)}", "--rw=randrw", "--bs=4k-64k",
        "--size=16M", "--iodepth=32", "--time_based", "--runtime=2", "--output-format=json",
    ], timeout=120, cwd=disk.workdir)
    output = check(result, "fio")
    job = json.loads(output[output.index("{"):])["jobs"][0]
    assert job["error"] == 0 and job["write"]["total_ios"] > 0 and job["read"]["total_ios"] > 0, job


# -- the qemu.qmp library -----------------------------------------------------------------------


def test_qemu_qmp_library(disk: Daemon) -> None:
    """The standard Python QMP client negotiates, runs commands and receives an event."""

    async def session() -> dict:
        disk.qmp.close()  # the monitor serves one client at a time
        client = LibraryQMPClient("e2e")
        await client.connect(str(disk.qmp_path))
        try:
            version = await client.execute("query-version")
            nodes = await client.execute("query-named-block-nodes", {"flat": True})
            await client.execute("block-set-write-threshold", {"node-name": "disk0", "write-threshold": 4096})
            with client.listener("BLOCK_WRITE_THRESHOLD") as listener:
                handle = connect_unix(disk.workdir / "nbd.sock", "disk0")
                await asyncio.get_running_loop().run_in_executor(None, handle.pwrite, b"x" * 8192, 0)
                event = await asyncio.wait_for(listener.get(), 10)
            exports = await client.execute("query-block-exports")
            return {"version": version, "nodes": nodes, "event": event, "exports": exports}
        finally:
            await client.disconnect()

    result = asyncio.run(session())
    assert set(result["version"]) == {"qemu", "package"}
    assert {node["node-name"] for node in result["nodes"]} == {"disk0", "file0"}
    assert result["event"]["data"] == {"node-name": "disk0", "write-threshold": 4096, "amount-exceeded": 4096}
    assert {export["id"] for export in result["exports"]} == {"exp0", "exp1"}


# -- TCP ------------------------------------------------------------------------------------------


def test_tcp_export_and_tcp_monitor(start_daemon, any_command: DaemonCommand) -> None:
    nbd_port, qmp_port = free_tcp_port(), free_tcp_port()
    daemon = start_daemon(any_command, [
        "--chardev", f"socket,id=tcpmon,host=127.0.0.1,port={qmp_port},server=on,wait=off",
        "--monitor", "chardev=tcpmon",
        "--blockdev", "driver=file,node-name=file0,filename={dir}/disk.img",
        "--blockdev", "driver=raw,node-name=disk0,file=file0",
        "--nbd-server", f"addr.type=inet,addr.host=127.0.0.1,addr.port={nbd_port}",
        "--export", "type=nbd,id=exp0,node-name=disk0,name=disk0,writable=on",
    ], files={"disk.img": DISK})

    monitor = QMPClient.connect_tcp("127.0.0.1", qmp_port)
    try:
        monitor.negotiate()
        assert monitor.execute("query-block-exports") == [
            {"node-name": "disk0", "shutting-down": False, "type": "nbd", "id": "exp0"}
        ]
        monitor.execute("block-set-write-threshold", {"node-name": "file0", "write-threshold": 1 * MiB})

        handle = nbd.NBD()
        handle.set_export_name("disk0")
        handle.connect_tcp("127.0.0.1", str(nbd_port))
        data = pattern(3, 256 * 1024)
        handle.pwrite(data, 1 * MiB - 4096)
        assert handle.pread(len(data), 1 * MiB - 4096) == data
        handle.flush()
        handle.shutdown()

        event = monitor.wait_event("BLOCK_WRITE_THRESHOLD")
        assert event["data"] == {"node-name": "file0", "write-threshold": 1 * MiB, "amount-exceeded": 256 * 1024 - 4096}
        # The UNIX monitor saw the same event.
        assert daemon.qmp.wait_event("BLOCK_WRITE_THRESHOLD")["data"] == event["data"]

        status, output = qemu_io(f"nbd://127.0.0.1:{nbd_port}/disk0", [f"read -P 0 0 {1 * MiB - 4096}"])
        assert status == 0, output
        # Start a second server over QMP on another TCP port? Only one NBD server per process.
        again = monitor.command("nbd-server-start", {"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": str(free_tcp_port())}}})
        assert again["error"]["desc"] == "NBD server already running", again
    finally:
        monitor.close()
    daemon.stop()


def test_qmp_started_tcp_server(start_daemon, any_command: DaemonCommand) -> None:
    """nbd-server-start with the legacy inet address form, then an export over QMP."""
    daemon = start_daemon(any_command, ["--blockdev", "driver=null-co,node-name=null0,size=1048576,read-zeroes=on"])
    port = free_tcp_port()
    daemon.qmp.execute("nbd-server-start", {"addr": {"type": "inet", "data": {"host": "127.0.0.1", "port": str(port)}}})
    daemon.qmp.execute("block-export-add", {"type": "nbd", "id": "e", "node-name": "null0", "name": "null"})
    result = run_tool(["nbdinfo", "--size", f"nbd://127.0.0.1:{port}/null"])
    assert check(result, "nbdinfo").strip() == str(1024 * 1024)
    daemon.qmp.execute("nbd-server-stop")
    assert daemon.qmp.wait_event("BLOCK_EXPORT_DELETED")["data"] == {"id": "e"}
    daemon.stop()
