"""bench/replay.py end to end on a short simulated stretch: scoring, feedback, weekly retraining."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_replay_retrains_from_feedback_and_reports_per_week():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "replay.py"), "--weeks", "2", "--simulated"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    run = next(line for line in lines if "run 1: succeeded, version v2" in line)
    table = lines[lines.index(next(line for line in lines if line.startswith("week"))) + 1 :]
    assert len(table) == 2
    # the second week is served by the retrained model when the policy promoted it
    assert table[1].split()[3] == ("v2" if run.endswith("promoted") else "v1")
    for row in table:
        ap_retrained, ap_never = float(row.split()[4]), float(row.split()[5])
        assert 0 < ap_retrained <= 1 and 0 < ap_never <= 1
