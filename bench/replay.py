"""Does retraining on feedback help? Replay a stretch of transactions day by day through the app.

Before the stretch: the earlier history is imported and a first model (v1) is trained and served.
Then, day by day: the day's transactions are scored through the JSON API (with consent, so they
join the history); the true labels of the transactions scored `--delay` days earlier arrive as user
feedback; at the end of every week the trainer works a scheduled run (promotion policy applies).
Per week it prints AP and F1 of the served, retrained-from-feedback models beside v1, never
retrained, scored on the very same transactions and features.

    .venv/bin/python bench/replay.py                       # Handbook data, 6 weeks from 2018-07-01
    .venv/bin/python bench/replay.py --weeks 1 --simulated  # small simulated stretch (CI)
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraudapp import create_app  # noqa: E402
from fraudapp.extensions import db  # noqa: E402
from fraudapp.ml.metrics import at_threshold  # noqa: E402
from fraudapp.ml.simulate import simulate  # noqa: E402
from fraudapp.ml.training import Windows  # noqa: E402
from fraudapp.models import Prediction, Transaction  # noqa: E402
from fraudapp.services import tokens  # noqa: E402
from fraudapp.services.serving import registry  # noqa: E402
from fraudapp.services.training import runs, trainer  # noqa: E402
from fraudapp.services.training.train import train_and_publish  # noqa: E402
from fraudapp.services.transactions import history, labels  # noqa: E402

DATA = ROOT.parent / "shared/data/handbook/transactions_raw_2018-04-01_to_2018-08-31.csv.gz"


def load(args) -> pd.DataFrame:
    """The transactions to replay from (Handbook CSV, or simulated)."""
    if args.simulated or not DATA.exists():
        if not args.simulated:
            print(f"{DATA} not found: replaying simulated data")
        return simulate(500, 1000, "2018-04-01", 70 + 7 * args.weeks, random_state=3)
    return pd.read_csv(DATA, parse_dates=["TX_DATETIME"])


def setup(app, frame: pd.DataFrame, start: pd.Timestamp, train_days: int) -> str:
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


def feedback_for(day: pd.DataFrame, at: dt.datetime) -> int:
    """The true labels of a scored day arrive as user feedback, known at simulated time `at`."""
    truth = dict(zip("replay-" + day["TRANSACTION_ID"].astype(str), day["TX_FRAUD"], strict=True))
    rows = db.session.execute(
        db.select(Prediction.id, Transaction.external_id)
        .join(Prediction.transaction)
        .where(Transaction.external_id.in_(list(truth)))
    ).all()
    for prediction_id, external_id in rows:
        labels.give_feedback(
            prediction_id, "replay", label="fraud" if truth[external_id] else "genuine", at=at
        )
    return len(rows)


def weekly_table(frame: pd.DataFrame, start, weeks: int, baseline) -> list[dict]:
    """AP and F1 per week: the served models against the never-retrained baseline."""
    rows = db.session.execute(
        db.select(
            Transaction.external_id,
            Prediction.score,
            Prediction.threshold,
            Prediction.model_version,
            Prediction.features,
        )
        .join(Prediction.transaction)
        .where(Transaction.external_id.like("replay-%"))
    ).all()
    truth = dict(
        zip("replay-" + frame["TRANSACTION_ID"].astype(str), frame["TX_FRAUD"], strict=True)
    )
    when = dict(
        zip("replay-" + frame["TRANSACTION_ID"].astype(str), frame["TX_DATETIME"], strict=True)
    )
    table = []
    for week in range(weeks):
        lo, hi = start + pd.Timedelta(days=7 * week), start + pd.Timedelta(days=7 * week + 7)
        week_rows = [r for r in rows if lo <= when[r[0]] < hi]
        if not week_rows:
            continue
        y = np.array([truth[r[0]] for r in week_rows])
        served = np.array([r[1] for r in week_rows])
        x = np.array([baseline.full_row(r[4]) for r in week_rows])
        base = baseline.score_many(x)
        table.append(
            {
                "week": lo.date().isoformat(),
                "transactions": len(y),
                "frauds": int(y.sum()),
                "served": ",".join(sorted({r[3] for r in week_rows})),
                "ap_retrained": average_precision_score(y, served),
                "f1_retrained": at_threshold(served, y, week_rows[0][2])["f1"],
                "ap_never": average_precision_score(y, base),
                "f1_never": at_threshold(base, y, baseline.threshold)["f1"],
            }
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2018-07-01")
    parser.add_argument("--weeks", type=int, default=6)
    parser.add_argument("--delay", type=int, default=7)
    parser.add_argument("--train-days", type=int, default=14)
    parser.add_argument("--simulated", action="store_true")
    args = parser.parse_args()
    frame = load(args)
    start = (
        pd.Timestamp(args.start)
        if not args.simulated
        else frame["TX_DATETIME"].min().normalize() + pd.Timedelta(days=70)
    )
    tmp = Path(tempfile.mkdtemp(prefix="fraudapp-replay-"))
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp / 'replay.db'}",
            "MODEL_DIR": str(tmp / "models"),
            "RETRAIN_TRAIN_DAYS": args.train_days,
            "RETRAIN_DELAY_DAYS": args.delay,
            "PROMOTE_MIN_LABELS": 100,
            "TRAINER_NICE": 0,
            "MODEL_CHECK_INTERVAL": 0.0,
        }
    )
    started = time.perf_counter()
    with app.app_context():
        db.create_all()
        first = setup(app, frame, start, args.train_days)
        baseline = registry().load(first)
        token = tokens.create_token("replay")
        client = app.test_client()
        days = [start + pd.Timedelta(days=d) for d in range(7 * args.weeks)]
        for i, day in enumerate(days):
            today = frame[
                (frame["TX_DATETIME"] >= day) & (frame["TX_DATETIME"] < day + pd.Timedelta(days=1))
            ]
            score_day(client, token, today)
            if i >= args.delay:
                labelled_day = days[i - args.delay]
                feedback_for(
                    frame[
                        (frame["TX_DATETIME"] >= labelled_day)
                        & (frame["TX_DATETIME"] < labelled_day + pd.Timedelta(days=1))
                    ],
                    (day + pd.Timedelta(days=1)).to_pydatetime().replace(tzinfo=dt.UTC),
                )
            if i % 7 == 6:
                runs.request_run("schedule", "replay")
                trainer.work(once=True, poll_seconds=0, log=lambda message: print("  " + message))
            print(f"{day.date()}: {len(today)} scored, serving {registry().current()}", flush=True)
        table = weekly_table(frame, start, args.weeks, baseline)
    print(
        f"\nreplayed {args.weeks} week(s) from {start.date()} in "
        f"{time.perf_counter() - started:.0f} s; first model {first} never retrained vs "
        f"the served models retrained weekly on feedback"
    )
    print(
        f"{'week':<12}{'tx':>8}{'frauds':>8}  {'served':<10}{'AP retrained':>14}"
        f"{'AP never':>10}{'F1 retrained':>14}{'F1 never':>10}"
    )
    for row in table:
        print(
            f"{row['week']:<12}{row['transactions']:>8}{row['frauds']:>8}  {row['served']:<10}"
            f"{row['ap_retrained']:>14.3f}{row['ap_never']:>10.3f}{row['f1_retrained']:>14.3f}"
            f"{row['f1_never']:>10.3f}"
        )


if __name__ == "__main__":
    main()
