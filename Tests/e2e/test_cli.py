"""Command line compatibility: startup errors (exit status and message), option syntax that
must work (keyval escapes, implied keys, JSON form), --pidfile and --daemonize.

Messages are compared without the leading program name ("qemu-storage-daemon: "), which
legitimately differs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from harness import normalize
from harness.daemon import Daemon, DaemonCommand, make_workdir, monitor_args, run_to_exit, wait_for_unix_socket
from harness.qmp import QMPClient

IMAGE = "{dir}/disk.img"
FILE = f"driver=file,node-name=file0,filename={IMAGE}"
UNIX_SERVER = "addr.type=unix,addr.path={dir}/nbd.sock"

STARTUP_ERRORS = {
    "no node-name": ["--blockdev", f"driver=file,filename={IMAGE}"],
    "positional argument": ["bogus-positional"],
    "unknown option": ["--bogus-opt"],
    "missing option argument": ["--blockdev"],
    "missing pidfile argument": ["--pidfile"],
    "blockdev help": ["--blockdev", "help"],
    "export help": ["--export", "help"],
    "nbd-server help": ["--nbd-server", "help"],
    "bad driver": ["--blockdev", "driver=bogus,node-name=x"],
    "size suffix": ["--blockdev", "driver=null-co,node-name=n0,size=1K"],
    "bad bool": ["--blockdev", f"{FILE},read-only=maybe"],
    "unknown key": ["--blockdev", f"{FILE},bogus=1"],
    "unknown nested key": ["--blockdev", f"{FILE},bogus.x=1"],
    "inconsistent keys": ["--blockdev", f"{FILE},file.filename=/x"],
    "missing value separator": ["--blockdev", "driver=null-co,node-name=n0,x"],
    "invalid key": ["--blockdev", "driver=null-co,node-name=n0,1bad=3"],
    "escaped comma in node-name": ["--blockdev", "driver=null-co,node-name=n0,,x=1"],
    "node-name too long": ["--blockdev", "driver=null-co,node-name=abcdefghijklmnopqrstuvwxyz012345"],
    "invalid node-name": ["--blockdev", "driver=null-co,node-name=1bad"],
    "duplicate node": ["--blockdev", "driver=null-co,node-name=n0", "--blockdev", "driver=null-co,node-name=n0"],
    "missing file": ["--blockdev", "driver=file,node-name=f0,filename={dir}/nonexistent"],
    "host_device on a file": ["--blockdev", f"driver=host_device,node-name=h0,filename={IMAGE}"],
    "raw size not multiple of 512": ["--blockdev", FILE, "--blockdev", "driver=raw,node-name=r0,file=file0,size=1000"],
    "raw beyond file": ["--blockdev", FILE, "--blockdev", "driver=raw,node-name=r0,file=file0,offset=16777216,size=4096"],
    "raw unknown child": ["--blockdev", "driver=raw,node-name=r0,file=nosuch"],
    "json wrong type": ["--blockdev", '{"driver":"file","node-name":"f0","filename":5}'],
    "json truncated": ["--blockdev", '{"driver":"file"'],
    "json not an object": ["--blockdev", '{"driver":"null-co","node-name":"n0"} x'],
    "export before node": ["--nbd-server", UNIX_SERVER, "--export", "type=nbd,id=e0,node-name=file0"],
    "export without server": ["--blockdev", FILE, "--export", "type=nbd,id=e0,node-name=file0"],
    "export missing id": ["--blockdev", FILE, "--nbd-server", UNIX_SERVER, "--export", "type=nbd,node-name=file0"],
    "export duplicate id": ["--blockdev", FILE, "--nbd-server", UNIX_SERVER, "--export", "type=nbd,id=e0,node-name=file0",
                            "--export", "type=nbd,id=e0,node-name=file0,name=other"],
    "export singular bitmap": ["--blockdev", FILE, "--nbd-server", UNIX_SERVER, "--export", "type=nbd,id=e0,node-name=file0,bitmap=b"],
    "nbd-server without path": ["--nbd-server", "addr.type=unix"],
    "nbd-server legacy data form": ["--nbd-server", "addr.type=unix,addr.data.path=/x"],
    "nbd-server inet without port": ["--nbd-server", "addr.type=inet,addr.host=127.0.0.1"],
    "nbd-server bad max-connections": ["--nbd-server", f"{UNIX_SERVER},max-connections=-1"],
    "nbd-server bind failure": ["--nbd-server", "addr.type=unix,addr.path=/nonexistent-dir/x.sock"],
    "second nbd-server": ["--nbd-server", UNIX_SERVER, "--nbd-server", "addr.type=unix,addr.path={dir}/b.sock"],
    "monitor without chardev": ["--monitor", "chardev=nosuch"],
    "monitor readline": [*monitor_args("c0", "{dir}/q.sock")[:2], "--monitor", "c0,mode=readline"],
    "chardev used twice": [*monitor_args("c0", "{dir}/q.sock"), "--monitor", "c0"],
    "first error wins": ["--blockdev", "driver=bogus,node-name=x", "--bogus-opt"],
}


def program_prefix_removed(text: str) -> str:
    """Drop the leading "<program>: " of each message line (the program name differs)."""
    return "\n".join(re.sub(r"^[^\s:]+: ", "", line, count=1) for line in text.splitlines())


def startup_result(command: DaemonCommand, args: list[str]) -> dict:
    workdir = make_workdir(command.role[:3])
    try:
        with open(workdir / "disk.img", "wb") as image:
            image.truncate(16 * 1024 * 1024)
        result = run_to_exit(command, args, workdir)
        stderr = program_prefix_removed(result.stderr.decode(errors="replace")).replace(str(workdir), "$DIR")
        return {"status": result.returncode, "stdout": result.stdout.decode(errors="replace"), "stderr": stderr}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("case", STARTUP_ERRORS, ids=str)
def test_startup_error(case: str, reference_command, subject_command) -> None:
    args = STARTUP_ERRORS[case]
    expected = startup_result(reference_command, args)
    assert expected["status"] == 1, expected
    actual = startup_result(subject_command, args)
    assert actual == expected


# -- option syntax that must work -----------------------------------------------------------------

STARTUPS = {
    "escaped comma in filename": (["--blockdev", "driver=file,node-name=f0,filename={dir}/we,,ird.img"], ["we,ird.img"]),
    "last duplicate key wins": (["--blockdev", "driver=null-co,node-name=a0,node-name=b0"], []),
    "implied keys": (["--blockdev", "null-co,node-name=n0,size=0x100000,read-zeroes=yes",
                      "--nbd-server", UNIX_SERVER, "--export", "nbd,id=e0,node-name=n0,name=,writable=true"], []),
    "bool spellings": (["--blockdev", "null-co,node-name=n0,read-zeroes=y,read-only=off",
                        "--blockdev", "null-co,node-name=n1,read-zeroes=no,read-only=on"], []),
    "trailing comma": (["--blockdev", "null-co,node-name=n0,"], []),
    "json blockdev with inline child": (["--blockdev", '{"driver":"raw","node-name":"r0","file":{"driver":"file","filename":"{dir}/disk.img"}}'], []),
    "json with single quotes": (["--blockdev", "{'driver':'null-co','node-name':'n0','size':4096}"], []),
    "json export and server": (["--blockdev", "null-co,node-name=n0",
                                "--nbd-server", '{"addr":{"type":"unix","path":"{dir}/nbd.sock"},"max-connections":4}',
                                "--export", '{"type":"nbd","id":"e0","node-name":"n0","description":"d"}'], []),
    "short-form chardev booleans": (["--chardev", "socket,id=c1,path={dir}/m1.sock,server,nowait", "--monitor", "c1"], []),
    "monitor options": ([*monitor_args("c1", "{dir}/m1.sock")[:2], "--monitor", "chardev=c1,mode=control,pretty=off,id=mon1"], []),
    "object iothread": (["--object", "iothread,id=io0", "--object", "qom-type=iothread,id=io1"], []),
    "no options at all": ([], []),
}


def started_state(command: DaemonCommand, args: list[str], files: list[str]) -> dict:
    """Start with `args` (plus the harness monitor), record the graph, exports, stderr."""
    workdir = make_workdir(command.role[:3])
    for name in ["disk.img", *files]:
        with open(workdir / name, "wb") as image:
            image.truncate(16 * 1024 * 1024)
    daemon = Daemon(command=command, args=args, workdir=workdir)
    try:
        daemon.start()
        nodes = daemon.qmp.execute("query-named-block-nodes", {"flat": True})
        exports = daemon.qmp.execute("query-block-exports")
        daemon.stop()
        state = {
            "nodes": normalize.command_return("query-named-block-nodes", nodes),
            "exports": exports,
            "log": program_prefix_removed(daemon.log),
        }
        return normalize.implicit_node_names(normalize.replace_strings(state, str(workdir), "$DIR"))
    finally:
        daemon.cleanup()


@pytest.mark.parametrize("case", STARTUPS, ids=str)
def test_startup_syntax(case: str, reference_command, subject_command) -> None:
    args, files = STARTUPS[case]
    expected = started_state(reference_command, args, files)
    actual = started_state(subject_command, args, files)
    assert actual == expected


# -- --pidfile, --daemonize, signals ---------------------------------------------------------------


def test_pidfile(any_command: DaemonCommand, start_daemon) -> None:
    daemon = start_daemon(any_command, ["--pidfile", "{dir}/d.pid", "--blockdev", "null-co,node-name=n0"])
    pidfile = daemon.workdir / "d.pid"
    assert pidfile.read_text().strip() == str(daemon.process.pid)
    # A second daemon with the same PID file refuses to start.
    second = run_to_exit(any_command, ["--pidfile", str(pidfile)], daemon.workdir)
    assert second.returncode == 1, second
    assert "pid file" in second.stderr.decode().lower(), second.stderr
    daemon.stop()
    assert not pidfile.exists(), "PID file left behind after a clean exit"
    assert not daemon.qmp_path.exists(), "QMP socket left behind after a clean exit"


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (its new parent may reap it late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_daemonize(any_command: DaemonCommand) -> None:
    """--daemonize: the parent exits 0 once startup is complete; the child serves QMP."""
    workdir = make_workdir(any_command.role[:3])
    pidfile = workdir / "d.pid"
    child = None
    try:
        args = ["--daemonize", "--pidfile", str(pidfile), *monitor_args("c0", workdir / "q.sock"),
                "--blockdev", "null-co,node-name=n0"]
        parent = run_to_exit(any_command, args, workdir)
        assert parent.returncode == 0, parent
        assert pidfile.exists(), "PID file must exist when the parent returns"
        child = int(pidfile.read_text())
        wait_for_unix_socket(workdir / "q.sock", None)
        with QMPClient.connect_unix(str(workdir / "q.sock")) as client:
            client.negotiate()
            assert [node["node-name"] for node in client.execute("query-named-block-nodes")] == ["n0"]
            client.send({"execute": "quit"})
            client.read_until_closed()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and running(child):
            time.sleep(0.02)
        assert not running(child), "daemonized child did not exit after quit"
        child = None
    finally:
        if child is not None and running(child):
            os.kill(child, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_exit_status(any_command: DaemonCommand, start_daemon, sig: signal.Signals) -> None:
    daemon = start_daemon(any_command, [
        "--blockdev", "null-co,node-name=n0",
        "--nbd-server", UNIX_SERVER,
        "--export", "type=nbd,id=e0,node-name=n0",
    ])
    assert daemon.terminate(sig) == 0, daemon.log
    messages = daemon.qmp.read_until_closed()
    events = [normalize.event(m) for m in daemon.qmp.take_events() + messages if "event" in m]
    assert events == [{"event": "BLOCK_EXPORT_DELETED", "data": {"id": "e0"}}]
