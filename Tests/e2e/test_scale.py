"""Thin provisioning at CI scale: `scripts/scale-run` with 150 file volumes in one daemon and
one controller, a few seconds of write bursts to random volumes, then a few seconds idle.

HighWater-only (file volumes, held writes and the controller are extensions). The full-size
run (500 volumes, longer bursts) is a benchmark: see BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import default_subject
from harness.daemon import DaemonCommand

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "scale-run"


def test_150_volumes_are_all_extended_in_time_and_idle_costs_nothing(subject_command: DaemonCommand) -> None:
    highwater = subject_command.argv[0]
    if os.path.basename(highwater) != "highwater":
        highwater = default_subject().split()[0]
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--highwater", highwater, "--volumes", "150",
         "--bursts", "3", "--burst-volumes", "50", "--burst-mib", "3", "--pause", "0.1",
         # Generous for a busy 2-core box with a debug build; a held write waits for its
         # volume's extension, never for the 60 s hold timeout.
         "--held-bound", "10", "--settle-timeout", "30",
         # Busy polling shows as hundreds of wakeups per second; libdispatch's workqueue
         # monitor wakes each process once a second.
         "--idle-settle", "1", "--idle-seconds", "3", "--idle-cpu-bound", "0.15", "--idle-wakeups-bound", "5",
         "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.stdout, run.stderr
    results = json.loads(run.stdout.splitlines()[-1])
    print(f"\nscale: {json.dumps(results)}")
    assert results["ok"], results.get("failure")
    assert run.returncode == 0, run.stderr
    # Every burst's writes completed, and the volumes written past their threshold grew.
    assert results["writes"] == results["written_mib"] > 0
    assert results["volumes_extended"] == results["volumes_written"] > 0
    assert results["extensions"] >= results["volumes_written"]
    # Growth beyond what the writes need only from rare races (a stall reported just after
    # the growth that resolved it), never systematically.
    assert results["needless_extensions"] <= max(2, results["extensions"] // 10)
    for role in ("daemon", "controller"):
        assert results["idle"][role]["cpu_seconds"] <= 0.15
