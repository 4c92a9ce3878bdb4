"""Differential scenarios: the same command line and steps run against reference and subject.

A scenario is (files to create, daemon arguments, steps). Each step returns a JSON-able
record of what happened (normalised reply, NBD result or errno, tool output, …). After
every step that leaves the daemon running, the runner round-trips a sync command on the
monitor so that every event the step caused is attributed to that step; events that
arrived *before* the step's own reply are kept apart from those after it.

Steps may carry `reference=` expectations: these are asserted on the reference run only
and keep the scenario honest (a "bad argument" step must really fail on QSD). Deliberate
differences between HighWater and QSD are `Divergent` steps with a written reason.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbd

from . import normalize
from .daemon import Daemon, DaemonCommand, make_workdir
from .nbdio import block_status, connect_unix, digest, errno_name, host_allocation_map, pattern, qemu_io, run_tool, unix_uri
from .qmp import QMPClosed

NBD_SOCKET = "nbd.sock"


@dataclass
class Context:
    daemon: Daemon
    role: str  # "reference" or "subject"
    subject_is_qsd: bool
    handles: dict[str, nbd.NBD] = field(default_factory=dict)
    # Events received before the reply of the command just executed (see Q).
    events_before_reply: list[dict] = field(default_factory=list)

    @property
    def qmp(self):
        assert self.daemon.qmp is not None
        return self.daemon.qmp

    @property
    def workdir(self) -> Path:
        return self.daemon.workdir

    def path(self, name: str) -> Path:
        return self.workdir / name

    def uri(self, export: str) -> str:
        return unix_uri(export, self.path(NBD_SOCKET))

    @property
    def is_reference(self) -> bool:
        return self.role == "reference"


class Step:
    """One action. `run` returns the record that must be equal for both daemons."""

    terminal = False  # the daemon is gone after this step
    settle_event: str | None = None  # wait for this event before the sync (asynchronous events)

    def run(self, ctx: Context) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


# -- QMP ----------------------------------------------------------------------------------


@dataclass
class Q(Step):
    """A QMP command. `expect` ('ok'/'error') and `desc` are checked on the reference."""

    command: str
    arguments: Any = None
    expect: str | None = None
    desc: str | None = None  # exact reference error text (documents QSD, checks the scenario)
    raw: dict | None = None  # send this object verbatim instead (e.g. "arguments": null)
    settle_event: str | None = None

    def describe(self) -> str:
        return f"{self.command} {json.dumps(self.raw if self.raw is not None else self.arguments)}"

    def run(self, ctx: Context) -> Any:
        request = self.raw if self.raw is not None else {"execute": self.command}
        if self.raw is None and self.arguments is not None:
            request["arguments"] = normalize.replace_strings(self.arguments, "{dir}", str(ctx.workdir))
        before = len(ctx.qmp.events)
        ctx.qmp.send(request)
        message = ctx.qmp.receive_reply().message
        ctx.events_before_reply = ctx.qmp.events[before:]
        del ctx.qmp.events[before:]
        record = normalize.reply(self.command, message)
        if ctx.is_reference:
            if self.expect == "ok":
                assert "return" in record, f"reference: {self.describe()} failed: {record}"
            elif self.expect == "error":
                assert "error" in record, f"reference: {self.describe()} unexpectedly succeeded: {record}"
            if self.desc is not None:
                assert record.get("error", {}).get("desc") == self.desc, f"reference: {self.describe()}: {record}"
        return record


def ok(command: str, arguments: Any = None, **kwargs: Any) -> Q:
    return Q(command, arguments, expect="ok", **kwargs)


def err(command: str, arguments: Any = None, desc: str | None = None, **kwargs: Any) -> Q:
    return Q(command, arguments, expect="error", desc=desc, **kwargs)


@dataclass
class Thresholds(Step):
    """`write_threshold` of every node, from query-named-block-nodes (flat)."""

    def run(self, ctx: Context) -> Any:
        nodes = ctx.qmp.execute("query-named-block-nodes", {"flat": True})
        return {node["node-name"]: node["write_threshold"] for node in nodes}


@dataclass
class Highest(Step):
    """`wr_highest_offset` per node (and its file child chain) from query-blockstats;
    `nodes` keeps only those entries (e.g. the guest-side ones where the host layout may
    legitimately differ)."""

    nodes: tuple[str, ...] | None = None

    def run(self, ctx: Context) -> Any:
        entries = ctx.qmp.execute("query-blockstats", {"query-nodes": True})
        out: dict[str, list[int]] = {}

        def visit(entry: dict, prefix: str) -> None:
            out[prefix + entry.get("node-name", "?")] = entry["stats"]["wr_highest_offset"]
            if "parent" in entry:
                visit(entry["parent"], prefix + entry.get("node-name", "?") + "/")

        for entry in entries:
            visit(entry, "")
        if self.nodes is not None:
            out = {name: value for name, value in out.items() if name in self.nodes}
        return out


@dataclass
class Quit(Step):
    """`quit`: every message until the monitor closes (events before the return), exit 0."""

    terminal = True

    def run(self, ctx: Context) -> Any:
        ctx.qmp.send({"execute": "quit"})
        sequence = []
        for message in ctx.qmp.read_until_closed():
            if "event" in message:
                sequence.append(normalize.event(message))
            else:
                sequence.append(normalize.reply("quit", message))
        status = ctx.daemon.wait()
        return {"messages": sequence, "exit": status, "qmp socket left": ctx.daemon.qmp_path.exists()}


@dataclass
class Terminate(Step):
    """SIGTERM: events sent before the monitor closed, and the exit status (0)."""

    terminal = True

    def run(self, ctx: Context) -> Any:
        ctx.daemon.process.send_signal(signal.SIGTERM)
        try:
            messages = ctx.qmp.read_until_closed()
        except QMPClosed:
            messages = []
        events = [normalize.event(m) for m in ctx.qmp.take_events() + messages if "event" in m]
        status = ctx.daemon.wait()
        return {"events": events, "exit": status, "qmp socket left": ctx.daemon.qmp_path.exists()}


# -- NBD ----------------------------------------------------------------------------------


def _nbd_call(call: Callable[[], Any]) -> dict:
    try:
        return {"ok": call()}
    except nbd.Error as error:
        return {"errno": errno_name(error)}


@dataclass
class Connect(Step):
    """Open a libnbd connection `conn` to `export`; record what the server advertised."""

    conn: str
    export: str
    strict: bool = True
    expect_fail: bool = False

    def describe(self) -> str:
        return f"connect {self.conn} -> {self.export!r}"

    def run(self, ctx: Context) -> Any:
        try:
            handle = connect_unix(ctx.path(NBD_SOCKET), self.export, strict=self.strict)
        except nbd.Error as error:
            if ctx.is_reference:
                assert self.expect_fail, f"reference: connect to {self.export!r} failed: {error}"
            return {"connect": "failed"}
        if ctx.is_reference:
            assert not self.expect_fail, f"reference: connect to {self.export!r} unexpectedly worked"
        ctx.handles[self.conn] = handle
        return {
            "size": handle.get_size(),
            "read_only": handle.is_read_only(),
            "flush": handle.can_flush(),
            "fua": handle.can_fua(),
            "trim": handle.can_trim(),
            "zero": handle.can_zero(),
            "fast_zero": handle.can_fast_zero(),
            "df": handle.can_df(),
            "multi_conn": handle.can_multi_conn(),
            "cache": handle.can_cache(),
            "rotational": handle.is_rotational(),
            "block_size": [handle.get_block_size(kind) for kind in (nbd.SIZE_MINIMUM, nbd.SIZE_PREFERRED, nbd.SIZE_MAXIMUM)],
            "structured": handle.get_structured_replies_negotiated(),
            "allocation_context": handle.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION),
        }


@dataclass
class Disconnect(Step):
    conn: str

    def run(self, ctx: Context) -> Any:
        ctx.handles.pop(self.conn).shutdown()  # libnbd frees the handle when dropped
        return "closed"


@dataclass
class Write(Step):
    conn: str
    offset: int
    length: int
    seed: int = 1
    fua: bool = False

    def describe(self) -> str:
        return f"pwrite {self.conn} {self.offset}+{self.length}"

    def run(self, ctx: Context) -> Any:
        flags = nbd.CMD_FLAG_FUA if self.fua else 0
        data = pattern(self.seed, self.length)
        return _nbd_call(lambda: ctx.handles[self.conn].pwrite(data, self.offset, flags))


@dataclass
class Zero(Step):
    conn: str
    offset: int
    length: int
    no_hole: bool = False
    fast: bool = False

    def describe(self) -> str:
        return f"zero {self.conn} {self.offset}+{self.length} no_hole={self.no_hole}"

    def run(self, ctx: Context) -> Any:
        flags = (nbd.CMD_FLAG_NO_HOLE if self.no_hole else 0) | (nbd.CMD_FLAG_FAST_ZERO if self.fast else 0)
        return _nbd_call(lambda: ctx.handles[self.conn].zero(self.length, self.offset, flags))


@dataclass
class Trim(Step):
    conn: str
    offset: int
    length: int

    def describe(self) -> str:
        return f"trim {self.conn} {self.offset}+{self.length}"

    def run(self, ctx: Context) -> Any:
        return _nbd_call(lambda: ctx.handles[self.conn].trim(self.length, self.offset))


@dataclass
class Read(Step):
    conn: str
    offset: int
    length: int
    expect: str | None = None  # reference check, e.g. "zero*4096" or a pattern seed via Write

    def describe(self) -> str:
        return f"pread {self.conn} {self.offset}+{self.length}"

    def run(self, ctx: Context) -> Any:
        record = _nbd_call(lambda: digest(ctx.handles[self.conn].pread(self.length, self.offset)))
        if ctx.is_reference and self.expect is not None:
            assert record == {"ok": self.expect}, f"reference: {self.describe()} -> {record}"
        return record


def written(seed: int, length: int) -> str:
    """The digest a Read returns for data written by Write(seed=seed, length=length)."""
    return digest(pattern(seed, length))


@dataclass
class Flush(Step):
    conn: str

    def describe(self) -> str:
        return f"flush {self.conn}"

    def run(self, ctx: Context) -> Any:
        return _nbd_call(lambda: ctx.handles[self.conn].flush())


@dataclass
class Status(Step):
    """base:allocation extents as the client sees them."""

    conn: str
    offset: int
    length: int

    def describe(self) -> str:
        return f"block_status {self.conn} {self.offset}+{self.length}"

    def run(self, ctx: Context) -> Any:
        return _nbd_call(lambda: block_status(ctx.handles[self.conn], self.offset, self.length))


@dataclass
class Divergent(Step):
    """A step whose NBD errno deliberately differs between QSD and HighWater.

    The reference must give one of `reference`; the subject one of `subject` — unless the
    subject is QSD itself standing in for HighWater (suite validation), which then must
    behave as the reference. `why` says which rule HighWater follows instead of QSD.
    """

    step: Step
    reference: set[str]
    subject: set[str]
    why: str

    def describe(self) -> str:
        return f"{self.step.describe()} (divergent: {self.why})"

    def run(self, ctx: Context) -> Any:
        record = self.step.run(ctx)
        accepted = self.reference if ctx.is_reference or ctx.subject_is_qsd else self.subject
        assert record.get("errno") in accepted, f"{ctx.role}: {self.step.describe()} -> {record}, expected errno in {sorted(accepted)} ({self.why})"
        return {"errno": "as-expected"}


@dataclass
class AtLeastAllocated(Step):
    """An allocation report (`Status` or `HostMap`) where the subject may report data where
    the reference reports a hole: reporting data is always safe (NBD spec), and ranges the
    reference shows as data must be data for the subject too.

    Why it differs: QEMU's NBD server answers reads of zeroed ranges with hole chunks without
    reading the file; HighWater reads them, which puts their pages in the page cache, and ext4
    then reports a freshly zeroed (unwritten) range that is cached as data.
    """

    step: Step

    def describe(self) -> str:
        return f"{self.step.describe()} (subject may report more data)"

    def run(self, ctx: Context) -> Any:
        return {"at_least_allocated": data_ranges(self.step.run(ctx))}


def data_ranges(result: dict) -> list[list[int]]:
    """The [start, end) ranges an allocation report shows as data."""
    if "layout" in result:
        return [[start, end] for kind, start, end in result["layout"] if kind == "data"]
    ranges: list[list[int]] = []
    position = 0
    for length, flags in result["ok"]:
        if not flags & 1:  # not NBD_STATE_HOLE
            ranges.append([position, position + length])
        position += length
    return ranges


def covers(outer: list[list[int]], inner: list[list[int]]) -> bool:
    """Whether every range of `inner` lies within the union of `outer`."""
    return all(any(o_start <= start and end <= o_end for o_start, o_end in outer) for start, end in inner)


# -- tools and host files -------------------------------------------------------------------


@dataclass
class QemuIo(Step):
    """qemu-io commands over nbd+unix:// (exit status and output without timings)."""

    export: str
    commands: list[str]
    expect_status: int | None = 0
    unordered: bool = False  # aio_* completions print in completion order

    def describe(self) -> str:
        return f"qemu-io {self.export} {self.commands}"

    def run(self, ctx: Context) -> Any:
        status, output = qemu_io(ctx.uri(self.export), self.commands)
        if self.unordered:
            output = "\n".join(sorted(output.splitlines()))
        if ctx.is_reference and self.expect_status is not None:
            assert status == self.expect_status, f"reference: {self.describe()} -> {status}\n{output}"
        return {"status": status, "output": output.replace(str(ctx.workdir), "$DIR")}


@dataclass
class HostMap(Step):
    """Length and data/hole layout of an image file in the daemon's directory."""

    filename: str

    def describe(self) -> str:
        return f"host map {self.filename}"

    def run(self, ctx: Context) -> Any:
        path = ctx.path(self.filename)
        return {"size": path.stat().st_size, "layout": host_allocation_map(path)}


# -- running ---------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    args: list[str]
    steps: list[Step]
    files: dict[str, int] = field(default_factory=dict)  # sparse image files: name -> size
    # Commands run in the daemon's directory before it starts (e.g. qemu-img create).
    prepare: list[list[str]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.name


def run(scenario: Scenario, command: DaemonCommand, subject_is_qsd: bool) -> list[dict]:
    """Run a scenario against one daemon and return its step records."""
    workdir = make_workdir(command.role[:3])
    for name, size in scenario.files.items():
        with open(workdir / name, "wb") as image:
            image.truncate(size)
    for argv in scenario.prepare:
        result = run_tool(argv, cwd=workdir)
        assert result.returncode == 0, f"{argv}: {(result.stdout + result.stderr).decode(errors='replace')}"
    daemon = Daemon(command=command, args=scenario.args, workdir=workdir)
    ctx = Context(daemon=daemon, role=command.role, subject_is_qsd=subject_is_qsd)
    records: list[dict] = []
    try:
        daemon.start()
        for index, step in enumerate(scenario.steps):
            try:
                result = step.run(ctx)
            except AssertionError as error:
                raise AssertionError(f"[{command.role}] step {index} {step.describe()}: {error}") from None
            result = normalize.implicit_node_names(normalize.replace_strings(result, str(workdir), "$DIR"))
            record: dict[str, Any] = {"step": step.describe(), "result": result}
            if not step.terminal:
                if step.settle_event:
                    ctx.qmp.events.append(ctx.qmp.wait_event(step.settle_event))
                ctx.qmp.sync()
                if ctx.events_before_reply:
                    record["events_before_reply"] = [normalize.event(e) for e in ctx.events_before_reply]
                    ctx.events_before_reply = []
                after = [normalize.event(e) for e in ctx.qmp.take_events()]
                if after:
                    record["events"] = normalize.implicit_node_names(normalize.replace_strings(after, str(workdir), "$DIR"))
            records.append(record)
            if step.terminal:
                break
        else:
            for handle in ctx.handles.values():
                handle.shutdown()
            ctx.handles.clear()
            daemon.stop()
        dump = os.environ.get("HW_E2E_RECORDS")
        if dump:  # keep the records for reading (debugging a difference)
            Path(dump).mkdir(parents=True, exist_ok=True)
            with open(Path(dump) / f"{scenario.name}.{command.role}.json", "w") as out:
                json.dump(records, out, indent=1)
        return records
    except Exception:
        log = daemon.log
        if log:
            print(f"--- {command.role} daemon log ---\n{log}")
        raise
    finally:
        ctx.handles.clear()
        daemon.cleanup()


def assert_same(reference: list[dict], subject: list[dict]) -> None:
    """Compare step by step and report the first difference readably."""
    for index, (expected, actual) in enumerate(zip(reference, subject)):
        wanted = expected["result"].get("at_least_allocated") if isinstance(expected["result"], dict) else None
        if wanted is not None:
            have = actual["result"].get("at_least_allocated", [])
            assert covers(have, wanted), (
                f"step {index} ({expected['step']}): subject reports as hole what the reference reports as data\n"
                f"  reference data: {wanted}\n  subject data:   {have}")
            continue
        if expected != actual:
            raise AssertionError(
                f"step {index} ({expected['step']}) differs\n"
                f"  reference: {json.dumps(expected, sort_keys=True)}\n"
                f"  subject:   {json.dumps(actual, sort_keys=True)}"
            )
    assert len(reference) == len(subject), f"reference ran {len(reference)} steps, subject {len(subject)}"
