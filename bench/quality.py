"""Model quality on the Handbook's ch.3 benchmark protocol, beside the Handbook's published results.

Trains on 2018-07-25 .. 07-31, leaves the 7-day label delay, tests on 08-08 .. 08-14 (known
compromised customers removed), with the decision threshold chosen on the validation fold one week
earlier. Two models:

- LightGBM with its default parameters on the Handbook's 15 features (the baseline);
- our model: `FEATURES` with `DEFAULT_PARAMS`, exactly as `flask train` builds it (`run_protocol`).

    .venv/bin/python bench/quality.py [--data PATH] [--validation]

`--validation` also prints each model's mean over the validation folds (the same protocol from
07-04, 07-11 and 07-18), where the features and parameters were chosen. Needs
../shared/data/handbook; exits with a message when it is absent. Data and published results:
Le Borgne et al., "Reproducible Machine Learning for Credit Card Fraud Detection — Practical
Handbook" (ULB MLG and Worldline).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraudapp.ml import features  # noqa: E402
from fraudapp.ml.data import read_history  # noqa: E402
from fraudapp.ml.training import (  # noqa: E402
    DEFAULT_PARAMS,
    LIGHTGBM_DEFAULTS,
    History,
    Windows,
    run_protocol,
)

DATA = ROOT.parent / "shared/data/handbook/transactions_raw_2018-04-01_to_2018-08-31.csv.gz"
TEST_WINDOWS = Windows(dt.date(2018, 7, 25))
VALIDATION_STARTS = (dt.date(2018, 7, 4), dt.date(2018, 7, 11), dt.date(2018, 7, 18))

# Handbook ch.3 "BaselineModeling", test week 2018-08-08 .. 08-14 (from the data README).
PUBLISHED = (
    ("logistic regression", 0.871, 0.606, 0.291),
    ("decision tree (depth 2)", 0.763, 0.496, 0.241),
    ("random forest", 0.867, 0.658, 0.287),
    ("XGBoost", 0.862, 0.639, 0.273),
)
MODELS = {
    "LightGBM defaults, 15 Handbook features": {
        "base_params": LIGHTGBM_DEFAULTS,
        "feature_names": features.HANDBOOK_FEATURES,
    },
    f"ours: {len(features.FEATURES)} features, DEFAULT_PARAMS": {
        "base_params": DEFAULT_PARAMS,
        "feature_names": features.FEATURES,
    },
}
METRICS = ("auc", "ap", "cp_at_100", "f1")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the Handbook raw CSV (.csv.gz)")
    parser.add_argument(
        "--validation",
        action="store_true",
        help="also print the mean over the validation folds (07-04, 07-11, 07-18)",
    )
    return parser.parse_args()


def measure(history: History, windows: Windows, model: dict) -> dict:
    """The test metrics of one model on one protocol window."""
    return run_protocol(history, windows, random_state=0, **model).metrics


def validation_mean(history: History, model: dict) -> dict:
    """The metrics of one model averaged over the validation folds."""
    runs = [measure(history, Windows(start), model) for start in VALIDATION_STARTS]
    return {key: float(np.mean([run[key] for run in runs])) for key in METRICS}


HEADER = ("model", "AUC", "AP", "CP@100", "F1 at threshold", "source")
WIDTHS = (42, 5, 5, 6, 15, 9)


def line(cells: tuple[str, ...]) -> str:
    """One markdown table line, cells padded to the column widths."""
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, WIDTHS, strict=True)) + " |"


def row(name: str, values: tuple, source: str) -> str:
    """One model's line; missing values print as a dash."""
    numbers = tuple(f"{v:.3f}" if v is not None else "-" for v in values)
    return line((name, *numbers, source))


def print_table(title: str, results: dict, with_published: bool) -> None:
    """A markdown table of the measured models, with the published rows when asked."""
    print(f"\n{title}\n")
    print(line(HEADER))
    print("|" + "|".join("-" * (w + 2) for w in WIDTHS) + "|")
    if with_published:
        for name, auc, ap, cp in PUBLISHED:
            print(row(name, (auc, ap, cp, None), "published"))
    for name, metrics in results.items():
        print(row(name, tuple(metrics[key] for key in METRICS), "measured"))


def main() -> None:
    """Run the benchmark and print the tables."""
    args = parse_args()
    if not args.data.exists():
        sys.exit(f"Handbook data not found at {args.data} (../shared is absent); see --help")
    started = time.perf_counter()
    _, history = read_history(args.data)
    test = {name: measure(history, TEST_WINDOWS, model) for name, model in MODELS.items()}
    print_table("Test week 2018-08-08 .. 08-14 (train 07-25 .. 07-31, delay 7 days)", test, True)
    if args.validation:
        validation = {name: validation_mean(history, model) for name, model in MODELS.items()}
        print_table("Validation folds (train from 07-04, 07-11, 07-18): mean", validation, False)
    print(
        f"\nthreshold: F1-optimal on the fold one week earlier; rows: {len(history):,}; "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(
        "Handbook ch.5 (weekly rolling test folds, another protocol): tuned XGBoost "
        "AUC 0.869, AP 0.687, CP@100 0.303 (published)"
    )


if __name__ == "__main__":
    main()
