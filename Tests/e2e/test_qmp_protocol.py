"""QMP protocol edge cases, subject compared with the reference wherever QSD is deterministic.

One daemon per implementation for the whole module (three monitors: the harness's primary
one and two more); every test opens fresh connections (a socket monitor serves one client
at a time, the next one is served when the previous disconnects).
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from harness import normalize
from harness.daemon import Daemon, monitor_args
from harness.qmp import QMPClient, QMPTimeout

SYNC_ID = "__sync__"
SYNC = json.dumps({"execute": "query-block-exports", "id": SYNC_ID}).encode()


@pytest.fixture(scope="module")
def daemons(module_daemons, reference_command, subject_command) -> dict[str, Daemon]:
    args = [
        *monitor_args("m1", "{dir}/m1.sock"),
        *monitor_args("m2", "{dir}/m2.sock"),
        "--blockdev", "driver=null-co,node-name=null0,size=1048576,read-zeroes=on",
        "--nbd-server", "addr.type=unix,addr.path={dir}/nbd.sock",
    ]
    started = {
        "reference": module_daemons(reference_command, args),
        "subject": module_daemons(subject_command, args),
    }
    yield started
    for daemon in started.values():
        assert daemon.alive(), f"{daemon.command.role} daemon died during the protocol tests:\n{daemon.log}"


def connect(daemon: Daemon, monitor: str = "m1", negotiate: bool = False) -> QMPClient:
    return daemon.connect(negotiate=negotiate, path=daemon.workdir / f"{monitor}.sock")


def canonical(message: dict) -> dict:
    """A message as compared: version numbers/package and event timestamps dropped."""
    if "QMP" in message:
        greeting = dict(message["QMP"])
        greeting["version"] = normalize.version(greeting["version"])
        return {"QMP": greeting}
    if "event" in message:
        return normalize.event(message)
    if isinstance(message.get("return"), dict) and "qemu" in message["return"]:
        return {**message, "return": normalize.version(message["return"])}
    return message


def check_framing(raw: bytes) -> None:
    """Every server message is one line of pure ASCII JSON terminated by CRLF."""
    assert raw.endswith(b"\r\n"), f"not CRLF-terminated: {raw[-20:]!r}"
    assert b"\r\n" not in raw[:-2] and b"\n" not in raw[:-2], f"message spans lines: {raw[:200]!r}"
    assert all(byte < 0x80 for byte in raw), f"non-ASCII output: {raw[:200]!r}"


def exchange(client: QMPClient, payload: bytes, timeout: float = 10.0) -> list[dict]:
    """Send raw bytes, then a sync command; return every message before the sync reply."""
    client.send_bytes(payload)
    client.send_bytes(SYNC)
    messages = []
    while True:
        received = client.receive(timeout)
        check_framing(received.raw)
        if received.message.get("id") == SYNC_ID:
            return messages
        messages.append(canonical(received.message))


def both(daemons: dict[str, Daemon], action) -> dict[str, object]:
    return {role: action(daemon) for role, daemon in daemons.items()}


def assert_equal(results: dict[str, object], what: str) -> None:
    assert results["subject"] == results["reference"], (
        f"{what}\n  reference: {results['reference']!r}\n  subject:   {results['subject']!r}"
    )


# -- greeting and negotiation ------------------------------------------------------------------


def test_greeting(daemons) -> None:
    def greet(daemon: Daemon):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(daemon.workdir / "m1.sock"))
            sock.settimeout(10)
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                assert chunk, "closed before the greeting"
                data += chunk
        check_framing(data)
        message = json.loads(data)
        assert set(message) == {"QMP"} and set(message["QMP"]) == {"version", "capabilities"}, message
        return canonical(message)

    results = both(daemons, greet)
    assert results["reference"]["QMP"]["capabilities"] == ["oob"]
    assert_equal(results, "greeting")


NEGOTIATION = [
    b'{"execute": "query-block-exports", "id": 1}',
    b'{"execute": "qmp_capabilities", "arguments": {"enable": ["foo"]}, "id": 2}',
    b'{"execute": "qmp_capabilities", "arguments": {"enable": "oob"}, "id": 3}',
    b'{"execute": "qmp_capabilities", "arguments": {"bogus": true}, "id": 4}',
    b'{"execute": "qmp_capabilities", "arguments": null, "id": 5}',
    b'{"exec-oob": "qmp_capabilities", "id": 6}',
    b'{"execute": "no-such-command", "id": 7}',
    b'{"execute": "query-block-exports", "id": 8}',  # still negotiating after the failures
    b'{"execute": "qmp_capabilities", "arguments": {"enable": []}, "id": 9}',
    b'{"execute": "qmp_capabilities", "id": 10}',
    b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 11}',
    b'{"execute": "query-block-exports", "id": 12}',
    b'{"exec-oob": "query-block-exports", "id": 13}',  # oob not enabled on this connection
]

NEGOTIATION_OOB = [
    b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 1}',
    b'{"exec-oob": "query-block-exports", "id": 2}',
    b'{"exec-oob": "no-such-command", "id": 3}',
    b'{"exec-oob": "query-block-exports", "execute": "query-block-exports", "id": 4}',
    b'{"exec-oob": 5, "id": 5}',
    b'{"execute": "query-block-exports", "id": 6}',
]


@pytest.mark.parametrize("inputs", [NEGOTIATION, NEGOTIATION_OOB], ids=["plain", "oob"])
def test_negotiation(daemons, inputs) -> None:
    def run(daemon: Daemon):
        with connect(daemon) as client:
            return [exchange(client, payload) for payload in inputs]

    results = both(daemons, run)
    assert_equal(results, "negotiation replies")


def test_commands_refused_before_negotiation(daemons) -> None:
    with connect(daemons["reference"]) as client:
        replies = exchange(client, NEGOTIATION[0])
    assert replies[0]["error"]["class"] == "CommandNotFound", replies


def test_events_only_after_negotiation_and_to_every_monitor(daemons) -> None:
    """Events go to every monitor in command mode and never to one still negotiating."""

    def run(daemon: Daemon):
        commands = connect(daemon, "m1", negotiate=True)
        listener = connect(daemon, "m2", negotiate=False)
        with commands, listener:
            add = {"type": "nbd", "id": "ev0", "node-name": "null0"}
            commands.execute("block-export-add", add)
            commands.execute("block-export-del", {"id": "ev0"})
            first = [normalize.event(e) for e in commands.take_events()]
            # The negotiating listener must not have received the event.
            before = exchange(listener, b"")
            listener.send_bytes(b'{"execute": "qmp_capabilities"}')
            assert listener.receive_reply().message == {"return": {}}
            commands.execute("block-export-add", add)
            commands.execute("block-export-del", {"id": "ev0"})
            commands.sync()
            listener.sync()
            return {
                "first": first,
                "listener before negotiation": before,
                "commands": [normalize.event(e) for e in commands.take_events()],
                "listener": [normalize.event(e) for e in listener.take_events()],
            }

    results = both(daemons, run)
    assert results["reference"]["listener"] == results["reference"]["commands"] != []
    assert_equal(results, "event delivery")


def test_one_client_per_monitor(daemons) -> None:
    """A second client of a monitor gets its greeting only once the first disconnects."""

    def run(daemon: Daemon):
        first = connect(daemon, "m1", negotiate=True)
        second = QMPClient.connect_unix(str(daemon.workdir / "m1.sock"), read_greeting=False)
        try:
            try:
                early = second.receive(0.5).message
            except QMPTimeout:
                early = None
            first.close()
            greeting = canonical(second.receive().message)
            second.negotiate()
            second.sync()
            return {"early": early, "greeting": greeting}
        finally:
            first.close()
            second.close()

    results = both(daemons, run)
    assert results["reference"]["early"] is None
    assert_equal(results, "second client")


# -- ids, malformed input ----------------------------------------------------------------------

IDS = [
    b'1', b'0', b'-1', b'"text"', b'""', b'null', b'true', b'false', b'[1, "two", [3]]', b'{"a": {"b": null}}',
    b'12345678901234567890', b'1.5e3', b'-0.0', b'0.5', b"'single'", b"'it\\'s'",
    b'"\\u00e9\\ud83d\\ude00"', b'"\xc3\xa9\xf0\x9f\x98\x80"', b'"\\/\\b\\f\\n\\r\\t\\"\\\\\x7f"', b'"\\u0000"',
    b'"' + b"i" * 4096 + b'"',
]


def test_id_echo(daemons) -> None:
    def run(daemon: Daemon):
        with connect(daemon, negotiate=True) as client:
            out = []
            for raw_id in IDS:
                for command in (b"query-block-exports", b"no-such-command"):
                    out.append(exchange(client, b'{"execute": "' + command + b'", "id": ' + raw_id + b"}"))
            return out

    results = both(daemons, run)
    assert all(len(replies) == 1 and "id" in replies[0] for replies in results["reference"])
    assert_equal(results, "id echo")


MALFORMED = [
    b'{"execute":"query-block-exports",}',
    b"{bad json}",
    b"[1,2,3]",
    b'"hello"',
    b"42",
    b"null",
    b"true",
    b"{}",
    b'{"id":7}',
    b'{"execute":42,"id":6}',
    b'{"execute":null,"id":6}',
    b'{"execute":"query-block-exports","bogus":1,"id":3}',
    b'{"execute":"query-block-exports","arguments":[1],"id":4}',
    b'{"execute":"query-block-exports","arguments":null,"id":4}',
    b'{"execute":"query-block-exports","arguments":"x","id":4}',
    b'{"execute":"query-block-exports","exec-oob":"query-block-exports","id":"both"}',
    b'{"execute":"query-block-exports","control":{"run-oob":true},"id":5}',
    b'{"exec-oob":"query-block-exports","id":8}',
    b'{"execute":"nonexistent-cmd","id":"x"}',
    b'{"execute":"","id":"x"}',
    b'{"execute":"query-block-exports","id":1,"id":2}',
    b'{"execute":"query-block-exports","id":"\xff"}',
    b'{"execute":"query-block-exports","id":"a\x00b"}',
    b'{"execute":"query-block-exports","id":"\\ud800"}',
    b'{"execute":"query-block-exports","id":"\\x41"}',
    b'{"execute":"query-block-exports","id":tru}',
    b'{"execute":"query-block-exports","id":0x10}',
    b'{"execute":"query-block-exports","id":01}',
    b'{"execute":"query-block-exports","id":-}',
    b'{"execute":"query-block-exports","id":.5}',
    b'{"execute":"query-block-exports","id":1.}',
    b'{"execute":"query-block-exports","id":+1}',
    b'{"execute":"query-block-exports" "id":1}',
    b'{"execute":"query-block-exports",,"id":1}',
    b'{"execute" "query-block-exports"}',
    b'{1:2}',
    b'{"execute":"query-block-exports"}}',
    b']',
    b"\x01",
    b'{"execute": "query-ver\x01',
    b"\xff",
    b"   \r\n\t  ",
    b'{"execute":"query-block-exports","id":1}{"execute":"query-block-exports","id":2}',
    b'{"execute":"query-block-exports",\n"id":\n3}\n\n',
    b'[' * 1024 + b']' * 1024,  # at the nesting limit: a (non-object) value
]


@pytest.mark.parametrize("payload", MALFORMED, ids=lambda p: repr(p[:40]))
def test_malformed_input(daemons, payload) -> None:
    def run(daemon: Daemon):
        with connect(daemon, negotiate=True) as client:
            return exchange(client, payload)

    assert_equal(both(daemons, run), f"replies to {payload[:80]!r}")


def test_incomplete_object_waits(daemons) -> None:
    """A partial object produces nothing until completed, across separate writes."""

    def run(daemon: Daemon):
        with connect(daemon, negotiate=True) as client:
            client.send_bytes(b'{"execute": "query-block-')
            try:
                early = client.receive(0.5).message
            except QMPTimeout:
                early = None
            time.sleep(0.05)
            client.send_bytes(b'exports", "id"')
            client.send_bytes(b": 1}")
            return {"early": early, "reply": client.receive().message}

    results = both(daemons, run)
    assert results["reference"]["early"] is None
    assert_equal(results, "split object")


# -- abusive input: the daemon survives, other monitors keep working ------------------------------


def other_monitor_works(daemon: Daemon) -> None:
    with connect(daemon, "m2", negotiate=True) as other:
        assert other.execute("query-block-exports") == []


def test_deep_nesting(daemons) -> None:
    """Nesting beyond QEMU's limit (1024) is an error; the connection recovers."""

    def run(daemon: Daemon):
        with connect(daemon, negotiate=True) as client:
            messages = exchange(client, b"[" * 5000 + b"]" * 5000, timeout=30)
            assert messages, "no error for excessive nesting"
            assert all(set(m) == {"error"} for m in messages), messages[:5]
            after = exchange(client, b'{"execute": "query-block-exports", "id": "after"}')
        other_monitor_works(daemon)
        # The exact cascade of follow-up errors is a QEMU parser artefact; the first
        # error's text and the recovery are what clients see.
        return {"first": messages[0], "after": after}

    assert_equal(both(daemons, run), "deep nesting")


def test_deep_nesting_object(daemons) -> None:
    def run(daemon: Daemon):
        with connect(daemon, negotiate=True) as client:
            messages = exchange(client, b'{"a":' * 2000 + b"1" + b"}" * 2000, timeout=30)
            assert messages and all(set(m) == {"error"} for m in messages), messages[:5]
            after = exchange(client, b'{"execute": "query-block-exports", "id": "after"}')
        other_monitor_works(daemon)
        return {"first": messages[0], "after": after}

    assert_equal(both(daemons, run), "deep object nesting")


HUGE = 10 * 1024 * 1024


def huge_argument(size: int) -> bytes:
    return b'{"execute": "query-block-exports", "arguments": {"big": "' + b"x" * size + b'"}, "id": "huge"}'


def test_huge_input_reference_text(daemons) -> None:
    """The reply text for a large unexpected argument (QSD parses ~5 s/MiB: kept small)."""

    def run(daemon: Daemon):
        with connect(daemon, negotiate=True) as client:
            return exchange(client, huge_argument(64 * 1024), timeout=60)

    assert_equal(both(daemons, run), "large argument")


def test_huge_input_subject(daemons, subject_is_qsd) -> None:
    """A 10 MiB string (and a 1 MiB id echoed back) on the subject; it keeps serving.

    QSD's parser slows down quadratically (~5 s for 1 MiB), so when QSD stands in as the
    subject (validating the suite) the inputs are 16 times smaller.
    """
    daemon = daemons["subject"]
    scale = 16 if subject_is_qsd else 1
    with connect(daemon, negotiate=True) as client:
        started = time.monotonic()
        replies = exchange(client, huge_argument(HUGE // scale), timeout=120)
        assert replies == [{"id": "huge", "error": {"class": "GenericError", "desc": "Parameter 'big' is unexpected"}}]
        big_id = "y" * (1024 * 1024 // scale)
        replies = exchange(client, json.dumps({"execute": "query-block-exports", "id": big_id}).encode(), timeout=120)
        assert replies == [{"return": [], "id": big_id}]
        print(f"huge input handled in {time.monotonic() - started:.1f}s")
        assert exchange(client, b'{"execute": "query-block-exports", "id": 1}') == [{"return": [], "id": 1}]
    other_monitor_works(daemon)


def test_client_disconnects_mid_command(daemons) -> None:
    """Half a command, then the client goes away; the monitor serves the next client."""

    def run(daemon: Daemon):
        client = connect(daemon, negotiate=True)
        client.send_bytes(b'{"execute": "query-block-exp')
        client.close()
        with connect(daemon, negotiate=True) as again:
            return exchange(again, b'{"execute": "query-block-exports", "id": 1}')

    assert_equal(both(daemons, run), "after an abandoned command")
