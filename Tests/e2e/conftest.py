"""Fixtures shared by the end-to-end suite.

Which programs run:
* subject   — `HW_DAEMON` (a shell-style command line, e.g. "/path/highwater daemon");
              default: the `highwater` binary from `swift build --show-bin-path`, plus `daemon`.
* reference — `HW_REFERENCE`, default `qemu-storage-daemon`.

Peers (qemu-io, qemu-img, nbdinfo, nbdcopy, fio, python3-libnbd) are required: a missing
one fails the run; nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness.daemon import DEFAULT_REFERENCE, REFERENCE_ENV, SUBJECT_ENV, Daemon, DaemonCommand, make_workdir  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
PEERS = ["qemu-storage-daemon", "qemu-io", "qemu-img", "nbdinfo", "nbdcopy", "fio"]


def default_subject() -> str:
    result = subprocess.run(
        ["swift", "build", "--show-bin-path"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"swift build --show-bin-path failed:\n{result.stderr}"
    binary = Path(result.stdout.strip()) / "highwater"
    assert binary.exists(), f"{binary} does not exist: run `swift build` or set {SUBJECT_ENV}"
    return f"{binary} daemon"


@pytest.fixture(scope="session", autouse=True)
def peers_present() -> None:
    missing = [tool for tool in PEERS if shutil.which(tool) is None]
    assert not missing, f"missing peer programs: {missing} (install them; scripts/test does)"


@pytest.fixture(scope="session")
def reference_command() -> DaemonCommand:
    return DaemonCommand.parse("reference", os.environ.get(REFERENCE_ENV, DEFAULT_REFERENCE))


@pytest.fixture(scope="session")
def subject_command() -> DaemonCommand:
    return DaemonCommand.parse("subject", os.environ.get(SUBJECT_ENV) or default_subject())


@pytest.fixture(scope="session")
def subject_is_qsd(subject_command: DaemonCommand) -> bool:
    """QSD standing in as the subject (suite validation): deliberate divergences don't apply."""
    return subject_command.is_qemu_storage_daemon


@pytest.fixture(params=["reference", "subject"])
def any_command(request, reference_command: DaemonCommand, subject_command: DaemonCommand) -> DaemonCommand:
    """Parametrises a test over both implementations."""
    return reference_command if request.param == "reference" else subject_command


class DaemonFactory:
    """Starts daemons for one test (or module) and cleans all of them up."""

    def __init__(self) -> None:
        self.daemons: list[Daemon] = []

    def __call__(self, command: DaemonCommand, args: list[str], *, files: dict[str, int] | None = None,
                 with_monitor: bool = True, negotiate: bool = True, start: bool = True) -> Daemon:
        workdir = make_workdir(command.role[:3])
        for name, size in (files or {}).items():
            with open(workdir / name, "wb") as image:
                image.truncate(size)
        daemon = Daemon(command=command, args=args, workdir=workdir, with_monitor=with_monitor)
        self.daemons.append(daemon)
        if start:
            daemon.start(negotiate=negotiate)
        return daemon

    def cleanup(self) -> None:
        for daemon in self.daemons:
            daemon.cleanup()


@pytest.fixture
def start_daemon():
    factory = DaemonFactory()
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def module_daemons():
    factory = DaemonFactory()
    yield factory
    factory.cleanup()
