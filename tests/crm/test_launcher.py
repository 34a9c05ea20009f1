"""`make run`'s launcher: a process that dies is started again; one that keeps dying stops all, saying why."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

SUPERVISE = """
import sys
from crm.launch import supervise
sys.exit(supervise({name: [sys.executable, "-c", code] for name, code in %r.items()}, {}))
"""


def launcher(commands: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SUPERVISE % commands], cwd=Path(settings.BASE_DIR), stdout=subprocess.PIPE, text=True
    )


def test_a_process_that_dies_is_started_again(tmp_path):
    starts = tmp_path / "starts"
    # The "worker" dies on its first start and stays up on its second.
    worker = (
        f"import pathlib, sys, time; p = pathlib.Path({str(starts)!r}); n = len(p.read_text()) if p.exists() else 0;"
        "p.write_text('x' * (n + 1)); sys.exit(1) if n == 0 else time.sleep(60)"
    )
    proc = launcher({"worker": worker, "web": "import time; time.sleep(60)"})
    deadline = time.monotonic() + 20
    while not (starts.exists() and len(starts.read_text()) == 2) and time.monotonic() < deadline:
        time.sleep(0.1)

    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert len(starts.read_text()) == 2
    assert "the worker exited (code 1); starting it again" in out
    assert proc.returncode == 0


def test_a_process_that_keeps_dying_stops_everything_and_says_which():
    proc = launcher({"beat": "import sys; sys.exit(2)", "web": "import time; time.sleep(60)"})

    out, _ = proc.communicate(timeout=60)

    assert "the beat keeps exiting (code 2); stopping Baton" in out
    assert proc.returncode == 1
