"""NBD server robustness: bad handshakes, unknown options, oversized and out-of-range
requests, abrupt disconnects. After every test both daemons must still serve an
established bystander connection, new connections and their monitor.

Results are compared with the reference; where HighWater deliberately follows the NBD
spec instead of QEMU, the subject's expectation is written out with the reason.
"""

from __future__ import annotations

import struct

import nbd
import pytest

from harness.daemon import Daemon
from harness.nbdio import connect_unix, pattern
from harness.rawnbd import (
    CMD_BLOCK_STATUS,
    CMD_CACHE,
    CMD_DISC,
    CMD_FLUSH,
    CMD_READ,
    CMD_TRIM,
    CMD_WRITE,
    CMD_WRITE_ZEROES,
    OPT_ABORT,
    OPT_EXPORT_NAME,
    OPT_GO,
    OPT_INFO,
    OPT_LIST,
    OPT_STRUCTURED_REPLY,
    REP_ACK,
    Closed,
    RawNBD,
)

MiB = 1024 * 1024
DISK = 64 * MiB
MAX_PAYLOAD = 32 * MiB  # QEMU's NBD_MAX_BUFFER_SIZE, advertised as the maximum block size
BYSTANDER_OFFSET = 60 * MiB
BYSTANDER_DATA = pattern(99, 4096)


@pytest.fixture(scope="module")
def daemons(module_daemons, reference_command, subject_command):
    args = [
        "--blockdev", "driver=file,node-name=file0,filename={dir}/disk.img",
        "--blockdev", "driver=raw,node-name=disk0,file=file0",
        "--nbd-server", "addr.type=unix,addr.path={dir}/nbd.sock",
        "--export", "type=nbd,id=exp0,node-name=disk0,name=disk0,writable=on",
        "--export", "type=nbd,id=exp1,node-name=disk0,name=ro",
    ]
    started = {}
    bystanders = {}
    for command in (reference_command, subject_command):
        daemon = module_daemons(command, args, files={"disk.img": DISK})
        bystander = connect_unix(daemon.workdir / "nbd.sock", "disk0")
        bystander.pwrite(BYSTANDER_DATA, BYSTANDER_OFFSET)
        started[command.role] = daemon
        bystanders[command.role] = bystander
    yield started, bystanders
    for role, daemon in started.items():
        bystanders[role].shutdown()
        daemon.stop()


@pytest.fixture(autouse=True)
def still_serving(daemons):
    """After each test: the daemon lives, the bystander and new clients work, QMP answers."""
    yield
    started, bystanders = daemons
    for role, daemon in started.items():
        assert daemon.alive(), f"{role} daemon died:\n{daemon.log}"
        assert bystanders[role].pread(4096, BYSTANDER_OFFSET) == BYSTANDER_DATA, f"{role} bystander broken"
        fresh = connect_unix(daemon.workdir / "nbd.sock", "disk0")
        assert fresh.pread(4096, BYSTANDER_OFFSET) == BYSTANDER_DATA
        fresh.shutdown()
        assert len(daemon.qmp.execute("query-block-exports")) == 2


def socket_path(daemon: Daemon) -> str:
    return str(daemon.workdir / "nbd.sock")


def on_both(daemons, action) -> dict[str, object]:
    started, _ = daemons
    return {role: action(socket_path(daemon)) for role, daemon in started.items()}


def assert_same(results: dict[str, object], what: str) -> None:
    assert results["subject"] == results["reference"], (
        f"{what}\n  reference: {results['reference']!r}\n  subject:   {results['subject']!r}"
    )


# -- handshake ---------------------------------------------------------------------------------


def test_greeting_flags(daemons) -> None:
    def run(path: str):
        with RawNBD(path) as client:
            return client.read_greeting()

    results = on_both(daemons, run)
    assert results["reference"] == 3  # FIXED_NEWSTYLE | NO_ZEROES
    assert_same(results, "handshake flags")


@pytest.mark.parametrize("flags", [0x10, 0x80000000, 0xFFFFFFFF], ids=hex)
def test_unknown_client_flags_close(daemons, flags: int) -> None:
    def run(path: str):
        with RawNBD(path) as client:
            client.read_greeting()
            client.send_client_flags(flags)
            return client.closed_by_server()

    results = on_both(daemons, run)
    assert results["reference"] is True
    assert_same(results, "unknown client flags")


def test_bad_option_magic_closes(daemons) -> None:
    def run(path: str):
        with RawNBD(path) as client:
            client.handshake()
            client.send_option(OPT_LIST, magic=0x0123456789ABCDEF)
            return client.closed_by_server()

    assert_same(on_both(daemons, run), "bad option magic")


def test_oversized_option_closes(daemons) -> None:
    """An option announcing 4 GiB of data is not read; the server hangs up."""

    def run(path: str):
        with RawNBD(path) as client:
            client.handshake()
            client.send_option(OPT_LIST, length=0xFFFFFFFF)
            return client.closed_by_server()

    results = on_both(daemons, run)
    assert results["reference"] is True
    assert_same(results, "oversized option")


OPTION_CASES = {
    "unknown-99": (99, b"abc"),
    "unknown-0": (0, b""),
    "peek-export-4": (4, b""),
    "list-with-data": (OPT_LIST, b"x" * 100),
    "list-with-100k-data": (OPT_LIST, b"x" * 100_000),
    "go-name-5000": (OPT_GO, RawNBD.go_data(b"x" * 5000)),
    "go-inconsistent": (OPT_GO, b"\x00\x00\x00\x10abc"),
    "go-truncated": (OPT_GO, b"\x00\x00"),
    "go-missing-export": (OPT_GO, RawNBD.go_data(b"nosuch")),
    "go-default-export": (OPT_GO, RawNBD.go_data(b"")),
    "info-missing-export": (OPT_INFO, RawNBD.go_data(b"nosuch")),
    "info-odd-info-count": (OPT_INFO, struct.pack(">I", 5) + b"disk0" + struct.pack(">H", 3) + b"\x00\x01"),
    "starttls-without-tls": (5, b""),
    "starttls-with-data": (5, b"x"),
    "structured-with-data": (OPT_STRUCTURED_REPLY, b"x"),
    "set-meta-context-before-structured": (10, struct.pack(">I", 5) + b"disk0" + struct.pack(">I", 0)),
    "extended-headers": (11, b""),
}


@pytest.mark.parametrize("case", OPTION_CASES, ids=str)
def test_option_errors_keep_negotiating(daemons, case: str) -> None:
    """Each bad option gets an error reply (type compared) and negotiation continues."""
    option, data = OPTION_CASES[case]

    def run(path: str):
        with RawNBD(path) as client:
            client.handshake()
            replies = client.option(option, data)
            names = [reply.name for reply in replies]
            # Still negotiating: INFO on the real export, then GO, then one read.
            info = client.option(OPT_INFO, RawNBD.go_data(b"disk0"))
            go = client.go("disk0", structured=False)
            read = client.read(0, 512).error
            return {"replies": names, "info": info[-1].name, "go": go[-1].name, "read": read}

    results = on_both(daemons, run)
    assert results["reference"]["replies"][-1].startswith("ERR_"), results["reference"]
    assert_same(results, f"option {case}")


def test_second_structured_reply_option(daemons) -> None:
    def run(path: str):
        with RawNBD(path) as client:
            client.handshake()
            first = client.option(OPT_STRUCTURED_REPLY)[-1].name
            second = client.option(OPT_STRUCTURED_REPLY)[-1].name
            return [first, second]

    results = on_both(daemons, run)
    assert results["reference"] == ["ACK", "ERR_INVALID"]
    assert_same(results, "structured reply twice")


def test_list_exports(daemons) -> None:
    def run(path: str):
        with RawNBD(path) as client:
            client.handshake()
            replies = client.option(OPT_LIST)
            names = sorted(reply.data[4: 4 + struct.unpack(">I", reply.data[:4])[0]] for reply in replies[:-1])
            return {"names": names, "final": replies[-1].name}

    results = on_both(daemons, run)
    assert results["reference"] == {"names": [b"disk0", b"ro"], "final": "ACK"}
    assert_same(results, "LIST")


def test_export_name_unknown_closes(daemons) -> None:
    def run(path: str):
        with RawNBD(path) as client:
            client.handshake()
            client.send_option(OPT_EXPORT_NAME, b"nosuch")
            return client.closed_by_server()

    assert_same(on_both(daemons, run), "EXPORT_NAME for a missing export")


def test_export_name_option(daemons) -> None:
    """Old-style EXPORT_NAME: size + flags (no zero padding with NO_ZEROES), then I/O."""

    def run(path: str):
        with RawNBD(path) as client:
            client.handshake()
            client.send_option(OPT_EXPORT_NAME, b"disk0")
            size, flags = struct.unpack(">QH", client.recv_exact(10))
            return {"size": size, "flags": flags, "read": client.read(BYSTANDER_OFFSET, 4096).data == BYSTANDER_DATA}

    results = on_both(daemons, run)
    assert results["reference"]["size"] == DISK and results["reference"]["read"]
    assert_same(results, "EXPORT_NAME")


def test_abort(daemons) -> None:
    def run(path: str):
        with RawNBD(path) as client:
            client.handshake()
            client.send_option(OPT_ABORT)
            try:
                ack = client.read_option_reply().type == REP_ACK
            except Closed:
                ack = False  # the spec lets a server close without the ACK
            return {"closed": client.closed_by_server(), "ack": ack}

    results = on_both(daemons, run)
    assert results["subject"]["closed"], results
    assert_same(results, "ABORT")


# -- transmission --------------------------------------------------------------------------------


@pytest.mark.parametrize("structured", [True, False], ids=["structured", "simple"])
def test_oversized_read_is_an_error(daemons, structured: bool) -> None:
    def run(path: str):
        with RawNBD(path).open("disk0", structured) as client:
            at_limit = client.read(0, MAX_PAYLOAD)
            over = client.read(0, MAX_PAYLOAD + 1)
            after = client.read(BYSTANDER_OFFSET, 4096)
            return {
                "at limit": (at_limit.error, len(at_limit.data)),
                "over": over.error,
                "after": after.data == BYSTANDER_DATA,
            }

    results = on_both(daemons, run)
    assert results["reference"] == {"at limit": ("OK", MAX_PAYLOAD), "over": "EINVAL", "after": True}
    assert_same(results, "oversized READ")


def test_oversized_write_drops_connection(daemons) -> None:
    """A WRITE payload above the maximum can't be skipped safely: the server hangs up."""

    def run(path: str):
        with RawNBD(path).open("disk0") as client:
            client.request(CMD_WRITE, 0, MAX_PAYLOAD + MiB)
            try:
                for _ in range(MAX_PAYLOAD // MiB + 1):
                    client.send(bytes(MiB))
            except (BrokenPipeError, ConnectionResetError):
                return "dropped while sending"
            return "dropped" if client.closed_by_server() else "kept"

    results = on_both(daemons, run)
    for role, result in results.items():
        assert result.startswith("dropped"), f"{role}: {result}"


def test_out_of_range_requests(daemons, subject_is_qsd) -> None:
    requests = {
        "read across end": (CMD_READ, DISK - 512, 1024),
        "read at end, length 0": (CMD_READ, DISK, 0),
        "read past end, length 0": (CMD_READ, DISK + 512, 0),
        "read at 2^63": (CMD_READ, 2**63, 512),
        "read wrapping 2^64": (CMD_READ, 2**64 - 512, 1024),
        "trim across end": (CMD_TRIM, DISK - 512, 1024),
        "block status across end": (CMD_BLOCK_STATUS, DISK - 512, 1024),
        "cache across end": (CMD_CACHE, DISK - 512, 1024),
    }
    writes = {
        "zero across end": (DISK - 512, 1024),
        "write across end": (DISK - 512, 1024),
        "write at 2^63": (2**63, 512),
        "write wrapping 2^64": (2**64 - 512, 1024),
    }

    def run(path: str):
        with RawNBD(path).open("disk0") as client:
            out = {name: client.call(command, offset, length).error for name, (command, offset, length) in requests.items()}
            out.update({name: (client.call(CMD_WRITE_ZEROES, offset, length) if name.startswith("zero")
                               else client.write(offset, bytes(length))).error
                        for name, (offset, length) in writes.items()})
            out["still usable"] = client.read(BYSTANDER_OFFSET, 4096).data == BYSTANDER_DATA
            return out

    results = on_both(daemons, run)
    # WRITE and WRITE_ZEROES past the end: QEMU answers EINVAL, the NBD spec says ENOSPC; HighWater may give
    # either, so those entries are checked apart and the rest compared exactly.
    for role, result in results.items():
        for name in writes:
            allowed = {"EINVAL"} if role == "reference" or subject_is_qsd else {"EINVAL", "ENOSPC"}
            assert result.pop(name) in allowed, f"{role}: {name}"
    assert results["reference"]["read across end"] == "EINVAL" and results["reference"]["still usable"]
    assert_same(results, "out-of-range requests")


def test_invalid_commands(daemons) -> None:
    requests = {
        "unknown type 99": (99, 0, 0, 0),
        "resize (8) unsupported": (8, 0, 0, 0),
        "read with flag 0x20": (CMD_READ, 0, 512, 0x20),
        "read with REQ_ONE": (CMD_READ, 0, 512, 0x08),
        "zero with DF": (CMD_WRITE_ZEROES, 0, 512, 0x04),
        "flush with offset": (CMD_FLUSH, 0, 512, 0),
        "read length 0": (CMD_READ, 0, 0, 0),
        "write length 0": (CMD_WRITE, 0, 0, 0),
        "trim length 0": (CMD_TRIM, 0, 0, 0),
        "fua read": (CMD_READ, 0, 512, 0x01),
        "unaligned write": (CMD_WRITE, 1, 3, 0),
    }

    def run(path: str):
        with RawNBD(path).open("disk0") as client:
            out = {}
            for name, (command, offset, length, flags) in requests.items():
                payload = bytes(length) if command == CMD_WRITE else b""
                out[name] = client.call(command, offset, length, flags, payload).error
            out["still usable"] = client.read(BYSTANDER_OFFSET, 4096).data == BYSTANDER_DATA
            return out

    results = on_both(daemons, run)
    assert results["reference"]["unknown type 99"] == "EINVAL"
    assert_same(results, "invalid commands")


def test_block_status_without_structured_replies(daemons) -> None:
    def run(path: str):
        with RawNBD(path).open("disk0", structured=False) as client:
            return [client.call(CMD_BLOCK_STATUS, 0, 512).error, client.read(0, 512).error]

    results = on_both(daemons, run)
    assert results["reference"] == ["EINVAL", "OK"]
    assert_same(results, "BLOCK_STATUS without structured replies")


def test_read_only_export(daemons, subject_is_qsd) -> None:
    def run(path: str):
        with RawNBD(path).open("ro") as client:
            return {
                "write": client.write(0, b"x").error,
                "trim": client.call(CMD_TRIM, 0, 512).error,
                "zero": client.call(CMD_WRITE_ZEROES, 0, 512).error,
                "flush": client.call(CMD_FLUSH).error,
                "read": client.read(BYSTANDER_OFFSET, 4096).data == BYSTANDER_DATA,
            }

    results = on_both(daemons, run)
    assert results["reference"] == {"write": "EINVAL", "trim": "EINVAL", "zero": "EINVAL", "flush": "OK", "read": True}
    if subject_is_qsd:
        assert_same(results, "read-only export")
    else:
        # The NBD spec requires EPERM for modifications of a read-only export; QEMU says
        # EINVAL ("Export is read-only"). HighWater follows the spec.
        assert results["subject"] == {"write": "EPERM", "trim": "EPERM", "zero": "EPERM", "flush": "OK", "read": True}


@pytest.mark.parametrize("structured", [True, False], ids=["structured", "simple"])
def test_bad_request_magic_closes(daemons, structured: bool) -> None:
    def run(path: str):
        with RawNBD(path).open("disk0", structured) as client:
            client.request(CMD_READ, 0, 512, magic=0x12345678)
            return client.closed_by_server()

    results = on_both(daemons, run)
    assert results["reference"] is True
    assert_same(results, "bad request magic")


def test_disconnect_command(daemons) -> None:
    def run(path: str):
        with RawNBD(path).open("disk0") as client:
            client.request(CMD_DISC)
            return client.closed_by_server()

    results = on_both(daemons, run)
    assert results["reference"] is True
    assert_same(results, "NBD_CMD_DISC")


def test_pipelined_requests(daemons) -> None:
    """64 requests sent before reading any reply; every reply arrives, data is right."""

    def run(path: str):
        with RawNBD(path).open("disk0", structured=False) as client:
            base = 8 * MiB
            expected = {}
            lengths = {}
            for index in range(32):
                data = pattern(index, 4096)
                lengths[client.request(CMD_WRITE, base + index * 4096, 4096, payload=data)] = 0
                expected[index] = data
            for index in range(32):
                lengths[client.request(CMD_READ, base + index * 4096, 4096)] = 4096
            replies = {}
            while len(replies) < len(lengths):
                cookie, reply = client.any_reply(lengths)
                assert cookie not in replies, f"two replies for {cookie}"
                replies[cookie] = reply
            assert all(reply.error == "OK" for reply in replies.values())
            reads = [replies[cookie].data for cookie in sorted(replies)[32:]]
            # A read may overtake its write (no ordering between them), so re-read to check.
            return all(client.read(base + i * 4096, 4096).data == expected[i] for i in range(32)) and len(reads) == 32

    results = on_both(daemons, run)
    assert results == {"reference": True, "subject": True}


def test_abrupt_disconnects(daemons) -> None:
    """Clients vanish in every phase; the daemon carries on (checked by `still_serving`)."""

    def run(path: str):
        # mid-greeting
        RawNBD(path).close()
        # mid-option: header promises 50 bytes, 10 arrive
        client = RawNBD(path)
        client.handshake()
        client.send_option(OPT_GO, length=50)
        client.send(bytes(10))
        client.close()
        # mid-WRITE payload
        client = RawNBD(path).open("disk0")
        client.request(CMD_WRITE, 0, 65536)
        client.send(bytes(1000))
        client.close()
        # a large READ whose reply is never read
        client = RawNBD(path).open("disk0")
        for _ in range(8):
            client.request(CMD_READ, 0, 4 * MiB)
        client.close()
        # half a request header
        client = RawNBD(path).open("disk0")
        client.send(b"\x25\x60\x95\x13\x00\x00")
        client.close()
        # many writes in flight, then gone
        client = RawNBD(path).open("disk0", structured=False)
        for index in range(16):
            client.request(CMD_WRITE, 16 * MiB + index * 65536, 65536, payload=bytes(65536))
        client.close()
        return True

    assert on_both(daemons, run) == {"reference": True, "subject": True}


def test_many_connections(daemons) -> None:
    """32 simultaneous clients, each writing and reading its own block."""

    def run(path: str):
        handles = []
        for index in range(32):
            handle = nbd.NBD()
            handle.set_export_name("disk0")
            handle.connect_unix(path)
            handle.pwrite(pattern(1000 + index, 4096), 32 * MiB + index * 4096)
            handles.append(handle)
        ok = all(handle.pread(4096, 32 * MiB + i * 4096) == pattern(1000 + i, 4096) for i, handle in enumerate(handles))
        # half leave politely, half just vanish
        for handle in handles[::2]:
            handle.shutdown()
        handles.clear()
        return ok

    assert on_both(daemons, run) == {"reference": True, "subject": True}
