"""fraudapp under gunicorn beside `mlflow models serve` on the same booster, driven by wrk.

Builds a scratch database (a fresh temporary SQLite file unless --database-url; the tables of a
given database are dropped and created again), imports the Handbook's raw history
(../shared/data/handbook, April-August; the project's simulated history when the file is absent,
saying so) except its last week, trains and promotes a model, and pre-generates request bodies from
that last week: later transactions of the same customers and terminals, in time order.

Then it starts fraudapp under gunicorn (gunicorn.conf.py, 2 workers) and `mlflow models serve`
(2 uvicorn workers, `--env-manager local`) on the same LightGBM booster. mlflow gets the features
computed in advance (the same transactions' online features) and stores nothing; fraudapp computes
them from the history and, with consent, stores the transaction and its prediction. wrk
(bench/serve.lua) posts the bodies in turn at 1 and 8 connections, the servers' runs alternating,
a few seconds each; the table gives the median req/s, p50 and p99 over the rounds and the ratio
fraudapp / mlflow. Then lists of 1,000 through the API, and `flask score-file` on a month of the
Handbook (a fresh history of the months before it), with and without --store, when the command
exists. Nothing is asserted: it prints one table.

    make bench   # installs the `bench` extra (mlflow); needs wrk (apt-get install wrk)
    .venv/bin/python bench/serve.py [--quick]
    .venv/bin/python bench/serve.py --database-url postgresql://postgres@127.0.0.1:5432/scratch
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import gunicorn
import lightgbm as lgb
import numpy as np
import pandas as pd
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.predict import make_app, reset_schema  # noqa: E402
from fraudapp.api.schemas import TransactionBody  # noqa: E402
from fraudapp.extensions import db  # noqa: E402
from fraudapp.ml.simulate import simulate  # noqa: E402
from fraudapp.services import serving, tokens  # noqa: E402
from fraudapp.services.training.train import latest_windows, train_and_publish  # noqa: E402
from fraudapp.services.transactions import history as history_service  # noqa: E402
from fraudapp.services.transactions import scoring  # noqa: E402
from tests.processes import (  # noqa: E402
    BIN,
    FLASK,
    free_port,
    start,
    start_gunicorn,
    stop,
    wait_until_healthy,
)

HANDBOOK = ROOT.parent / "shared" / "data" / "handbook"
RAW_FILE = "transactions_raw_2018-04-01_to_2018-08-31.csv.gz"
LUA = ROOT / "bench" / "serve.lua"
# mlflow lives in a venv of its own (`make bench` builds it with the `bench` extra): it pins an
# older gunicorn and brings pyarrow, which changes pandas' string columns, so the app's .venv stays
# as the app ships.
BENCH_VENV = ROOT / ".venv-bench"
SAVE_MLFLOW_MODEL = (  # run by the bench venv's python: model text file, output directory
    "import sys, lightgbm, mlflow.lightgbm; "
    "mlflow.lightgbm.save_model(lightgbm.Booster(model_file=sys.argv[1]), sys.argv[2]); "
    "print(mlflow.__version__)"
)
WORKERS = 2  # gunicorn.conf.py's default, and mlflow's workers
HOLDOUT_DAYS = 7  # the history's last week becomes the request bodies
SCORE_FILE_DAYS = 31  # `flask score-file` scores the last month (a week with --quick)
CONNECTIONS = (1, 8)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a fresh temporary SQLite file")
    parser.add_argument("--quick", action="store_true", help="1-second runs, one round, a week")
    parser.add_argument("--seconds", type=float, default=5.0, help="each wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--bodies", type=int, default=10_000, help="distinct request bodies")
    parser.add_argument("--batches", type=int, default=3, help="lists of 1,000 (median rows/s)")
    parser.add_argument("--handbook", type=Path, default=HANDBOOK / RAW_FILE, help="raw CSV")
    parser.add_argument(
        "--mlflow-venv", type=Path, default=BENCH_VENV, help="a venv with mlflow (the bench extra)"
    )
    parser.add_argument(
        "--app-root",
        type=Path,
        help="serve the app of another checkout of fraudapp (e.g. `git worktree add /tmp/old "
        "COMMIT`) to compare it with this one's figures",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.batches, args.bodies = 2.0, 1, 1, 3000
    return args


# --- data ----------------------------------------------------------------------------------------


def raw_history(args) -> tuple[pd.DataFrame, str]:
    """The Handbook's raw transactions (text columns), else a simulated history of the same
    layout; and what it is."""
    if args.handbook.exists():
        frame = pd.read_csv(args.handbook, dtype=str, keep_default_na=False)
        return frame, f"Handbook {args.handbook.name}"
    print(
        f"note: {args.handbook} is absent: using the project's simulated history instead "
        "(2,000 customers, 4,000 terminals, 153 days); figures are not comparable with the "
        "Handbook's",
        file=sys.stderr,
    )
    frame = simulate(2000, 4000, "2018-04-01", 153, random_state=args.seed).astype(str)
    return frame, "simulated (Handbook file absent)"


def split_days(frame: pd.DataFrame, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows before the last `days` days, rows of the last `days` days)."""
    last = pd.Timestamp(frame["TX_DATETIME"].max()).normalize()
    cut = str(last - pd.Timedelta(days=days - 1))
    later = frame["TX_DATETIME"] >= cut
    return frame[~later], frame[later]


def import_history(frame: pd.DataFrame) -> float:
    """Import rows into the scratch database; seconds taken."""
    start_time = time.perf_counter()
    history_service.import_handbook_frame(frame, "bench")
    if db.engine.dialect.name == "postgresql":  # the statistics autovacuum would soon gather
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    return time.perf_counter() - start_time


def request_bodies(later: pd.DataFrame, known: pd.DataFrame, n: int) -> list[dict]:
    """API bodies (consent false) of the first `n` later transactions whose customer and terminal
    the history knows, in time order."""
    rows = later[
        later["CUSTOMER_ID"].isin(set(known["CUSTOMER_ID"]))
        & later["TERMINAL_ID"].isin(set(known["TERMINAL_ID"]))
    ].head(n)
    return [
        {
            "tx_datetime": when.replace(" ", "T"),
            "customer_id": int(customer),
            "terminal_id": int(terminal),
            "amount": float(amount),
            "consent": False,
        }
        for when, customer, terminal, amount in zip(
            rows["TX_DATETIME"],
            rows["CUSTOMER_ID"],
            rows["TERMINAL_ID"],
            rows["TX_AMOUNT"],
            strict=True,
        )
    ]


def feature_rows(bodies: list[dict]) -> np.ndarray:
    """The online features of each body, as fraudapp computes them (for mlflow's requests)."""
    return np.vstack(
        [
            scoring.online_features(TransactionBody.model_validate(body).to_input()[0])
            for body in bodies
        ]
    )


def write_lines(path: Path, bodies: list) -> Path:
    path.write_text("".join(json.dumps(body, separators=(",", ":")) + "\n" for body in bodies))
    return path


# --- servers -------------------------------------------------------------------------------------


class Servers:
    """fraudapp under gunicorn and `mlflow models serve`, on loopback ports of their own."""

    def __init__(self, scratch: Path, database_url: str, model_dir: str, secret: str):
        self.scratch = scratch
        self.mlflow_version = "?"
        self.env = os.environ | {
            "FRAUDAPP_DATABASE_URL": database_url,
            "FRAUDAPP_MODEL_DIR": model_dir,
            "FRAUDAPP_SECRET_KEY": secret,
            "FRAUDAPP_INSTANCE_PATH": str(scratch),
            # the shipped 6,000/minute per token would answer most of the bench's requests 429
            "FRAUDAPP_API_RATE_LIMIT": "100000000/minute",
            "PROMETHEUS_MULTIPROC_DIR": str(scratch / "metrics"),
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: list[subprocess.Popen] = []

    def fraudapp(self, app_root: Path | None = None) -> str:
        """gunicorn with gunicorn.conf.py, loading wsgi:app from this checkout or `app_root`."""
        port = free_port()
        log = self.scratch / "gunicorn.log"
        if app_root is None:
            process = start_gunicorn(self.env, port, WORKERS, log)
        else:
            args = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--chdir", str(app_root)]
            args += ["--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}"]
            process = start([*args, "--access-logfile", "-", "wsgi:app"], self.env, log)
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(process, url, log)
        return url

    def mlflow(self, booster: lgb.Booster, venv: Path) -> str:
        """Save the booster as an MLflow model (mlflow's LightGBM flavour) and serve it."""
        path, model_file = self.scratch / "mlflow-model", self.scratch / "booster.txt"
        booster.save_model(str(model_file))
        saved = subprocess.run(
            [str(venv / "bin" / "python"), "-c", SAVE_MLFLOW_MODEL, str(model_file), str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        self.mlflow_version = saved.stdout.strip().splitlines()[-1]
        port = free_port()
        log = self.scratch / "mlflow.log"
        args = [str(venv / "bin" / "mlflow"), "models", "serve", "-m", str(path)]
        args += ["--env-manager", "local"]
        args += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
        env = self.env | {  # it starts `uvicorn` by name: from its venv
            "MLFLOW_TRACKING_URI": f"file://{self.scratch / 'mlruns'}",
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        process = start(args, env, log)
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                sys.exit(f"mlflow models serve exited; its log:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url + "/ping", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return url
            except OSError:
                pass
            time.sleep(0.5)
        sys.exit(f"mlflow models serve did not answer /ping; its log:\n{log.read_text()}")

    def stop(self) -> None:
        for process in self.processes:
            stop(process)
        self.processes.clear()


def wrk(url: str, bodies: Path, auth: str, connections: int, seconds: float) -> dict:
    """One wrk run; its figures (bench/serve.lua's last line)."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    args += ["-s", str(LUA), url]
    env = os.environ | {"BENCH_BODIES": str(bodies), "BENCH_AUTH": auth}
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("BENCH "))
    figures = json.loads(line[len("BENCH ") :])
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def post(url: str, payload: bytes, auth: str) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url, data=payload, headers={"Authorization": auth, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310
        return response.status, response.read()


# --- the measurements ----------------------------------------------------------------------------


def serving_table(args, targets: dict[str, tuple[str, Path, str]]) -> dict:
    """Median figures of each target at each connection count, runs alternating between them."""
    runs: dict[tuple[str, int], list[dict]] = {}
    for url, bodies, auth in targets.values():  # warm-up: caches and connection pools
        wrk(url, bodies, auth, 8, 1)
    for round_index in range(args.rounds):
        for connections in CONNECTIONS:
            names = list(targets)
            if round_index % 2:
                names.reverse()
            for name in names:
                url, bodies, auth = targets[name]
                figures = wrk(url, bodies, auth, connections, args.seconds)
                runs.setdefault((name, connections), []).append(figures)
    return {
        key: {
            "rps": statistics.median(r["rps"] for r in results),
            "rps_min": min(r["rps"] for r in results),
            "rps_max": max(r["rps"] for r in results),
            "p50": statistics.median(r["p50_us"] for r in results) / 1e3,
            "p99": statistics.median(r["p99_us"] for r in results) / 1e3,
            "max": max(r["max_us"] for r in results) / 1e3,
            "non_2xx": sum(r["non_2xx"] + r["socket_errors"] for r in results),
            "requests": sum(r["requests"] for r in results),
        }
        for key, results in runs.items()
    }


def batch_rates(args, url: str, auth: str, bodies: list[dict]) -> dict[str, float]:
    """Rows/s of lists of 1,000 through the API, with and without consent (median of batches)."""
    rates = {}
    for consent in (False, True):
        times = []
        for index in range(args.batches + 1):  # the first is a warm-up
            chunk = bodies[index * 1000 : (index + 1) * 1000]
            payload = json.dumps({"transactions": [b | {"consent": consent} for b in chunk]})
            start_time = time.perf_counter()
            status, answer = post(url + "/api/v1/predictions", payload.encode(), auth)
            if status != 201:
                sys.exit(f"a list of 1,000 was answered {status}: {answer[:300]!r}")
            times.append(time.perf_counter() - start_time)
        rates[consent] = 1000 / statistics.median(times[1:])
    return rates


def has_score_file(env: dict) -> bool:
    done = subprocess.run([*FLASK, "--help"], cwd=ROOT, env=env, capture_output=True, text=True)
    return "score-file" in done.stdout


def score_file_rates(args, app, frame: pd.DataFrame, env: dict, scratch: Path) -> dict:
    """`flask score-file` on the last month (a week with --quick) of a fresh history of the
    months before it, without and with --store: (rows/s of the command's whole run, rows/s it
    prints for its scoring)."""
    days = 7 if args.quick else SCORE_FILE_DAYS
    before, month = split_days(frame, days)
    with app.app_context():
        reset_schema(db)
        import_history(before)
        train_and_publish(latest_windows(), promote=True)
        db.session.remove()
    source = scratch / "month.csv.gz"
    with gzip.open(source, "wt") as handle:
        month.to_csv(handle, index=False)
    rates = {"rows": len(month), "days": days}
    for store in (False, True):
        command = [*FLASK, "score-file", str(source), str(scratch / "scored.csv")]
        command += ["--store"] if store else []
        start_time = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start_time
        if done.returncode:
            print(f"note: score-file failed: {done.stderr[-500:]}", file=sys.stderr)
            rates[store] = None
            continue
        own = re.search(r"rows in [0-9.]+ s: ([0-9,]+) rows/s", done.stdout)  # its own figure
        rates[store] = (len(month) / seconds, int(own[1].replace(",", "")) if own else None)
    return rates


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("bench/serve.py needs wrk: apt-get install wrk (Debian/Ubuntu), brew install wrk")
    if not (args.mlflow_venv / "bin" / "mlflow").exists():
        sys.exit(
            f"bench/serve.py needs mlflow in {args.mlflow_venv}: `make bench` builds it, or "
            f"python3 -m venv {args.mlflow_venv}; {args.mlflow_venv}/bin/pip install -e '.[bench]'"
        )
    scratch_dir = tempfile.TemporaryDirectory(prefix="fraudapp-serve-")
    scratch = Path(scratch_dir.name)
    os.environ["FRAUDAPP_INSTANCE_PATH"] = str(scratch)  # no instance/config.py, no stray files
    database_url = args.database_url or f"sqlite:///{scratch}/bench.db"
    model_dir = str(scratch / "models")
    secret = "bench-" + os.urandom(8).hex()
    app = make_app(database_url, model_dir)
    app.config["SECRET_KEY"] = secret
    frame, what = raw_history(args)
    history, later = split_days(frame, HOLDOUT_DAYS)
    with app.app_context():
        reset_schema(db)
        version_info = ".".join(map(str, db.engine.dialect.server_version_info))
        dialect = f"{db.engine.dialect.name} {version_info}"
        import_seconds = import_history(history)
        version, _ = train_and_publish(latest_windows(), promote=True)
        model = serving.serving_model()
        auth = "Bearer " + tokens.create_token("bench")
        bodies = request_bodies(later, history, args.bodies)
        features = feature_rows(bodies)
        feature_names = list(model.meta["features"])  # the booster's inputs, in order
        db.session.remove()
        db.engine.dispose()
    consented = write_lines(scratch / "consent.jsonl", [b | {"consent": True} for b in bodies])
    anonymous = write_lines(scratch / "anonymous.jsonl", bodies)
    mlflow_bodies = write_lines(
        scratch / "mlflow.jsonl",
        [{"dataframe_split": {"columns": feature_names, "data": [r]}} for r in features.tolist()],
    )

    servers = Servers(scratch, database_url, model_dir, secret)
    try:
        fraud_url = servers.fraudapp(args.app_root)
        mlflow_url = servers.mlflow(model.booster, args.mlflow_venv)
        api = fraud_url + "/api/v1/predictions"
        check = post(api, json.dumps(bodies[0]).encode(), auth)
        if check[0] != 201:
            sys.exit(f"fraudapp answered {check}")
        targets = {
            "fraudapp, consent": (api, consented, auth),
            "fraudapp, no consent": (api, anonymous, auth),
            "mlflow models serve": (mlflow_url + "/invocations", mlflow_bodies, ""),
        }
        table = serving_table(args, targets)
        batches = batch_rates(args, fraud_url, auth, bodies)
    finally:
        servers.stop()
    env = servers.env
    score_file = None
    if has_score_file(env):
        score_file = score_file_rates(args, app, frame, env, scratch)
    setup = {
        "database": dialect,
        "history": f"{len(history):,} rows: {what}, all but its last {HOLDOUT_DAYS} days, "
        f"imported in {import_seconds:.1f} s",
        "model": f"{version}, {model.booster.num_trees()} trees, lightgbm {lgb.__version__}",
        "app": str(args.app_root or ROOT),
        "servers": f"gunicorn {gunicorn.__version__} ({WORKERS} workers, gunicorn.conf.py), "
        f"mlflow {servers.mlflow_version} ({WORKERS} workers, --env-manager local)",
    }
    report(args, setup, table, batches)
    report_files(score_file)
    scratch_dir.cleanup()


def report(args, setup: dict, table: dict, batches: dict) -> None:
    print()
    print("fraudapp under gunicorn beside `mlflow models serve` (wrk, bench/serve.lua)")
    for key, value in setup.items():
        print(f"  {key:<9}  {value}")
    print(
        f"  machine    {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        f"  runs       {args.rounds} round(s) of {args.seconds:g} s per server and connection "
        "count, alternating; medians over the rounds"
    )
    print()
    header = f"  {'connections':>11}  {'server':<22} {'req/s':>8} {'(range)':>15}"
    print(header + f" {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6} {'× mlflow':>9}")
    for connections in CONNECTIONS:
        baseline = table[("mlflow models serve", connections)]["rps"]
        for name in ("fraudapp, consent", "fraudapp, no consent", "mlflow models serve"):
            row = table[(name, connections)]
            spread = f"{row['rps_min']:,.0f}-{row['rps_max']:,.0f}"
            print(
                f"  {connections:>11}  {name:<22} {row['rps']:>8,.0f} {spread:>15} "
                f"{row['p50']:>7.2f} {row['p99']:>7.2f} {row['max']:>7.1f} "
                f"{row['non_2xx']:>6} {row['rps'] / baseline:>9.2f}"
            )
    print()
    print("  lists of 1,000 through the API (rows/s, median)")
    print(f"    consent false {batches[False]:>8,.0f}")
    print(f"    consent true  {batches[True]:>8,.0f}")


def report_files(rates: dict | None) -> None:
    print()
    if rates is None:
        print("  flask score-file: not in this version (flask --help does not list it)")
        print()
        return
    days, rows = rates["days"], rates["rows"]
    print(f"  flask score-file on the last {days} days ({rows:,} rows), rows/s:")
    print(f"    {'':<15} {'whole command':>14} {'scoring (as it prints)':>24}")
    for store, label in ((False, "without --store"), (True, "with --store")):
        if rates[store] is None:
            print(f"    {label:<15} {'failed':>14}")
            continue
        whole, own = rates[store]
        print(f"    {label:<15} {whole:>14,.0f} {'-' if own is None else f'{own:,}':>24}")
    print()


if __name__ == "__main__":
    main()
