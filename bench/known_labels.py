"""Do labels known early help? The point-in-time known-fraud features on the Handbook's protocol.

The Handbook's import makes every label known at its 7-day delay, where the known-fraud features of
the delay period (`features.KNOWN_FRAUD_FEATURES`) are all 0. Here the same history is replayed as
if every fraud had been reported through feedback `--after` days after its transaction (labels
known at tx time + N days), and the model is trained and tested on the Handbook's ch.3 protocol
(`bench/quality.py`: train a week, 7-day delay, test a week; threshold from the fold one week
earlier) with and without those features:

    .venv/bin/python bench/known_labels.py [--after 1 2] [--validation]

`--validation` adds the mean over the validation folds (07-04, 07-11, 07-18).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quality import DATA, METRICS, TEST_WINDOWS, VALIDATION_STARTS  # noqa: E402
from fraudapp.ml import features  # noqa: E402
from fraudapp.ml.data import History, read_history  # noqa: E402
from fraudapp.ml.training import DEFAULT_PARAMS, Windows, run_protocol  # noqa: E402

FEEDBACK_RANK = 1  # models.LABEL_PRIORITY["feedback"]
WITHOUT = tuple(name for name in features.FEATURES if name not in features.KNOWN_FRAUD_FEATURES)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the Handbook raw CSV (.csv.gz)")
    parser.add_argument("--after", type=float, nargs="+", default=[2.0, 1.0], help="days")
    parser.add_argument("--validation", action="store_true", help="also the validation folds")
    return parser.parse_args()


def with_feedback_after(history: History, days: float | None) -> History:
    """The history with its frauds reported `days` after each transaction (None: as imported,
    known at the delay), its feature matrix computed once."""
    frauds = np.flatnonzero(history.label == 1)
    events = None
    if days is not None:
        events = features.LabelEvents(
            frauds,
            history.terminal[frauds],
            history.customer[frauds],
            history.time[frauds],
            history.time[frauds] + int(days * features.DAY),
            np.ones(len(frauds), np.int64),
            np.full(len(frauds), FEEDBACK_RANK),
        )
    replayed = History(
        history.time, history.customer, history.terminal, history.amount, history.label, events
    )
    x = replayed.features()
    replayed.features = lambda: x  # every protocol run reuses it
    return replayed


def metrics(history: History, names: tuple[str, ...], starts) -> dict:
    """The test metrics on one window, or their mean over several."""
    runs = [
        run_protocol(
            history, Windows(start), base_params=DEFAULT_PARAMS, feature_names=names
        ).metrics
        for start in starts
    ]
    return {key: float(np.mean([run[key] for run in runs])) for key in METRICS}


def table(title: str, results: dict) -> None:
    """A markdown table of the results."""
    print(f"\n{title}\n")
    print(f"| {'labels known':<32} | {'features':<28} | AUC   | AP    | CP@100 | F1    |")
    print(f"|{'-' * 34}|{'-' * 30}|-------|-------|--------|-------|")
    for (known, names), m in results.items():
        cells = " | ".join(f"{m[key]:.3f}" for key in METRICS)
        print(f"| {known:<32} | {names:<28} | {cells} |")


def main() -> None:
    """Run the comparison and print the tables."""
    args = parse_args()
    if not args.data.exists():
        sys.exit(f"Handbook data not found at {args.data} (../shared is absent); see --help")
    started = time.perf_counter()
    _, raw = read_history(args.data)
    folds = {"test week 2018-08-08 .. 08-14": [TEST_WINDOWS.train_start]}
    if args.validation:
        folds["validation folds (mean of 3)"] = list(VALIDATION_STARTS)
    cases = [("at the delay (Handbook import)", None)]
    cases += [(f"{days:g} day(s) after the transaction", days) for days in args.after]
    histories = {known: with_feedback_after(raw, days) for known, days in cases}
    without = f"without ({len(WITHOUT)})"
    with_them = f"with known frauds ({len(features.FEATURES)})"
    for fold, starts in folds.items():
        results = {(cases[0][0], without): metrics(histories[cases[0][0]], WITHOUT, starts)}
        for known, _ in cases:
            results[(known, with_them)] = metrics(histories[known], features.FEATURES, starts)
        table(f"{fold} (train a week, 7-day delay, test a week)", results)
    print(f"\nrows: {len(raw):,}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
