"""Start and stop a qemu-storage-daemon compatible process (the reference or the subject).

A daemon gets its own temporary directory; `{dir}` in its arguments is replaced by that
directory. The harness prepends a QMP monitor on `{dir}/qmp.sock` (UNIX socket, wait=off)
unless told not to, waits until the monitor answers, and on stop sends SIGTERM and
expects exit status 0. Teardown kills whatever is still running (by PID only).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .qmp import QMPClient

REFERENCE_ENV = "HW_REFERENCE"
SUBJECT_ENV = "HW_DAEMON"
DEFAULT_REFERENCE = "qemu-storage-daemon"

STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class DaemonCommand:
    """How to launch one implementation: argv prefix plus a role label for messages."""

    role: str
    argv: tuple[str, ...]

    @classmethod
    def parse(cls, role: str, command_line: str) -> "DaemonCommand":
        argv = tuple(shlex.split(command_line))
        assert argv, f"empty daemon command for {role}"
        return cls(role=role, argv=argv)

    @property
    def is_qemu_storage_daemon(self) -> bool:
        """True when this command runs QEMU's own daemon (e.g. QSD standing in as subject)."""
        return os.path.basename(self.argv[0]) == "qemu-storage-daemon"


def monitor_args(chardev_id: str, path: str | Path) -> list[str]:
    """Command line options for one QMP monitor on a UNIX socket (never blocks startup)."""
    return ["--chardev", f"socket,id={chardev_id},path={path},server=on,wait=off", "--monitor", f"chardev={chardev_id}"]


def make_workdir(label: str) -> Path:
    # Short paths: UNIX socket addresses are limited to 107 bytes.
    return Path(tempfile.mkdtemp(prefix=f"hw-{label}-", dir="/tmp"))


def wait_for_unix_socket(path: Path, process: subprocess.Popen | None, timeout: float = STARTUP_TIMEOUT) -> None:
    """Wait until something listens on `path` (a connect succeeds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"daemon exited with {process.returncode} before {path} appeared")
        if path.exists():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
                return
            except OSError:
                pass
            finally:
                probe.close()
        time.sleep(0.01)
    raise AssertionError(f"{path} did not appear within {timeout}s")


@dataclass
class Daemon:
    """One running daemon process."""

    command: DaemonCommand
    args: list[str]
    workdir: Path
    with_monitor: bool = True
    process: subprocess.Popen | None = None
    qmp: QMPClient | None = None
    _clients: list[QMPClient] = field(default_factory=list)
    returncode: int | None = None

    @property
    def qmp_path(self) -> Path:
        return self.workdir / "qmp.sock"

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemon.log"

    def expand(self, text: str) -> str:
        return text.replace("{dir}", str(self.workdir))

    def argv(self) -> list[str]:
        options = monitor_args("qmp0", self.qmp_path) if self.with_monitor else []
        return [*self.command.argv, *options, *(self.expand(arg) for arg in self.args)]

    def start(self, negotiate: bool = True) -> "Daemon":
        """Start the process; with a monitor, connect (and negotiate) the primary client.

        The negotiation round trip also proves that startup finished: QSD processes its
        options left to right before its main loop answers the monitor.
        """
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir
            )
        if self.with_monitor:
            wait_for_unix_socket(self.qmp_path, self.process)
            self.qmp = self.connect(negotiate=negotiate)
        return self

    def connect(self, negotiate: bool = True, path: Path | None = None) -> QMPClient:
        client = QMPClient.connect_unix(str(path or self.qmp_path))
        self._clients.append(client)
        if negotiate:
            client.negotiate()
        return client

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        assert self.process is not None
        try:
            self.returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.command.role} daemon did not exit within {timeout}s") from None
        return self.returncode

    def terminate(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` and return the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.wait()

    def stop(self) -> None:
        """SIGTERM and require a clean exit (status 0), as QSD does."""
        status = self.terminate()
        assert status == 0, f"{self.command.role} daemon exited with {status} on SIGTERM; log:\n{self.log}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cleanup(self) -> None:
        """Teardown: close clients, kill the process if still running, drop the directory."""
        for client in self._clients:
            client.close()
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def run_to_exit(command: DaemonCommand, args: list[str], workdir: Path, timeout: float = STARTUP_TIMEOUT) -> subprocess.CompletedProcess:
    """Run a daemon that is expected to exit by itself (startup errors, --help)."""
    argv = [*command.argv, *(arg.replace("{dir}", str(workdir)) for arg in args)]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, cwd=workdir)
