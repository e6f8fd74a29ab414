"""Prediction latency and throughput of fraudapp, measured in one run on one machine state.

Builds an app on a scratch database (a fresh temporary SQLite file unless --database-url; the
tables of a given database are dropped and created again) and a temporary model directory, imports
a simulated history (or the Handbook's raw file with --handbook), trains and promotes a model, then
scores transactions dated just after the history's end, for random existing customers and terminals:

  (a) booster.predict on one numpy row, one thread: the floor any prediction pays;
  (b) POST /api/v1/predictions through app.test_client(), bearer token, consent true
      (features from the database, insert, commit, JSON);
  (c) b / a, against the target;
  (d) rows/s of importing the history, (e) rows/s of scoring a batch of 1,000 through the API;
  (f) the in-process split of (b): features, score, explanation, store, token;
  (g) a challenger in shadow: (b) and (e) again, interleaved with and without one (a copy of the
      model under a new version: the same trees, so the same cost as a real challenger's).

Times are medians and 95th percentiles of single calls (time.perf_counter_ns) after a warm-up.
Nothing is asserted: it prints a table.

    .venv/bin/python bench/predict.py
    .venv/bin/python bench/predict.py --database-url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/predict.py --handbook PATH   # a raw file of ../shared/data/handbook
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sqlalchemy import func, select, text

TARGET_RATIO = 15.0
ROOT = Path(__file__).resolve().parents[1]
HANDBOOK_DIR = ROOT.parent / "shared" / "data" / "handbook"
TX_PER_CUSTOMER_DAY = 2.0  # the simulator's mean (uniform 0-4 per customer)
STEP_SECONDS = 5  # requests arrive this far apart, from just after the history's end


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a fresh temporary SQLite file")
    parser.add_argument(
        "--rows",
        type=int,
        default=240_000,
        help="simulated history size, approximately (customers = rows / (2 * days), "
        "terminals = 2 * customers; default 240,000: 2,000 customers, 4,000 terminals)",
    )
    parser.add_argument("--days", type=int, default=60, help="simulated days (default 60)")
    parser.add_argument("--start-date", default="2018-04-01", help="simulation start date")
    parser.add_argument(
        "--handbook",
        type=Path,
        metavar="PATH",
        help=f"import this Handbook raw CSV instead of simulating (e.g. a file in {HANDBOOK_DIR})",
    )
    parser.add_argument("--n", type=int, default=2000, help="timed requests (default 2,000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls first (default 200)")
    parser.add_argument("--raw-n", type=int, default=20_000, help="timed booster.predict calls")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--batches", type=int, default=3, help="batches of 1,000 (median rows/s)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


# --- timing --------------------------------------------------------------------------------------


def timed(call: Callable, inputs: Iterable) -> np.ndarray:
    """Wall and CPU nanoseconds of each call(x): shape (n, 2), one row per input."""
    out = []
    wall, cpu = time.perf_counter_ns, time.process_time_ns
    for x in inputs:
        start, start_cpu = wall(), cpu()
        call(x)
        out.append((wall() - start, cpu() - start_cpu))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def stats_us(ns: np.ndarray) -> tuple[float, float, float]:
    """Median and 95th percentile of the wall time, median CPU time of this process, in µs."""
    return (
        float(np.median(ns[:, 0])) / 1e3,
        float(np.percentile(ns[:, 0], 95)) / 1e3,
        float(np.median(ns[:, 1])) / 1e3,
    )


# --- setup ---------------------------------------------------------------------------------------


def make_app(database_url: str, model_dir: str):
    from fraudapp import create_app

    return create_app(
        {
            "DATABASE_URL": database_url,
            "MODEL_DIR": model_dir,
            "SECRET_KEY": "bench-" + os.urandom(8).hex(),
            "WTF_CSRF_ENABLED": False,
            "API_RATE_LIMIT": "100000000/minute",  # the work is measured, not the token's limit
        }
    )


def reset_schema(db) -> None:
    """Drop and create every table, in one transaction: the database is a scratch one."""
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # fail rather than wait behind another user
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
        db.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.metadata.create_all(connection)


def import_history(args) -> tuple[str, int, float]:
    """Import the history; (description, rows, seconds)."""
    from fraudapp.ml.simulate import simulate
    from fraudapp.services.transactions import history

    if args.handbook:
        start = time.perf_counter_ns()
        result = history.import_transactions(str(args.handbook), source_name="bench")
        seconds = (time.perf_counter_ns() - start) / 1e9
        return f"Handbook {args.handbook.name} (CSV parse included)", result.rows, seconds
    customers = max(1, round(args.rows / (TX_PER_CUSTOMER_DAY * args.days)))
    frame = simulate(customers, 2 * customers, args.start_date, args.days, random_state=args.seed)
    start = time.perf_counter_ns()
    result = history.import_handbook_frame(frame, "bench")
    seconds = (time.perf_counter_ns() - start) / 1e9
    what = f"simulated, {customers:,} customers, {2 * customers:,} terminals, {args.days} days"
    return f"{what} from {args.start_date}", result.rows, seconds


class Traffic:
    """Transaction bodies for existing customers and terminals, dated after the history's end."""

    def __init__(self, db, seed: int):
        from fraudapp.models import Transaction

        self.rng = np.random.default_rng(seed)
        self.customers = np.array(
            db.session.scalars(select(Transaction.customer_id).distinct()).all()
        )
        self.terminals = np.array(
            db.session.scalars(select(Transaction.terminal_id).distinct()).all()
        )
        self.amounts = np.array(
            db.session.scalars(select(Transaction.amount).limit(100_000)).all(), dtype=float
        )
        self.next_time = int(db.session.scalar(select(func.max(Transaction.tx_time)))) + 1
        self.serial = 0

    def body(self) -> dict:
        t = self.next_time
        self.next_time += STEP_SECONDS
        self.serial += 1
        return {
            "tx_datetime": dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None).isoformat(),
            "customer_id": str(self.rng.choice(self.customers)),
            "terminal_id": str(self.rng.choice(self.terminals)),
            "amount": float(self.rng.choice(self.amounts)),
            "consent": True,
            "transaction_id": f"bench-{self.serial}",
        }

    def bodies(self, n: int) -> list[dict]:
        return [self.body() for _ in range(n)]

    def inputs(self, n: int):
        """Service inputs (TransactionIn) for the in-process split."""
        from fraudapp.api.schemas import TransactionBody

        return [TransactionBody.model_validate(b).to_input()[0] for b in self.bodies(n)]


# --- the run -------------------------------------------------------------------------------------


class Probes:
    """Wall time of named functions while requests run, by wrapping them (restored afterwards)."""

    def __init__(self, targets: list[tuple[object, str, str]]):
        self.targets = [
            (owner, attr, label) for owner, attr, label in targets if hasattr(owner, attr)
        ]
        self.times: dict[str, list[tuple[int, int]]] = {label: [] for _, _, label in self.targets}
        self._saved: list[tuple[object, str, object]] = []

    def __enter__(self):
        wall, cpu = time.perf_counter_ns, time.process_time_ns
        for owner, attr, label in self.targets:
            original = getattr(owner, attr)
            sink = self.times[label]

            def probe(*args, _original=original, _sink=sink, **kwargs):
                start, start_cpu = wall(), cpu()
                try:
                    return _original(*args, **kwargs)
                finally:
                    _sink.append((wall() - start, cpu() - start_cpu))

            self._saved.append((owner, attr, original))
            setattr(owner, attr, probe)
        return self

    def clear(self) -> None:
        for times in self.times.values():
            times.clear()

    def __exit__(self, *exc):
        for owner, attr, original in reversed(self._saved):
            setattr(owner, attr, original)
        self._saved.clear()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    scratch = tempfile.TemporaryDirectory(prefix="fraudapp-bench-")
    os.environ["FRAUDAPP_INSTANCE_PATH"] = scratch.name  # no instance/config.py, no stray files
    database_url = args.database_url or f"sqlite:///{scratch.name}/bench.db"
    app = make_app(database_url, os.path.join(scratch.name, "models"))

    from fraudapp.extensions import db
    from fraudapp.ml.explain import explain_rows
    from fraudapp.ml.registry import LoadedModel
    from fraudapp.services import serving, tokens
    from fraudapp.services.training.train import latest_windows, train_and_publish
    from fraudapp.services.transactions import counts, scoring

    with app.app_context():
        reset_schema(db)
        version_info = ".".join(map(str, db.engine.dialect.server_version_info))
        dialect = f"{db.engine.dialect.name} {version_info} ({db.engine.driver})"
        history_what, history_rows, import_seconds = import_history(args)
        if db.engine.dialect.name == "postgresql":  # the statistics autovacuum would soon gather
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("ANALYZE"))
        start = time.perf_counter()
        version, _ = train_and_publish(latest_windows(), promote=True)
        train_seconds = time.perf_counter() - start
        token = tokens.create_token("bench")
        traffic = Traffic(db, args.seed)
        trees = serving.serving_model().booster.num_trees()
        db.session.remove()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    client = app.test_client()

    def post(payload: bytes) -> None:
        response = client.post("/api/v1/predictions", data=payload, headers=headers)
        if response.status_code != 201:
            sys.exit(f"unexpected {response.status_code}: {response.get_data(as_text=True)}")

    probes = Probes(
        [
            (tokens, "verify_token", "tokens.verify_token"),
            (scoring, "features_of", "online_features"),
            (LoadedModel, "score_many", "LoadedModel.score"),
            (scoring, "store_predictions", "scoring.store_predictions"),
            (scoring, "score", "scoring.score"),
        ]
    )

    def requests(n: int) -> np.ndarray:
        """(b): n requests, outside any app context (each gets its own, as in production)."""
        return timed(post, [json.dumps(body).encode() for body in traffic.bodies(n)])

    def in_process(n: int, n_raw: int) -> dict[str, np.ndarray]:
        """(a) and (f, alone): each part called n times in a loop."""
        with app.app_context():
            model = serving.serving_model()
            top = app.config["EXPLAIN_TOP"]
            txs = traffic.inputs(n)
            rows = [scoring.online_features(tx) for tx in txs]
            matrices = [row.reshape(1, -1) for row in rows]
            booster = model.booster
            parts = {
                "raw": (lambda m: booster.predict(m, num_threads=1), matrices * max(1, n_raw // n)),
                "tokens.verify_token": (tokens.verify_token, [token] * n),
                "online_features": (scoring.online_features, txs),
                "LoadedModel.score": (model.score, rows),
                "LoadedModel.contributions": (model.contributions, matrices),
                "scoring.explain": (lambda m: explain_rows(model, m, top), matrices),
                "scoring.score, consent false": (lambda tx: scoring.score(tx, False), txs),
                "scoring.score": (lambda tx: scoring.score(tx, True), traffic.inputs(n)),
            }
            out = {name: timed(call, inputs) for name, (call, inputs) in parts.items()}
            db.session.remove()
        return out

    # Warm up, then interleave the measurements in rounds so that they share the machine's state
    # (other processes' load changes during a run; a phase each would compare different machines).
    requests(args.warmup)
    with probes:
        requests(args.warmup)
    in_process(args.warmup, args.warmup)
    probes.clear()
    per_round = max(1, args.n // args.rounds)
    request_parts, alone_parts = [], []
    for _ in range(args.rounds):
        request_parts.append(requests(per_round))
        with probes:
            requests(per_round)
        alone_parts.append(in_process(per_round, args.raw_n // args.rounds))
    request_ns = np.concatenate(request_parts)
    alone = {name: np.concatenate([p[name] for p in alone_parts]) for name in alone_parts[0]}
    raw_ns = alone.pop("raw")

    # (e) batches of 1,000 through the API
    timed(post, [json.dumps({"transactions": traffic.bodies(1000)}).encode()])  # warm-up
    batches = [
        json.dumps({"transactions": traffic.bodies(1000)}).encode() for _ in range(args.batches)
    ]
    batch_rows_s = 1000 / (np.median(timed(post, batches)[:, 0]) / 1e9)
    shadow = measure_shadow(app, db, post, traffic, args)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()

    report(
        args,
        setup={
            "database": dialect,
            "history": f"{history_rows:,} rows: {history_what}",
            "model": f"{version}, {trees} trees, lightgbm {lgb.__version__}, "
            f"trained in {train_seconds:.1f} s",
            "machine": f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {platform.machine()}, load {os.getloadavg()[0]:.1f}",
            "calls": f"{args.n:,} requests (plain, then again probed), {args.raw_n:,} raw "
            f"predictions, warm-up {args.warmup}, in {args.rounds} interleaved rounds",
        },
        raw_ns=raw_ns,
        request_ns=request_ns,
        alone=alone,
        in_requests={k: np.array(v).reshape(-1, 2) for k, v in probes.times.items()},
        throughput=(history_rows / import_seconds, import_seconds, batch_rows_s),
    )
    report_shadow(shadow)
    with app.app_context():
        counts.flush()  # the daily counts still pending, before the scratch database goes
    scratch.cleanup()


def measure_shadow(app, db, post, traffic, args) -> dict:
    """(g): single requests and batches of 1,000, with and without a challenger in shadow, in
    interleaved rounds; wall ns per request and rows/s per batch, by "without" / "with"."""
    from fraudapp.services.distribution import releases
    from fraudapp.services.serving import registry

    with app.app_context():
        reg = registry()
        champion = reg.current()
        meta = {k: v for k, v in reg.meta(champion).items() if k not in ("sha256", "version")}
        challenger = reg.install((reg.path(champion) / "model.txt").read_text(), meta)
        db.session.remove()

    def shadowing(on: bool) -> None:
        with app.app_context():
            if on:
                releases.start_shadow(challenger, "bench")
            elif releases.challenger():
                releases.stop_shadow("bench")
            app.extensions.pop("fraudapp.challenger", None)  # every worker follows within 0.5 s
            db.session.remove()

    per_round = max(1, args.n // args.rounds)
    requests = {"without": [], "with": []}
    batches = {"without": [], "with": []}
    for round_number in range(args.rounds):
        for name, on in (("without", False), ("with", True)):
            shadowing(on)
            bodies = [json.dumps(body).encode() for body in traffic.bodies(per_round)]
            requests[name].append(timed(post, bodies))
            if round_number < args.batches + 1:  # the first round's batch is a warm-up
                batch = json.dumps({"transactions": traffic.bodies(1000)}).encode()
                batches[name].append(timed(post, [batch])[0])
    shadowing(False)
    return {
        "challenger": challenger,
        "requests": {k: np.concatenate(v) for k, v in requests.items()},
        "batch_ns": {k: np.median(np.array(v[1:]), axis=0) for k, v in batches.items()},
    }


def report_shadow(shadow: dict) -> None:
    """Print (g): with and without a challenger, and the ratio."""
    without, with_ = shadow["requests"]["without"], shadow["requests"]["with"]
    print(f"  (g) a challenger in shadow ({shadow['challenger']}), interleaved rounds")
    print(f"  {'':<50} {'median':>8} {'p95':>8} {'CPU':>8}")
    for label, ns in (
        ("POST /api/v1/predictions, no challenger", without),
        ("POST /api/v1/predictions, challenger in shadow", with_),
    ):
        print(f"    {label:<48} " + "{:>8.1f} {:>8.1f} {:>8.1f}".format(*stats_us(ns)))
    wall, cpu = (np.median(with_[:, k]) / np.median(without[:, k]) for k in (0, 1))
    print(f"    {'with / without (medians)':<48} {wall:>8.3f} {'':>8} {cpu:>8.3f}")
    batch = shadow["batch_ns"]
    print(
        f"    batch of 1,000, ms per batch without / with: wall {batch['without'][0] / 1e6:.0f} / "
        f"{batch['with'][0] / 1e6:.0f} (x{batch['with'][0] / batch['without'][0]:.3f}), CPU "
        f"{batch['without'][1] / 1e6:.0f} / {batch['with'][1] / 1e6:.0f} "
        f"(x{batch['with'][1] / batch['without'][1]:.3f})"
    )
    print()


SPLIT = (  # (label, function name, note)
    ("tokens.verify_token", "tokens.verify_token", ""),
    ("online_features (one query + numpy)", "online_features", ""),
    ("LoadedModel.score_many (booster.predict)", "LoadedModel.score", ""),
    (
        "scoring.store_predictions (insert transaction + prediction)",
        "scoring.store_predictions",
        "",
    ),
    ("scoring.score, consent true (the whole service)", "scoring.score", ""),
    ("LoadedModel.contributions (pred_contrib)", "LoadedModel.contributions", "explain"),
    ("scoring.explain (pred_contrib + texts)", "scoring.explain", "explain"),
    ("scoring.score, consent false", "scoring.score, consent false", "explain"),
)


def report(args, setup, raw_ns, request_ns, alone, in_requests, throughput) -> None:
    width = 50
    columns = f"{'median':>8} {'p95':>8} {'CPU':>8}"

    def cells(ns: np.ndarray | None) -> str:
        if ns is None or not len(ns):
            return f"{'-':>8} {'-':>8} {'-':>8}"
        return "{:>8.1f} {:>8.1f} {:>8.1f}".format(*stats_us(ns))

    def medians(ns: np.ndarray | None) -> np.ndarray:
        return np.zeros(2) if ns is None else np.median(ns, axis=0)

    print()
    print("fraudapp prediction benchmark")
    for key, value in setup.items():
        print(f"  {key:<9}  {value}")
    print("  (median and p95 of wall time, median CPU time of this process; µs per call)")
    print()
    print(f"  {'per prediction':<{width}} {columns}")
    print(f"  {'(a) booster.predict, 1 numpy row, num_threads=1':<{width}} {cells(raw_ns)}")
    print(f"  {'(b) POST /api/v1/predictions, token, consent true':<{width}} {cells(request_ns)}")
    a, b = medians(raw_ns), medians(request_ns)
    verdict = "met" if b[0] / a[0] <= TARGET_RATIO else "not met"
    print(
        f"  (c) b / a = {b[0] / a[0]:.1f} (wall medians; CPU: {b[1] / a[1]:.1f}), "
        f"target <= {TARGET_RATIO:g}: {verdict}"
    )
    print()
    print(f"  {'(f) where the time goes':<{width}} {'alone (hot loop)':<26}   inside (b) requests")
    print(f"  {'':<{width}} {columns}   {columns}")
    for label, name, note in SPLIT:
        if name not in alone and name not in in_requests:
            continue
        if note == "explain" and label.startswith("LoadedModel.contributions"):
            print("  not in (b): with ?explain=true, or without consent")
        print(f"    {label:<{width - 2}} {cells(alone.get(name))}   {cells(in_requests.get(name))}")
    if "scoring.score" in in_requests:
        rest = (
            b
            - medians(in_requests["scoring.score"])
            - medians(in_requests.get("tokens.verify_token"))
        )
        label = "rest of (b): Flask, pydantic, JSON (b - service - token)"
        print(f"    {label:<{width + 27}} {rest[0] / 1e3:>8.1f} {'':>8} {rest[1] / 1e3:>8.1f}")
    print()
    import_rate, import_seconds, batch_rate = throughput
    print(f"  {'throughput':<{width}} {'rows/s':>8}")
    print(f"  {f'(d) import history ({import_seconds:.1f} s)':<{width}} {import_rate:>8,.0f}")
    print(f"  {'(e) batch of 1,000 via the API, consent true':<{width}} {batch_rate:>8,.0f}")
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > cpus:
        print(
            f"\n  note: load {load:.1f} on {cpus} CPUs: wall times include waiting for a CPU; "
            "CPU times do not (nor the database server's work)"
        )
    print()


if __name__ == "__main__":
    main()
