"""`highwater serve`, the built-in default: a thin qcow2 in a folder, exported over NBD, a QMP
socket, a write threshold on the image file. A newcomer's first session, end to end: the
printed qemu-io line crosses the threshold, the event reaches QMP, Ctrl-C stops cleanly and the
image is sound.
"""

import os
import shlex
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.qmp import QMPClient


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"serve exited early: {process.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_serve_end_to_end(subject_command, subject_is_qsd) -> None:
    if subject_is_qsd:
        pytest.xfail("serve is HighWater's own command")  # only when validating the suite with QSD
    binary = subject_command.argv[0]
    with tempfile.TemporaryDirectory(prefix="hw-serve-", dir="/tmp") as tmp:
        folder = Path(tmp) / "data"
        process = subprocess.Popen([binary, "serve", "--dir", str(folder), "--size", str(1 << 30)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(folder / "qmp.sock", process)
            with QMPClient.connect_unix(str(folder / "qmp.sock")) as qmp:
                qmp.negotiate()
                nodes = {node["node-name"]: node for node in qmp.execute("query-named-block-nodes")}
                assert nodes["disk0"]["drv"] == "qcow2"
                assert nodes["disk0-file"]["write_threshold"] == 64 << 20
                banner = ""
                while "qemu-io" not in banner:
                    banner += process.stdout.readline()
                line = next(l for l in banner.splitlines() if l.strip().startswith("qemu-io"))
                result = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=120)
                assert result.returncode == 0, result.stderr
                event = qmp.wait_event("BLOCK_WRITE_THRESHOLD")
                assert event["data"]["node-name"] == "disk0-file"
                assert event["data"]["write-threshold"] == 64 << 20
                assert qmp.execute("query-named-block-nodes")[-1]["write_threshold"] == 0
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=15) == 0
            assert not (folder / "qmp.sock").exists()
            check = subprocess.run(["qemu-img", "check", str(folder / "disk.qcow2")], capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
            info = subprocess.run(["qemu-img", "info", str(folder / "disk.qcow2")], capture_output=True, text=True)
            assert "virtual size: 1 GiB" in info.stdout
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
