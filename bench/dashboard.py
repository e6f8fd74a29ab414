"""How fast the monitoring dashboard answers over the full Handbook history (April–August 2018).

Imports the 1.47M Handbook transactions into a fresh database, trains the ch.3 model, stores a
prediction for every transaction (as if all had been scored live), then times the dashboard's
service call and the /admin page for the whole period, by day and by week, on the same run.

    .venv/bin/python bench/dashboard.py [--database-url URL] [--repeat 3]

Needs ../shared/data/handbook; exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraudapp import create_app  # noqa: E402
from fraudapp.extensions import db  # noqa: E402
from fraudapp.ml.training import Windows  # noqa: E402
from fraudapp.models import Prediction, Transaction  # noqa: E402
from fraudapp.services import accounts  # noqa: E402
from fraudapp.services.monitoring import aggregates  # noqa: E402
from fraudapp.services.monitoring import figures as monitoring  # noqa: E402
from fraudapp.services.serving import registry  # noqa: E402
from fraudapp.services.training.train import train_and_publish  # noqa: E402
from fraudapp.services.transactions import changes, history, labels  # noqa: E402

DATA = ROOT.parent / "shared/data/handbook/transactions_raw_2018-04-01_to_2018-08-31.csv.gz"
FEATURE_DAYS = 7  # the last week keeps its feature snapshots (drift); older rows store none


def timed(function, repeat: int) -> tuple[float, object]:
    """Median seconds of `repeat` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def store_predictions(model) -> int:
    """A prediction row for every stored transaction, scored offline in one go."""
    hist = history.load_history()
    ids = np.array(db.session.scalars(select_ids()).all())
    x = model.own(hist.features())
    scores = model.booster.predict(x, num_threads=0)
    recent = hist.day > hist.day.max() - FEATURE_DAYS
    created = [dt.datetime.fromtimestamp(int(t), dt.UTC) for t in hist.time]
    rows = [
        (
            int(ids[i]),
            float(scores[i]),
            bool(scores[i] >= model.threshold),
            model.threshold,
            model.version,
            json.dumps(dict(zip(model.feature_names, x[i].tolist(), strict=True)))
            if recent[i]
            else "{}",
            created[i],
        )
        for i in range(len(ids))
    ]
    connection = db.session.connection()
    connection.execute(
        Prediction.__table__.insert(),
        [
            dict(
                zip(
                    (
                        "transaction_id",
                        "score",
                        "is_fraud",
                        "threshold",
                        "model_version",
                        "features",
                        "created_at",
                    ),
                    (r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]),
                    strict=True,
                )
            )
            for r in rows
        ],
    )
    db.session.commit()
    return len(rows)


def select_ids():
    """Transaction ids in the order load_history returns rows."""
    from sqlalchemy import select

    return select(Transaction.id).order_by(Transaction.id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"Handbook data not found at {DATA}: nothing to measure")
    tmp = Path(tempfile.mkdtemp(prefix="fraudapp-bench-"))
    app = create_app(
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "MODEL_DIR": str(tmp / "models"),
            "DATABASE_URL": args.database_url or f"sqlite:///{tmp / 'bench.db'}",
        }
    )
    with app.app_context():
        db.drop_all()
        db.create_all()
        started = time.perf_counter()
        result = history.import_transactions(DATA)
        import_s = time.perf_counter() - started
        print(
            f"import: {result.inserted:,} rows in {import_s:.1f} s "
            f"({result.inserted / import_s:,.0f} rows/s)"
        )
        started = time.perf_counter()
        train_and_publish(Windows(dt.date(2018, 7, 25)), promote=True)
        print(f"train (ch.3 windows): {time.perf_counter() - started:.1f} s")
        model = registry().load(registry().current())
        started = time.perf_counter()
        stored = store_predictions(model)
        print(f"stored {stored:,} predictions in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        changes.mark_all()
        days = aggregates.refresh()
        print(
            f"first build of the daily aggregates ({days} days): "
            f"{time.perf_counter() - started:.1f} s (once, after a bulk load)"
        )
        accounts.create_user("bench", "admin", "bench-password")
        client = app.test_client()
        client.post("/login", data={"username": "bench", "password": "bench-password"})
        print(f"\nwhole period 2018-04-01 .. 2018-08-31, median of {args.repeat}:")
        print(f"{'what':<36}{'seconds':>10}")
        for granularity in ("day", "week"):
            period = monitoring.Period(dt.date(2018, 4, 1), dt.date(2018, 8, 31), granularity)
            seconds, data = timed(lambda p=period: monitoring.dashboard(p), args.repeat)
            print(f"{'dashboard() by ' + granularity:<36}{seconds:>10.3f}")
            url = f"/admin/?start=2018-04-01&end=2018-08-31&granularity={granularity}"
            seconds, response = timed(lambda u=url: client.get(u), args.repeat)
            assert response.status_code == 200, response.status_code
            print(f"{'GET /admin/ by ' + granularity:<36}{seconds:>10.3f}")
        one = db.session.scalar(select_ids().limit(1))
        labels.add_label(one, True, "analyst", "bench")
        db.session.commit()
        period = monitoring.Period(dt.date(2018, 4, 1), dt.date(2018, 8, 31), "day")
        seconds, data = timed(lambda: monitoring.dashboard(period), 1)
        print(f"{'dashboard() after a new label':<36}{seconds:>10.3f}")
        totals = data["totals"]
        print(
            f"\n{totals['predictions']:,} predictions, {totals['labelled']:,} labelled, "
            f"F1 {totals['f1']:.3f} at threshold {data['threshold']:.3f}"
        )


if __name__ == "__main__":
    main()
