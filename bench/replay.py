"""Does retraining on feedback help? Replay a stretch of transactions day by day through the app.

Before the stretch: the earlier history is imported and a first model (v1) is trained and served.
Then, day by day: the day's transactions are scored through the JSON API (with consent, so they
join the history); the true labels of the transactions scored `--delay` days earlier arrive as user
feedback, each "known" `--delay` days after its transaction (simulated time: point-in-time
features see it from then on), before the day is scored; at the end of every
week the trainer works a scheduled run (it chooses its training window and parameters; the
promotion policy applies). Per week it prints the AP of three ways of serving, all on the very
same transactions:

* never retrained: v1, scored on the stored features of the week's transactions;
* weekly retraining: the models the replay served (each run's candidate promoted by the policy);
* shadow, then promote: a second pass over the same stream with PROMOTE_SHADOW_DAYS set, so the
  policy puts each candidate in shadow, and `runs.review_shadow` (called daily, after the day's
  feedback) promotes it once that many days of its shadow predictions have labels and its AP on
  them is not below the champion's.

Scenarios: `handbook` replays the Handbook's CSV (default 6 weeks from 2018-07-01);
`new-pattern` replays a simulated stream in which a new fraud pattern starts at the beginning of
week `--drift-week` (see fraudapp.ml.simulate), and prints the pre-drift AP of each way, the weeks
it took to recover to 90 % of it, and whether v1 stayed low.

    .venv/bin/python bench/replay.py                                  # Handbook, 6 weeks
    .venv/bin/python bench/replay.py --delay 2                        # feedback after 2 days
    .venv/bin/python bench/replay.py --scenario new-pattern --delay 1  # the drift replay
    .venv/bin/python bench/replay.py --weeks 1 --simulated            # small and quick (CI)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraudapp import create_app  # noqa: E402
from fraudapp.extensions import db  # noqa: E402
from fraudapp.ml.simulate import simulate  # noqa: E402
from fraudapp.ml.training import Windows  # noqa: E402
from fraudapp.models import Prediction, TrainingRun, Transaction  # noqa: E402
from fraudapp.services import tokens  # noqa: E402
from fraudapp.services.distribution import releases  # noqa: E402
from fraudapp.services.serving import registry  # noqa: E402
from fraudapp.services.training import runs, trainer  # noqa: E402
from fraudapp.services.training.train import train_and_publish  # noqa: E402
from fraudapp.services.transactions import history, labels  # noqa: E402

DATA = ROOT.parent / "shared/data/handbook/transactions_raw_2018-04-01_to_2018-08-31.csv.gz"
HISTORY_DAYS = 70  # simulated days before the replayed stretch
RECOVERED = 0.9  # recovered: a week's AP at least this share of the pre-drift AP
SHADOW_READY = hasattr(releases, "start_shadow") and hasattr(runs, "review_shadow")


def parse_args(argv=None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("handbook", "new-pattern"), default="handbook")
    parser.add_argument("--start", default="2018-07-01", help="handbook: the first replayed day")
    parser.add_argument("--weeks", type=int, default=6)
    parser.add_argument("--delay", type=int, default=7, help="days until feedback (1, 3, 7)")
    parser.add_argument("--train-days", type=int, default=14, help="v1's training days")
    parser.add_argument(
        "--retrain-delay",
        type=int,
        default=0,
        help="RETRAIN_DELAY_DAYS: days between a run's training and test windows",
    )
    parser.add_argument("--simulated", action="store_true", help="handbook: simulated data")
    parser.add_argument("--customers", type=int, default=2000, help="simulated customers")
    parser.add_argument("--drift-week", type=int, default=2, help="new-pattern: drift starts")
    parser.add_argument("--no-shadow", action="store_true", help="skip the shadow pass")
    parser.add_argument("--seed", type=int, default=3, help="simulation random_state")
    parser.add_argument(
        "--threads",
        default="1",
        help="FRAUDAPP_TRAINING_THREADS: on a busy machine one LightGBM thread is far faster",
    )
    return parser.parse_args(argv)


def load(args) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The transactions to replay from (Handbook CSV, or simulated) and the first replayed day."""
    if args.scenario == "handbook" and not args.simulated and DATA.exists():
        return pd.read_csv(DATA, parse_dates=["TX_DATETIME"]), pd.Timestamp(args.start)
    if args.scenario == "handbook" and not args.simulated:
        print(f"{DATA} not found: replaying simulated data")
    frame = simulate(
        args.customers,
        2 * args.customers,
        "2018-04-01",
        HISTORY_DAYS + 7 * args.weeks,
        random_state=args.seed,
        scenario=args.scenario,
        drift_day=HISTORY_DAYS + 7 * args.drift_week,
    )
    return frame, pd.Timestamp("2018-04-01") + pd.Timedelta(days=HISTORY_DAYS)


def setup(frame: pd.DataFrame, start: pd.Timestamp, train_days: int) -> str:
    """Import the history before `start` and serve a first model trained on its last weeks."""
    before = frame[frame["TX_DATETIME"] < start]
    history.import_handbook_frame(before, "import")
    first = (start - pd.Timedelta(days=2 * 7 + train_days + 7)).date()
    version, _ = train_and_publish(Windows(first, train_days, 7, 7), promote=True)
    return version


def score_day(client, token: str, day: pd.DataFrame) -> None:
    """Score one day's transactions through the API, in batches of 1,000, in time order."""
    records = [
        {
            "tx_datetime": t.isoformat(),
            "customer_id": int(c),
            "terminal_id": int(m),
            "amount": float(a),
            "consent": True,
            "transaction_id": f"replay-{i}",
        }
        for i, t, c, m, a in day[
            ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"]
        ].itertuples(index=False)
    ]
    for start in range(0, len(records), 1000):
        response = client.post(
            "/api/v1/predictions",
            json={"transactions": records[start : start + 1000]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.get_json()


def feedback_for(day: pd.DataFrame, delay: int) -> int:
    """The true labels of a scored day arrive as user feedback, each known `delay` days after
    its transaction."""
    ids = "replay-" + day["TRANSACTION_ID"].astype(str)
    truth = dict(zip(ids, day["TX_FRAUD"], strict=True))
    known = dict(zip(ids, day["TX_DATETIME"] + pd.Timedelta(days=delay), strict=True))
    rows = db.session.execute(
        db.select(Prediction.id, Transaction.external_id)
        .join(Prediction.transaction)
        .where(Transaction.external_id.in_(list(truth)))
    ).all()
    for prediction_id, external_id in rows:
        labels.give_feedback(
            prediction_id,
            "replay",
            label="fraud" if truth[external_id] else "genuine",
            at=known[external_id].tz_localize("UTC").to_pydatetime(),
        )
    return len(rows)


@dataclass
class Pass:
    """What one pass over the stream served: per replayed transaction, the served score and
    version, and its stored features; the first model; what each run chose and took."""

    scores: dict[str, tuple[float, str]]
    never: dict[str, float]
    first: str
    runs: list[str]
    run_seconds: list[float]


def replay_pass(frame, start, args, shadow: bool) -> Pass:
    """Replay the stream in a fresh database; with `shadow`, candidates shadow before serving."""
    tmp = Path(tempfile.mkdtemp(prefix="fraudapp-replay-"))
    config = {
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{tmp / 'replay.db'}",
        "MODEL_DIR": str(tmp / "models"),
        "RETRAIN_TRAIN_DAYS": args.train_days,
        "RETRAIN_DELAY_DAYS": args.retrain_delay,
        "PROMOTE_MIN_LABELS": 100,
        "TRAINER_NICE": 0,
        "MODEL_CHECK_INTERVAL": 0.0,
    }
    if shadow:
        config["PROMOTE_SHADOW_DAYS"] = max(1, 7 - args.delay)
    app = create_app(config)
    with app.app_context():
        db.create_all()
        first = setup(frame, start, args.train_days)
        done = _stream(app, frame, start, args, shadow, first)
        scores, never = _served(first)
        return Pass(scores, never, first, *done)


def _stream(app, frame, start, args, shadow: bool, first: str) -> tuple[list[str], list[float]]:
    """Score, label and retrain day by day; what each run chose, and how long each took."""
    token, client = tokens.create_token("replay"), app.test_client()
    chosen, seconds = [], []
    days = [start + pd.Timedelta(days=d) for d in range(7 * args.weeks)]
    for i, day in enumerate(days):
        if i >= args.delay:  # labels known during the day, before its transactions are scored
            feedback_for(_day(frame, days[i - args.delay]), args.delay)
        if shadow:
            _log(runs.review_shadow())
        score_day(client, token, _day(frame, day))
        if i % 7 == 6:
            _week_so_far(frame, days[i - 6], first)
            started = time.perf_counter()
            runs.request_run("schedule", "replay")
            trainer.work(once=True, poll_seconds=0, log=lambda message: print("  " + message))
            seconds.append(time.perf_counter() - started)
            chosen.append(_last_run())
            print("  " + chosen[-1])
        print(f"{day.date()}: {len(_day(frame, day))} scored, serving {registry().current()}")
    return chosen, seconds


def _week_so_far(frame, monday, first: str) -> None:
    """The week just scored: AP of the served models and of v1 (printed as the replay goes, so
    a replay cut short still tells)."""
    scores, never = _served(first)
    week = frame[
        (frame["TX_DATETIME"] >= monday) & (frame["TX_DATETIME"] < monday + pd.Timedelta(days=7))
    ]
    keys = ("replay-" + week["TRANSACTION_ID"].astype(str)).tolist()
    y = week["TX_FRAUD"].to_numpy()
    served, v1 = _ap(y, [scores[k][0] for k in keys]), _ap(y, [never[k] for k in keys])
    versions = ",".join(sorted({scores[k][1] for k in keys}))
    print(f"  week of {monday.date()}: AP served {_num(served)} ({versions}), v1 {_num(v1)}")


def _log(message: str | None) -> None:
    if message:
        print("  " + message)


def _day(frame: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    return frame[
        (frame["TX_DATETIME"] >= day) & (frame["TX_DATETIME"] < day + pd.Timedelta(days=1))
    ]


def _last_run() -> str:
    """What the last run chose, and its promotion."""
    run = db.session.scalar(db.select(TrainingRun).order_by(TrainingRun.id.desc()))
    if run.version is None:
        return f"run {run.id}: {run.status} {run.error or ''}"
    choice = run.params or {}
    tried = ", ".join(
        f"{t['train_days']}d/{t['variant']} {t['validation_ap'] or float('nan'):.3f}"
        for t in choice.get("trials", [])
    )
    ap = (run.candidate_metrics or {}).get("ap"), (run.champion_metrics or {}).get("ap")
    return (
        f"run {run.id}: {run.version} kept {choice.get('train_days')}d/{choice.get('variant')} "
        f"(validation AP: {tried}); test AP {_num(ap[0])} vs champion {_num(ap[1])}: "
        f"{run.promotion}"
    )


def _num(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _served(first: str) -> tuple[dict[str, tuple[float, str]], dict[str, float]]:
    """Per replayed transaction: served score and version; and the score of the first version
    (never retrained) on its stored features."""
    rows = db.session.execute(
        db.select(
            Transaction.external_id, Prediction.score, Prediction.model_version, Prediction.features
        )
        .join(Prediction.transaction)
        .where(Transaction.external_id.like("replay-%"))
    ).all()
    baseline = registry().load(first)
    never = baseline.score_many(np.array([baseline.full_row(r[3]) for r in rows]))
    return {r[0]: (r[1], r[2]) for r in rows}, dict(zip([r[0] for r in rows], never, strict=True))


def weekly_table(frame, start, weeks: int, first: Pass, second: Pass | None) -> list[dict]:
    """Per week: AP of v1 never retrained, of the weekly-retrained served models, and of the
    shadow-then-promote pass, on the same transactions."""
    ids = "replay-" + frame["TRANSACTION_ID"].astype(str)
    truth = dict(zip(ids, frame["TX_FRAUD"], strict=True))
    when = dict(zip(ids, frame["TX_DATETIME"], strict=True))
    table = []
    for week in range(weeks):
        lo, hi = start + pd.Timedelta(days=7 * week), start + pd.Timedelta(days=7 * week + 7)
        keys = [k for k in first.scores if lo <= when[k] < hi]
        y = np.array([truth[k] for k in keys])
        row = {
            "week": lo.date().isoformat(),
            "transactions": len(y),
            "frauds": int(y.sum()),
            "served": ",".join(sorted({first.scores[k][1] for k in keys})),
            "never": _ap(y, [first.never[k] for k in keys]),
            "weekly": _ap(y, [first.scores[k][0] for k in keys]),
            "shadow": _ap(y, [second.scores[k][0] for k in keys]) if second else None,
            "shadow_served": ",".join(sorted({second.scores[k][1] for k in keys}))
            if second
            else "",
        }
        table.append(row)
    return table


def _ap(y, scores) -> float | None:
    return float(average_precision_score(y, scores)) if 0 < np.sum(y) < len(y) else None


def recovery(table: list[dict], drift_week: int, way: str) -> dict:
    """Pre-drift AP (mean of the weeks before the drift), the AP of each week after, and the
    weekly retrains after the drift until the AP reaches 90 % of the pre-drift AP and stays there
    in every later week (None: not in the replayed weeks)."""
    before = [row[way] for row in table[:drift_week] if row[way] is not None]
    after = [row[way] for row in table[drift_week:]]
    pre = float(np.mean(before)) if before else None
    ok = [pre is not None and ap is not None and ap >= RECOVERED * pre for ap in after]
    weeks = next((i for i in range(len(ok)) if all(ok[i:])), None)
    return {"pre": pre, "after": after, "weeks": weeks}


def print_table(table: list[dict], shadow: bool) -> None:
    """The weekly table."""
    print(
        f"{'week':<12}{'tx':>8}{'frauds':>8}  {'served':<14}{'AP never':>10}{'AP weekly':>11}"
        + (f"{'AP shadow':>11}  {'shadow served':<14}" if shadow else "")
    )
    for row in table:
        print(
            f"{row['week']:<12}{row['transactions']:>8}{row['frauds']:>8}  {row['served']:<14}"
            f"{_num(row['never']):>10}{_num(row['weekly']):>11}"
            + (f"{_num(row['shadow']):>11}  {row['shadow_served']:<14}" if shadow else "")
        )
    gains = [r["weekly"] - r["never"] for r in table[1:] if None not in (r["weekly"], r["never"])]
    if gains:
        print(
            f"weekly retraining minus never retrained, from the second week: "
            f"{', '.join(f'{g:+.3f}' for g in gains)}; mean {np.mean(gains):+.3f}; "
            f"every week >= 0: {all(g >= 0 for g in gains)}"
        )


def print_recovery(table: list[dict], drift_week: int, shadow: bool) -> None:
    """Pre-drift AP, AP after the drift and weeks to recover, per way of serving."""
    print(
        f"\ndrift from week {drift_week + 1} ({table[drift_week]['week']}); recovered: AP at least "
        f"{RECOVERED:.0%} of the pre-drift AP in that week and every later one"
    )
    for way in ("never", "weekly", *(("shadow",) if shadow else ())):
        r = recovery(table, drift_week, way)
        after = ", ".join(_num(ap) for ap in r["after"])
        recovered = (
            "no" if r["weeks"] is None else f"from the week after {r['weeks']} weekly retrain(s)"
        )
        print(f"  {way:<7} pre-drift AP {_num(r['pre'])}; after: {after}; recovered: {recovered}")
    never = recovery(table, drift_week, "never")
    low = all(ap is not None and ap < RECOVERED * never["pre"] for ap in never["after"])
    print(f"  v1 stays below {RECOVERED:.0%} of its pre-drift AP in every week after: {low}")


def main(argv=None) -> list[dict]:
    """Replay, print the tables; the weekly table."""
    args = parse_args(argv)
    os.environ["FRAUDAPP_TRAINING_THREADS"] = args.threads
    frame, start = load(args)
    started = time.perf_counter()
    first = replay_pass(frame, start, args, shadow=False)
    second = None
    if not args.no_shadow and not SHADOW_READY:
        print("shadow, then promote: needs shadow challengers (releases.start_shadow, ...)")
    elif not args.no_shadow:
        print("\nsecond pass: candidates shadow, runs.review_shadow promotes")
        second = replay_pass(frame, start, args, shadow=True)
    table = weekly_table(frame, start, args.weeks, first, second)
    print(
        f"\nreplayed {args.weeks} week(s) of {args.scenario} from {start.date()}, feedback after "
        f"{args.delay} day(s), in {time.perf_counter() - started:.0f} s; a run took "
        f"{np.mean(first.run_seconds):.0f} s on average; v1 = {first.first}"
    )
    print_table(table, second is not None)
    if args.scenario == "new-pattern":
        print_recovery(table, args.drift_week, second is not None)
    return table


if __name__ == "__main__":
    main()
