"""Issue 23 item 5, the mechanism alone: a child started with ``die_with_parent`` ends when its parent is
killed with SIGKILL (no exit hook runs), one started without it lives on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
PARENT = """
import subprocess, sys
from seqflow.core.processes import die_with_parent
child = subprocess.Popen(["sleep", "600"], preexec_fn=die_with_parent if sys.argv[1] == "yes" else None)
print(child.pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("dies", [True, False])
def test_child_started_with_die_with_parent_ends_after_kill_9_of_its_parent(dies: bool) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, "yes" if dies else "no"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )
    child = psutil.Process(int(parent.stdout.readline()))
    parent.kill()
    parent.wait(timeout=30)
    try:
        child.wait(timeout=10)
        ended = True
    except psutil.TimeoutExpired:
        ended = False
        child.kill()
    assert ended == dies
