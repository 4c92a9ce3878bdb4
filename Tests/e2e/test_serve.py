"""`highwater serve`, the built-in default: the whole thin-provisioning loop in one process —
a thin qcow2 on a small file volume, exported over NBD with writes held on ENOSPC, a QMP socket
for the user, and the built-in controller growing the volume when its write threshold fires.
A newcomer's first session, end to end: a copy larger than the volume succeeds while the
volume grows by chunks, the user's monitor sees it all, Ctrl-C stops cleanly and the image is
sound and holds the data. Also: a folder from before the controller (a qcow2 on a file that
grew with its writes) still starts.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.qmp import QMPClient

MiB = 1 << 20
DEFAULT_VOLUME = 256 * MiB
# The copy test shrinks serve's defaults (256 MiB volume and chunk) four times, to take a
# second or two: the same loop, at a quarter of the size.
VOLUME = 64 * MiB
CHUNK = 64 * MiB
COPY = 384 * MiB  # six times the initial volume: six extensions
EXTENSIONS = 6


class Serve:
    """One `highwater serve` process: its welcome text (stdout) and its log (stderr, in a file)."""

    def __init__(self, binary: str, folder: Path, *args: str) -> None:
        self.folder = folder
        self.log_path = folder.parent / "serve.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([binary, "serve", "--dir", str(folder), *args],
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
        self.welcome = ""
        while not self.welcome.rstrip().endswith("Ctrl-C stops everything."):
            line = self.process.stdout.readline()
            assert line, f"serve exited early ({self.process.wait(10)}):\n{self.log}"
            self.welcome += line

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def uri(self) -> str:
        return f"nbd+unix:///disk0?socket={self.folder}/nbd.sock"

    def wait_for_log(self, pattern: str, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(re.findall(pattern, self.log)) < count:
            assert self.process.poll() is None, f"serve exited with {self.process.returncode}:\n{self.log}"
            assert time.monotonic() < deadline, f"no {count} x {pattern!r} in the log within {timeout}s:\n{self.log}"
            time.sleep(0.01)

    def interrupt(self) -> None:
        """Ctrl-C: everything stops, with exit status 0, and the sockets are gone."""
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=15) == 0, self.log
        for name in ("qmp.sock", "nbd.sock", "autoextend.sock"):
            assert not (self.folder / name).exists(), name

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def binary(subject_command, subject_is_qsd) -> str:
    if subject_is_qsd:
        pytest.xfail("serve is HighWater's own command")  # only when validating the suite with QSD
    return subject_command.argv[0]


@pytest.fixture
def workdir():
    # tmpfs: a gigabyte is copied in a second or two, whatever the disk's load.
    with tempfile.TemporaryDirectory(prefix="hw-serve-", dir="/dev/shm") as tmp:
        yield Path(tmp)


def write_source(path: Path) -> None:
    """COPY bytes, every MiB different (its index, then random bytes shared by all)."""
    block = bytearray(os.urandom(MiB))
    with open(path, "wb") as source:
        for index in range(COPY // MiB):
            block[:8] = index.to_bytes(8, "little")
            block[8:16] = (~index & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
            source.write(block)


def qemu_img(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=120)


def test_serve_grows_its_volume_while_a_copy_larger_than_it_runs(binary, workdir) -> None:
    folder = workdir / "data"
    source = workdir / "source.raw"
    write_source(source)
    serve = Serve(binary, folder, "--volume-size", "64M", "--chunk", "64M")
    try:
        assert serve.welcome.startswith(f"HighWater is serving a 10 GiB thin qcow2 disk on a 64 MiB volume ({folder}/disk.qcow2).")
        assert "a write threshold on it at 32 MiB, when 32 MiB is left" in serve.welcome
        assert "by 64 MiB (up to 11 GiB)" in serve.welcome
        assert os.path.getsize(folder / "disk.qcow2") == VOLUME
        serve.wait_for_log("write threshold armed")

        # The user's monitor is free while the controller runs on its own.
        with QMPClient.connect_unix(str(folder / "qmp.sock")) as qmp:
            qmp.negotiate()
            nodes = {node["node-name"]: node for node in qmp.execute("query-named-block-nodes")}
            assert nodes["disk0"]["drv"] == "qcow2"
            assert nodes["disk0"]["image"]["virtual-size"] == 10 << 30
            assert nodes["disk0-file"]["image"]["virtual-size"] == VOLUME
            assert nodes["disk0-file"]["write_threshold"] == VOLUME - CHUNK // 2

            copy = subprocess.run(["nbdcopy", str(source), serve.uri], capture_output=True, text=True, timeout=120)
            assert copy.returncode == 0, copy.stderr

            # 384 MiB of data and some metadata: six extensions, 64 MiB -> 448 MiB, each once
            # the threshold is passed (normally announced by its event, to the user's monitor too).
            serve.wait_for_log("write threshold armed", count=EXTENSIONS + 1)
            steps = [(int(a), int(b)) for a, b in re.findall(r"\bfrom=(\d+) .*\bto=(\d+)\b.*\bextended$", serve.log, re.M)]
            assert steps == [(VOLUME + k * CHUNK, VOLUME + (k + 1) * CHUNK) for k in range(EXTENSIONS)], serve.log
            final = VOLUME + EXTENSIONS * CHUNK
            assert os.path.getsize(folder / "disk.qcow2") == final
            assert qmp.execute("query-named-block-nodes")[-1]["write_threshold"] == final - CHUNK // 2
            events = [event["data"] for event in qmp.take_events() if event["event"] == "BLOCK_WRITE_THRESHOLD"]
            # A threshold the writes had passed before it was armed fires no event (QEMU's
            # rule); the controller then extends at once: an event per step is not guaranteed.
            thresholds = [VOLUME - CHUNK // 2 + k * CHUNK for k in range(EXTENSIONS)]
            assert events and all(event["node-name"] == "disk0-file" for event in events), events
            fired = [event["write-threshold"] for event in events]
            assert fired == [threshold for threshold in thresholds if threshold in fired], fired
            assert len(re.findall(r"event BLOCK_WRITE_THRESHOLD", serve.log)) == len(events)
        serve.interrupt()
        log = serve.log
        assert "connection to the daemon lost" not in log, log  # the controller stopped first
        assert not re.search(r"^\S+ (error|critical) ", log, re.M), log

        check = qemu_img("check", str(folder / "disk.qcow2"))
        assert check.returncode == 0, check.stdout + check.stderr
        compare = qemu_img("compare", "-f", "raw", "-F", "qcow2", str(source), str(folder / "disk.qcow2"))
        assert compare.returncode == 0, compare.stdout + compare.stderr
    finally:
        serve.kill()


def test_serve_adopts_a_disk_from_before_the_controller(binary, workdir) -> None:
    """The serve of before kept its qcow2 on a file that grew with its writes: the file becomes
    a volume of the initial size, the data stays."""
    folder = workdir / "data"
    folder.mkdir()
    disk = folder / "disk.qcow2"
    assert qemu_img("create", "-q", "-f", "qcow2", str(disk), "1G").returncode == 0
    written = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", str(disk)], capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    old_length = os.path.getsize(disk)
    assert old_length < MiB + DEFAULT_VOLUME // 4

    serve = Serve(binary, folder)
    try:
        first, second = serve.welcome.splitlines()[:2]
        assert first.startswith(f"Using {disk} from an earlier run: its file (")
        assert first.endswith("is lengthened to a 256 MiB volume.")
        assert second.startswith("HighWater is serving a 1 GiB thin qcow2 disk on a 256 MiB volume")
        assert os.path.getsize(disk) == DEFAULT_VOLUME
        # The welcome's own commands work.
        nbdinfo = next(line for line in serve.welcome.splitlines() if line.strip().startswith("nbdinfo"))
        info = subprocess.run(shlex.split(nbdinfo), capture_output=True, text=True, timeout=30)
        assert info.returncode == 0 and "export-size: 1073741824" in info.stdout, info.stdout + info.stderr
        read = subprocess.run(["qemu-io", "-f", "raw", "-c", "read -P 0x5a 0 1M", serve.uri], capture_output=True, text=True, timeout=30)
        assert read.returncode == 0 and "read 1048576/1048576" in read.stdout, read.stdout + read.stderr
        serve.wait_for_log("write threshold armed")
        serve.interrupt()
        check = qemu_img("check", str(disk))
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        serve.kill()


def test_serve_restarts_on_its_grown_volume(binary, workdir) -> None:
    """A second run keeps the volume the first one grew (its length is the volume's size)."""
    folder = workdir / "data"
    Serve(binary, folder, "--volume-size", "8M", "--chunk", "8M").interrupt()
    os.truncate(folder / "disk.qcow2", 24 * MiB)  # as if grown twice
    serve = Serve(binary, folder, "--volume-size", "8M", "--chunk", "8M")
    try:
        assert serve.welcome.splitlines()[0] == (
            f"Using {folder}/disk.qcow2 from an earlier run: its file's length (24 MiB) is the volume's size.")
        assert "a write threshold on it at 20 MiB, when 4 MiB is left" in serve.welcome
        serve.wait_for_log("write threshold armed")
        serve.interrupt()
        assert os.path.getsize(folder / "disk.qcow2") == 24 * MiB
    finally:
        serve.kill()
