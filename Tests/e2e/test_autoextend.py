"""`highwater autoextend` end to end: the real daemon, a thin qcow2 on a small file volume
(`__io.highwater_volume=on`) exported with `__io.highwater_on-enospc=hold`, and the
controller growing the volume by chunks while nbdcopy writes at full speed.

HighWater-only (qemu-storage-daemon has neither file volumes nor the controller): the
daemon and the controller are the `highwater` binary of the subject command line, or the
built one when the subject is another program.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import statistics
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import nbd
import pytest

from conftest import default_subject
from harness.daemon import Daemon, DaemonCommand, make_workdir

MiB = 1 << 20
CHUNK = 64 * MiB
INITIAL_VOLUME = 64 * MiB
VIRTUAL_SIZE = 2 << 30


@pytest.fixture(scope="module")
def highwater(subject_command: DaemonCommand) -> str:
    """Path of the `highwater` binary."""
    if os.path.basename(subject_command.argv[0]) == "highwater":
        return subject_command.argv[0]
    return default_subject().split()[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Controller:
    """One `highwater autoextend` process, its log in the work directory."""

    def __init__(self, binary: str, workdir: Path, args: list[str], name: str = "autoextend") -> None:
        self.log_path = workdir / f"{name}.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [binary, "autoextend", *args], stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=workdir
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.log)) >= count:
                return
            assert self.process.poll() is None, f"controller exited with {self.process.returncode}:\n{self.log}"
            time.sleep(0.01)
        raise AssertionError(f"no {count} x {pattern!r} in the controller log within {timeout}s:\n{self.log}")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)


@pytest.fixture
def controllers():
    started: list[Controller] = []
    yield started
    for controller in started:
        controller.kill()


class Volume:
    """A work directory with a 2 GiB qcow2 on a 64 MiB file volume, and its daemon."""

    def __init__(self, highwater: str, on_enospc: str = "hold", enospc_timeout: int | None = None, loop: bool = False) -> None:
        self.workdir = make_workdir("ae")
        self.image = self.workdir / "vol.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.image), str(VIRTUAL_SIZE)], check=True)
        os.truncate(self.image, INITIAL_VOLUME)
        # With `loop`, the volume is a loop device over the file (a stand-in for an LV).
        self.device = None
        if loop:
            self.device = subprocess.run(
                ["losetup", "--find", "--show", str(self.image)], check=True, capture_output=True, text=True
            ).stdout.strip()
        protocol = f"host_device,filename={self.device}" if loop else f"file,filename={self.image},__io.highwater_volume=on"
        export = f"type=nbd,id=exp0,node-name=disk0,name=disk0,writable=on,__io.highwater_on-enospc={on_enospc}"
        if enospc_timeout is not None:
            export += f",__io.highwater_enospc-timeout={enospc_timeout}"
        self.args = [
            "--blockdev", f"driver={protocol},node-name=vol0",
            "--blockdev", "driver=qcow2,node-name=disk0,file=vol0",
            "--nbd-server", f"addr.type=unix,addr.path={self.workdir}/nbd.sock",
            "--export", export,
            # The controller's own monitor: a chardev serves one client at a time.
            "--chardev", f"socket,id=ae0,path={self.workdir}/autoextend.sock,server=on,wait=off",
            "--monitor", "chardev=ae0",
        ]  # fmt: skip
        self.command = DaemonCommand(role="subject", argv=(highwater, "daemon"))
        self.daemons: list[Daemon] = []
        self.uri = f"nbd+unix:///disk0?socket={self.workdir}/nbd.sock"

    def start_daemon(self) -> Daemon:
        daemon = Daemon(command=self.command, args=self.args, workdir=self.workdir)
        self.daemons.append(daemon)
        return daemon.start()

    @property
    def qmp(self) -> str:
        return str(self.workdir / "autoextend.sock")

    @property
    def size(self) -> int:
        return self.image.stat().st_size

    def cleanup(self) -> None:
        for daemon in self.daemons:
            for client in daemon._clients:
                client.close()
            if daemon.alive():
                daemon.process.kill()
                daemon.process.wait()
        if self.device:
            subprocess.run(["losetup", "--detach", self.device], check=False)
        subprocess.run(["rm", "-rf", str(self.workdir)], check=False)


@pytest.fixture
def volumes(highwater: str):
    made: list[Volume] = []

    def make(**options) -> Volume:
        volume = Volume(highwater, **options)
        made.append(volume)
        return volume

    yield make
    for volume in made:
        volume.cleanup()


def write_random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as output:
        for _ in range(size // MiB):
            block = os.urandom(MiB)
            digest.update(block)
            output.write(block)
    return digest.hexdigest()


def sha256_of_export(uri: str, size: int) -> str:
    """The digest of the export's first `size` bytes, read with libnbd."""
    handle = nbd.NBD()
    handle.connect_uri(uri)
    digest = hashlib.sha256()
    for offset in range(0, size, 4 * MiB):
        digest.update(handle.pread(min(4 * MiB, size - offset), offset))
    handle.shutdown()
    return digest.hexdigest()


def latencies_ms(log: str) -> list[float]:
    return [float(value) for value in re.findall(r"latency-ms=([0-9.]+)", log)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def volume_args(volume: Volume, *extra: str) -> list[str]:
    return ["--qmp", volume.qmp, "--node-name", "vol0", "--backend", "file", "--chunk", "64M", "--utilization", "50", *extra]


def test_full_speed_writes_never_see_enospc_even_when_the_controller_is_killed(highwater, volumes, controllers):
    volume = volumes()
    daemon = volume.start_daemon()
    port = free_port()
    controllers.append(Controller(highwater, volume.workdir, volume_args(volume, "--metrics", f"127.0.0.1:{port}")))
    first = controllers[-1]
    first.wait_for_log("write threshold armed")

    data_size = 384 * MiB
    data = volume.workdir / "data.bin"
    expected = write_random_file(data, data_size)

    # Kill -9 the controller once it has extended twice, restart it half a second later.
    def kill_and_restart() -> None:
        first.wait_for_log(r"\bextended\b", count=2, timeout=60)
        first.kill()
        time.sleep(0.5)
        controllers.append(Controller(highwater, volume.workdir, volume_args(volume, "--metrics", f"127.0.0.1:{port}"), "autoextend2"))

    restarter = threading.Thread(target=kill_and_restart)
    restarter.start()
    started = time.monotonic()
    copy = subprocess.run(["nbdcopy", str(data), volume.uri], capture_output=True, text=True, timeout=150)
    elapsed = time.monotonic() - started
    restarter.join(60)
    assert copy.returncode == 0, f"nbdcopy failed (client errors): {copy.stderr}"
    assert first.process.returncode == -signal.SIGKILL
    second = controllers[-1]
    second.wait_for_log("write threshold armed")

    # The data is all there.
    assert sha256_of_export(volume.uri, data_size) == expected

    # The volume grew by whole chunks, just enough, never past the maximum.
    log = first.log + second.log
    extends = len(re.findall(r"\bextended\b", log))
    size = volume.size
    assert size == INITIAL_VOLUME + extends * CHUNK
    assert size <= 2253 * MiB
    stats = daemon.qmp.execute("query-blockstats", {"query-nodes": True})
    highest = next(entry["stats"]["wr_highest_offset"] for entry in stats if entry["node-name"] == "vol0")
    assert highest <= size
    # Armed again at size - watermark (32 MiB) and not behind the writes by more than a chunk.
    nodes = daemon.qmp.execute("query-named-block-nodes", {"flat": True})
    assert next(node["write_threshold"] for node in nodes if node["node-name"] == "vol0") == size - 32 * MiB
    assert size - highest <= CHUNK + 32 * MiB

    # Metrics of the running controller.
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert re.search(r'highwater_autoextend_daemon_connected\{daemon="unix:[^"]+"\} 1', metrics)
    assert re.search(r'highwater_autoextend_volume_capacity_bytes\{node="vol0"\} ' + str(size), metrics)
    second_extends = len(re.findall(r"\bextended\b", second.log))
    assert second_extends >= 1, "the restarted controller had nothing left to do: the kill was not mid-run"
    assert f'highwater_autoextend_extensions_total{{node="vol0"}} {second_extends}' in metrics
    assert f'highwater_autoextend_extension_duration_seconds_count{{node="vol0"}} {second_extends}' in metrics

    # Idle: event driven, no polling.
    before = second.cpu_seconds()
    time.sleep(2)
    assert second.cpu_seconds() - before <= 0.05

    daemon.stop()
    check = subprocess.run(["qemu-img", "check", str(volume.image)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    latencies = latencies_ms(log)
    assert len(latencies) == extends
    print(
        f"\nautoextend: {data_size // MiB} MiB in {elapsed:.2f}s ({data_size / MiB / elapsed:.0f} MiB/s), "
        f"{extends} extends of 64 MiB, latency p50 {statistics.median(latencies):.2f} ms, "
        f"p99 {percentile(latencies, 0.99):.2f} ms, max {max(latencies):.2f} ms"
    )


def test_a_daemon_restart_is_survived(highwater, volumes, controllers):
    volume = volumes()
    # The controller starts first and waits for the daemon.
    controllers.append(Controller(highwater, volume.workdir, volume_args(volume, "--retry-maximum-ms", "200")))
    controller = controllers[-1]
    controller.wait_for_log("cannot reach the daemon")
    daemon = volume.start_daemon()
    controller.wait_for_log("write threshold armed")
    subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x11 0 48M", volume.uri], check=True, capture_output=True)
    controller.wait_for_log(r"\bextended\b")

    daemon.stop()
    controller.wait_for_log("connection to the daemon lost")
    daemon = volume.start_daemon()
    controller.wait_for_log("write threshold armed", count=3)
    nodes = daemon.qmp.execute("query-named-block-nodes", {"flat": True})
    assert next(node["write_threshold"] for node in nodes if node["node-name"] == "vol0") == volume.size - 32 * MiB

    write = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x22 48M 80M", volume.uri], capture_output=True, text=True)
    assert write.returncode == 0 and "error" not in write.stdout.lower(), write.stdout + write.stderr
    read = subprocess.run(["qemu-io", "-f", "raw", "-c", "read -P 0x11 0 48M", "-c", "read -P 0x22 48M 80M", volume.uri],
                          capture_output=True, text=True)
    assert read.returncode == 0 and "Pattern verification failed" not in read.stdout, read.stdout
    assert volume.size >= 64 * MiB + 2 * CHUNK


def test_an_unknown_node_is_a_clear_error(highwater, volumes):
    volume = volumes()
    volume.start_daemon()
    result = subprocess.run(
        [highwater, "autoextend", "--qmp", volume.qmp, "--node-name", "nope", "--backend", "file"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.endswith(
        f"highwater autoextend: unix:{volume.qmp}: no block node named 'nope' (the daemon has: disk0, vol0)\n"
    ), result.stderr
    result = subprocess.run(
        [highwater, "autoextend", "--qmp", volume.qmp, "--node-name", "disk0", "--backend", "file"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert "node 'disk0' is a qcow2 node, not a volume (host_device or file): manage its file node 'vol0' instead" in result.stderr


def test_a_failing_backend_is_retried_with_backoff_and_reported(highwater, volumes, controllers):
    volume = volumes()
    volume.start_daemon()
    flag = volume.workdir / "storage-ok"
    command = f'echo "attempt $HIGHWATER_ATTEMPT"; test -e {flag} || {{ echo "no free extents" >&2; exit 5; }}; ' \
              'truncate -s "$HIGHWATER_REQUESTED_SIZE" "$HIGHWATER_PATH"'
    args = ["--qmp", volume.qmp, "--node-name", "vol0", "--backend", "command", "--command", command,
            "--chunk", "64M", "--utilization", "50", "--retry-initial-ms", "50", "--retry-maximum-ms", "200"]
    controllers.append(Controller(highwater, volume.workdir, args))
    controller = controllers[-1]
    controller.wait_for_log("write threshold armed")

    # A write past the threshold; it is held while the storage refuses to grow.
    writer = subprocess.Popen(["qemu-io", "-f", "raw", "-c", "write -P 0x33 0 96M", volume.uri],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    controller.wait_for_log("extension failed", count=4)
    log = controller.log
    assert "exited with status 5: attempt 1 | no free extents" in log
    delays = re.findall(r"delay-ms=(\S+) failures=(\d)", log)[:4]
    assert delays == [("50.000", "1"), ("100.000", "2"), ("200.000", "3"), ("200.000", "4")], log
    assert writer.poll() is None

    flag.touch()
    output, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0 and "error" not in output.lower(), output
    controller.wait_for_log(r"\bextended\b")
    assert volume.size >= 128 * MiB


def test_at_the_maximum_the_volume_stops_growing_without_a_busy_loop(highwater, volumes, controllers):
    volume = volumes(enospc_timeout=2)
    volume.start_daemon()
    controllers.append(Controller(highwater, volume.workdir, volume_args(volume, "--maximum", "128M")))
    controller = controllers[-1]
    controller.wait_for_log("write threshold armed")

    write = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x44 0 200M", volume.uri],
                           capture_output=True, text=True, timeout=60)
    assert "No space left on device" in write.stdout + write.stderr
    controller.wait_for_log("the volume has its maximum size")
    # The held write's BLOCK_IO_ERROR (named after the export's node) reached the controller.
    controller.wait_for_log("a write found no space and the volume is at its maximum size")
    assert "event-node=disk0" in controller.log
    assert volume.size == 128 * MiB
    assert len(re.findall(r"\bextended\b", controller.log)) == 1

    before = controller.cpu_seconds()
    time.sleep(2)
    assert controller.cpu_seconds() - before <= 0.05
    assert "retrying" not in controller.log


def test_a_loop_device_is_grown_through_its_backing_file(highwater, volumes, controllers):
    volume = volumes(loop=True)
    daemon = volume.start_daemon()
    controllers.append(Controller(highwater, volume.workdir, [
        "--qmp", volume.qmp, "--node-name", "vol0", "--backend", "loop", "--chunk", "64M", "--utilization", "50",
    ]))  # fmt: skip
    controller = controllers[-1]
    controller.wait_for_log("write threshold armed")

    data = volume.workdir / "data.bin"
    expected = write_random_file(data, 192 * MiB)
    copy = subprocess.run(["nbdcopy", str(data), volume.uri], capture_output=True, text=True, timeout=120)
    assert copy.returncode == 0, copy.stderr
    assert sha256_of_export(volume.uri, 192 * MiB) == expected
    extends = len(re.findall(r"\bextended\b", controller.log))
    device_size = int(subprocess.run(["blockdev", "--getsize64", volume.device], check=True, capture_output=True, text=True).stdout)
    assert device_size == volume.size == INITIAL_VOLUME + extends * CHUNK
    assert extends >= 3
    nodes = daemon.qmp.execute("query-named-block-nodes", {"flat": True})
    assert next(node["image"]["virtual-size"] for node in nodes if node["node-name"] == "vol0") == device_size

    daemon.stop()
    check = subprocess.run(["qemu-img", "check", str(volume.image)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_writes_held_before_the_controller_started_are_extended_for_at_once(highwater, volumes, controllers):
    # The stall's BLOCK_IO_ERROR goes out while no controller listens, and the held write is
    # not in wr_highest_offset: with 16 MiB chunks the threshold is at 56 MiB, the writes so
    # far end near 40 MiB, so arming alone would find nothing to do and the write would wait
    # for its timeout. The export's __io.highwater_io-status tells the controller instead.
    volume = volumes(enospc_timeout=60)
    daemon = volume.start_daemon()
    subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x55 0 40M", volume.uri], check=True, capture_output=True)
    # One request (at most 32 MiB) that needs about 64.5 MiB of volume.
    writer = subprocess.Popen(["qemu-io", "-f", "raw", "-c", "write -P 0x66 40M 24M", volume.uri],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        event = daemon.qmp.wait_event("BLOCK_IO_ERROR", timeout=30)
        assert event["data"]["nospace"] is True and event["data"]["node-name"] == "disk0"
        exports = daemon.qmp.execute("query-block-exports")
        assert exports == [{"node-name": "disk0", "shutting-down": False, "type": "nbd", "id": "exp0",
                            "__io.highwater_io-status": "nospace"}]
        stats = daemon.qmp.execute("query-blockstats", {"query-nodes": True})
        highest = next(entry["stats"]["wr_highest_offset"] for entry in stats if entry["node-name"] == "vol0")
        assert highest < 56 * MiB
        assert writer.poll() is None

        started = time.monotonic()
        controllers.append(Controller(highwater, volume.workdir, [
            "--qmp", volume.qmp, "--node-name", "vol0", "--backend", "file", "--chunk", "16M", "--utilization", "50",
        ]))  # fmt: skip
        output, _ = writer.communicate(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0 and "error" not in output.lower(), output
    # Well before the hold timeout: extended at once on attaching, not at some later event.
    assert elapsed < 10, f"the held write took {elapsed:.1f}s to complete after the controller started"
    controller = controllers[-1]
    controller.wait_for_log("the daemon holds writes for lack of space: extending at once")
    controller.wait_for_log("write threshold armed")
    assert volume.size == INITIAL_VOLUME + 16 * MiB
    assert daemon.qmp.execute("query-block-exports")[0]["__io.highwater_io-status"] == "ok"
    read = subprocess.run(["qemu-io", "-f", "raw", "-c", "read -P 0x55 0 40M", "-c", "read -P 0x66 40M 24M", volume.uri],
                          capture_output=True, text=True)
    assert read.returncode == 0 and "Pattern verification failed" not in read.stdout, read.stdout
    daemon.stop()
    check = subprocess.run(["qemu-img", "check", str(volume.image)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
