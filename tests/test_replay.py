"""bench/replay.py end to end on short simulated stretches: scoring, feedback, weekly retraining,
and the recovery from a new fraud pattern."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _replay(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "replay.py"), "--no-shadow", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def _table(lines: list[str], weeks: int) -> list[list[str]]:
    first = lines.index(next(line for line in lines if line.startswith("week"))) + 1
    return [line.split() for line in lines[first : first + weeks]]


@pytest.mark.slow
def test_replay_retrains_from_feedback_and_reports_per_week():
    lines = _replay("--weeks", "2", "--simulated", "--customers", "500")
    run = next(line for line in lines if "run 1: succeeded, version v2" in line)
    chosen = next(line for line in lines if line.startswith("  run 1: v2 kept "))
    tried = chosen.split("(validation AP: ")[1].split(")")[0].split(", ")
    assert [trial.split()[0] for trial in tried] == [
        f"{days}d/{variant}" for days in (14, 28, 56) for variant in ("default", "wider")
    ]
    table = _table(lines, 2)
    # the second week is served by the retrained model when the policy promoted it
    assert table[1][3] == ("v2" if run.endswith("promoted") else "v1")
    for row in table:
        ap_never, ap_weekly = float(row[4]), float(row[5])
        assert 0 < ap_weekly <= 1 and 0 < ap_never <= 1
    assert table[0][4] == table[0][5]  # v1 served the first week: the same scores


@pytest.mark.slow
def test_after_a_new_fraud_pattern_weekly_retraining_recovers_and_v1_does_not():
    lines = _replay(
        "--scenario",
        "new-pattern",
        "--weeks",
        "5",
        "--drift-week",
        "2",
        "--delay",
        "1",
        "--customers",
        "600",
    )
    table = _table(lines, 5)
    never = [float(row[4]) for row in table]
    weekly = [float(row[5]) for row in table]
    # after the drift, retraining beats v1 in every week, by far at the end, where v1 has lost
    # much of its first week's AP
    assert all(w > n for w, n in zip(weekly[2:], never[2:], strict=True))
    assert weekly[4] > never[4] + 0.1 and never[4] < never[0] - 0.05
    assert any(line.strip().startswith("weekly  pre-drift AP") for line in lines)
