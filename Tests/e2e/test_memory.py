"""Memory the daemon keeps for NBD clients: after large writes, idle connections must not
pin their last request's buffers (qemu-storage-daemon allocates per request and keeps next
to nothing). What clients that left freed may stay in HighWater's heap for reuse
(`StorageDaemon.keepIOBuffersInTheHeap`), but no more than they held while idle.
"""

from __future__ import annotations

import time

import pytest

from harness.nbdio import connect_unix

MiB = 1024 * 1024
CONNECTIONS = 50


def resident_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def memory_profile(start_daemon, any_command):
    """(role, RSS growth with the clients connected and idle, growth after they left), MiB."""
    args = [
        "--blockdev", "driver=file,node-name=file0,filename={dir}/disk.img",
        "--nbd-server", "addr.type=unix,addr.path={dir}/nbd.sock",
        "--export", "type=nbd,id=exp0,node-name=file0,name=disk0,writable=on",
    ]
    daemon = start_daemon(any_command, args, files={"disk.img": 256 * MiB})
    socket = daemon.workdir / "nbd.sock"
    warmup = connect_unix(socket, "disk0")
    warmup.pwrite(b"\x01" * MiB, 0)
    warmup.shutdown()
    time.sleep(0.3)
    before = resident_mib(daemon.process.pid)
    clients = [connect_unix(socket, "disk0") for _ in range(CONNECTIONS)]
    for index, client in enumerate(clients):
        client.pwrite(bytes([index]) * MiB, index * MiB)
    time.sleep(0.3)
    connected = resident_mib(daemon.process.pid) - before
    for client in clients:
        client.shutdown()
    time.sleep(0.5)
    left = resident_mib(daemon.process.pid) - before
    return any_command.role, connected, left


def test_idle_connections_and_departed_clients_keep_little(memory_profile) -> None:
    role, connected, left = memory_profile
    # 1 MiB written per connection; keeping that buffer would be +50 MiB and more.
    assert connected < 0.5 * CONNECTIONS, f"{role}: +{connected:.1f} MiB with {CONNECTIONS} idle clients"
    assert left < 0.5 * CONNECTIONS, f"{role}: +{left:.1f} MiB after the clients left"
