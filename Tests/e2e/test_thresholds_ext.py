"""HighWater's named write thresholds and `highwater watch`, against the real daemon.

Named thresholds (`__io.highwater_set-write-threshold`, `…clear-…`, `…query-write-thresholds`,
event `__io.highwater_WRITE_THRESHOLD`) are driven over QMP with writes through libnbd, beside
the classic `block-set-write-threshold`, which must behave as if they were not there.
`highwater watch --json` follows the daemon on a monitor of its own and must print the events
and the nodes' use; it reconnects when the daemon comes back and stops on Ctrl-C.

These are HighWater extensions: with qemu-storage-daemon standing in as the subject (suite
validation), the tests are expected to fail.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import nbd
import pytest

from harness.daemon import Daemon, make_workdir, wait_for_unix_socket
from harness.nbdio import connect_unix, pattern

KiB = 1024
MiB = 1024 * KiB
DISK = 64 * MiB
EVENT = "__io.highwater_WRITE_THRESHOLD"
CLASSIC = "BLOCK_WRITE_THRESHOLD"


def daemon_args() -> list[str]:
    """file0 <- disk0 (raw), exported writable as disk0; a second monitor for `watch`."""
    return [
        "--blockdev", "driver=file,node-name=file0,filename={dir}/disk.img",
        "--blockdev", "driver=raw,node-name=disk0,file=file0",
        "--nbd-server", "addr.type=unix,addr.path={dir}/nbd.sock",
        "--export", "type=nbd,id=exp0,node-name=disk0,name=disk0,writable=on",
        # A monitor serves one client at a time: the watcher gets its own.
        "--chardev", "socket,id=watch0,path={dir}/watch.sock,server=on,wait=off",
        "--monitor", "chardev=watch0",
    ]


class Watch:
    """`highwater watch --json` in the background, its lines parsed as they come."""

    def __init__(self, binary: str, socket_path: Path, *extra: str) -> None:
        self.process = subprocess.Popen([binary, "watch", "--json", *extra, str(socket_path)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def wait_for(self, predicate, what: str, timeout: float = 15.0) -> dict:
        """The next record (after those already matched) for which `predicate` holds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"watch printed no {what}; it printed {self.seen}")
            try:
                record = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(record)
            if predicate(record):
                return record

    def interrupt(self) -> int:
        """Ctrl-C: watch must exit cleanly."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=15)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def is_event(name: str, **data) -> callable:
    return lambda r: r["type"] == "event" and r["event"] == name and all(r["data"].get(k) == v for k, v in data.items())


def write(handle: nbd.NBD, offset: int, length: int) -> None:
    handle.pwrite(pattern(offset, length), offset)


@pytest.fixture
def highwater(subject_command, subject_is_qsd) -> str:
    if subject_is_qsd:
        pytest.xfail("named thresholds and watch are HighWater's own")  # only when validating the suite with QSD
    return subject_command.argv[0]


def test_named_thresholds_and_watch(start_daemon, subject_command, highwater: str) -> None:
    daemon = start_daemon(subject_command, daemon_args(), files={"disk.img": DISK})
    qmp = daemon.qmp
    # Events make the watcher refresh at once; clearing a threshold is no event, and is seen
    # by the slow periodic refresh.
    watch = Watch(highwater, daemon.workdir / "watch.sock", "--interval", "1")
    try:
        watch.wait_for(lambda r: r["type"] == "connected", "connected record")
        watch.wait_for(lambda r: r["type"] == "use" and r["node-name"] == "disk0", "use of disk0")

        qmp.execute("block-set-write-threshold", {"node-name": "disk0", "write-threshold": 2 * MiB})
        qmp.execute("__io.highwater_set-write-threshold", {"node-name": "disk0", "name": "warn", "bytes": MiB})
        qmp.execute("__io.highwater_set-write-threshold",
                    {"node-name": "disk0", "name": "grow", "percent": 50, "mode": "re-arm"})
        [entry] = qmp.execute("__io.highwater_query-write-thresholds", {"node-name": "disk0"})
        assert entry == {
            "node-name": "disk0", "size": DISK, "highest-offset": 0, "write-threshold": 2 * MiB,
            "thresholds": [
                {"name": "warn", "write-threshold": MiB, "mode": "one-shot", "fire-if-past": False, "armed": True, "fired": 0},
                {"name": "grow", "write-threshold": DISK // 2, "percent": 50, "mode": "re-arm", "fire-if-past": False,
                 "armed": True, "fired": 0},
            ],
        }

        handle = connect_unix(daemon.workdir / "nbd.sock", "disk0")
        # Past 'warn' only.
        write(handle, MiB + 512 * KiB, 64 * KiB)
        qmp.sync()
        events = qmp.take_events()
        assert [e["event"] for e in events] == [EVENT], events
        assert events[0]["data"] == {
            "node-name": "disk0", "name": "warn", "write-threshold": MiB, "amount-exceeded": 576 * KiB,
            "mode": "one-shot", "cause": "write", "node-size": DISK, "highest-offset": MiB + 576 * KiB,
        }
        # Past the classic threshold and 'grow'; 'warn' is spent.
        write(handle, 40 * MiB, MiB)
        qmp.sync()
        events = qmp.take_events()
        assert [e["event"] for e in events] == [CLASSIC, EVENT], events
        assert events[0]["data"] == {"node-name": "disk0", "amount-exceeded": 39 * MiB, "write-threshold": 2 * MiB}
        assert events[1]["data"]["name"] == "grow" and events[1]["data"]["amount-exceeded"] == 9 * MiB
        assert events[1]["data"]["percent"] == 50
        write(handle, 50 * MiB, MiB)
        qmp.sync()
        assert qmp.take_events() == []
        # QEMU's view is untouched: the classic threshold fired and reads 0.
        nodes = {n["node-name"]: n for n in qmp.execute("query-named-block-nodes", {"flat": True})}
        assert nodes["disk0"]["write_threshold"] == 0

        # The volume grows underneath (as a manager would extend it): 'grow' re-arms at 50 % of it.
        with open(daemon.workdir / "disk.img", "r+b") as image:
            image.truncate(2 * DISK)
        [entry] = qmp.execute("__io.highwater_query-write-thresholds", {"node-name": "disk0"})
        assert entry["size"] == 2 * DISK and entry["highest-offset"] == 51 * MiB
        assert [(t["name"], t["write-threshold"], t["armed"], t["fired"]) for t in entry["thresholds"]] == [
            ("warn", MiB, False, 1), ("grow", DISK, True, 1)]
        # NBD clients learn the size when they connect.
        handle.shutdown()
        handle = connect_unix(daemon.workdir / "nbd.sock", "disk0")
        assert handle.get_size() == 2 * DISK
        write(handle, DISK, 4 * KiB)
        qmp.sync()
        events = qmp.take_events()
        assert [(e["event"], e["data"]["name"], e["data"]["amount-exceeded"], e["data"]["node-size"]) for e in events] == [
            (EVENT, "grow", 4 * KiB, 2 * DISK)]

        # fire-if-past fires before the reply when set below what was written.
        reply = qmp.command("__io.highwater_set-write-threshold",
                            {"node-name": "disk0", "name": "late", "bytes": MiB, "fire-if-past": True})
        assert reply.get("return") == {}, reply
        [late] = qmp.take_events()
        assert late["data"]["name"] == "late" and late["data"]["cause"] == "set"
        assert late["data"]["amount-exceeded"] == DISK + 4 * KiB - MiB

        # Many writes in flight across a fresh threshold: exactly one event.
        qmp.execute("__io.highwater_set-write-threshold", {"node-name": "disk0", "name": "burst", "bytes": 100 * MiB})
        for index in range(32):
            offset = 100 * MiB - 8 * 64 * KiB + index * 64 * KiB
            handle.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(pattern(offset, 64 * KiB))), offset)
        while handle.aio_in_flight() > 0:
            handle.poll(-1)
        qmp.sync()
        burst = [e for e in qmp.take_events() if e["event"] == EVENT]
        assert [e["data"]["name"] for e in burst] == ["burst"], burst

        # Clearing removes a named threshold and nothing else.
        qmp.execute("__io.highwater_clear-write-threshold", {"node-name": "disk0", "name": "warn"})
        error = qmp.command("__io.highwater_clear-write-threshold", {"node-name": "disk0", "name": "warn"})
        assert error["error"]["desc"] == "Node 'disk0' has no write threshold named 'warn'"
        [entry] = qmp.execute("__io.highwater_query-write-thresholds", {"node-name": "disk0"})
        assert [t["name"] for t in entry["thresholds"]] == ["grow", "late", "burst"]

        # The watcher printed every event, and the use as it is now.
        watch.wait_for(is_event(CLASSIC, **{"node-name": "disk0", "write-threshold": 2 * MiB}), "classic event")
        seen_names = {r["data"]["name"] for r in watch.seen if r["type"] == "event" and r["event"] == EVENT}
        while not {"warn", "grow", "late", "burst"} <= seen_names:
            record = watch.wait_for(is_event(EVENT), "named events")
            seen_names.add(record["data"]["name"])
        use = watch.wait_for(lambda r: r["type"] == "use" and r["node-name"] == "disk0"
                             and [t["name"] for t in r.get("thresholds", [])] == ["grow", "late", "burst"],
                             "use after clearing 'warn'", timeout=20)
        assert use["size"] == 2 * DISK and use["highest-offset"] == 100 * MiB + 24 * 64 * KiB
        assert use["write-threshold"] == 0
        handle.shutdown()
        assert watch.interrupt() == 0
        daemon.stop()
    finally:
        watch.kill()


def test_watch_reconnects_when_the_daemon_comes_back(subject_command, highwater: str) -> None:
    workdir = make_workdir("wat")
    with open(workdir / "disk.img", "wb") as image:
        image.truncate(DISK)
    watch = Watch(highwater, workdir / "watch.sock")
    daemons: list[Daemon] = []
    try:
        first = watch.wait_for(lambda r: r["type"] == "disconnected", "unreachable daemon")
        assert first["reason"].startswith("cannot connect") and first["retry-ms"] > 0
        for generation in range(2):
            daemon = Daemon(command=subject_command, args=daemon_args(), workdir=workdir)
            daemons.append(daemon)
            daemon.start()
            wait_for_unix_socket(workdir / "watch.sock", daemon.process)
            watch.wait_for(lambda r: r["type"] == "connected", f"connection {generation}")
            watch.wait_for(lambda r: r["type"] == "use" and r["node-name"] == "file0", f"use {generation}")
            daemon.stop()
            watch.wait_for(lambda r: r["type"] == "disconnected", f"disconnection {generation}")
        assert watch.interrupt() == 0
    finally:
        watch.kill()
        for daemon in daemons:
            daemon.cleanup()
