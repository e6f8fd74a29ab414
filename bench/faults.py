"""Faults under load: what each costs in failed requests, time to recover and lost writes.

Starts the real thing as `make run` does (gunicorn with the shipped gunicorn.conf.py, and the
trainer) on a small demo instance, on SQLite and on PostgreSQL — the latter through a TCP proxy on
loopback that can cut the database — and keeps client threads sending consented predictions, each
followed by its feedback. Then, one at a time:

- the database cut for a few seconds, then restored (PostgreSQL only: SQLite is a file);
- `kill -9` of a gunicorn worker;
- the serving version's model.txt truncated, a worker restarted meanwhile, then the file restored;
- the model directory unwritable (its lock files replaced by folders, which fails the writes of
  every process even as root): the background threads must survive and report again;

and last the plain load: 16 clients for 60 s. Per fault it prints requests, failed requests (5xx or
connection errors), recovery time (from the end of the fault until requests succeed again; for the
model directory, until every process reports a successful sync again) and lost writes (predictions
the clients got a 201 for that are not in the database).

    .venv/bin/python bench/faults.py [--quick] [--database-url postgresql://.../DB]

The PostgreSQL database given (default FRAUDAPP_DATABASE_URL) is emptied first; without one only
SQLite runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from tests import processes  # noqa: E402
from tests.dbproxy import TcpProxy  # noqa: E402
from tests.processes import (  # noqa: E402
    FLASK,
    engine_url,
    free_port,
    healthz,
    run_step,
    start,
    start_gunicorn,
    stop,
    wait_until_healthy,
)

WORKERS = 2  # gunicorn.conf.py's default
processes.STEP_TIMEOUT = 1800  # setting up the demo takes long on a busy machine


def call(url: str, body: dict, token: str) -> tuple[int, dict]:
    """One POST; (status, JSON body); status 0 for a connection error."""
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except OSError:
        return 0, {}


class Clients:
    """Client threads each sending a consented prediction, then feedback on it, until stopped.
    Every outcome is kept as (started, ended, kind, status, prediction id)."""

    def __init__(self, url: str, token: str, clients: int) -> None:
        self.url, self.token, self.stop = url, token, threading.Event()
        self.outcomes: list[tuple[float, float, str, int, int | None]] = []
        self.threads = [
            threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(clients)
        ]

    def _loop(self, seed: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            body = {
                "tx_datetime": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                "customer_id": (seed * 7919 + n) % 150,
                "terminal_id": n % 300,
                "amount": 10.0 + n % 200,
                "consent": True,
                "transaction_id": uuid.uuid4().hex,
            }
            started = time.monotonic()
            status, answer = call(f"{self.url}/api/v1/predictions", body, self.token)
            ident = answer.get("id") if status == 201 else None
            self.outcomes.append((started, time.monotonic(), "predict", status, ident))
            if ident is None:
                continue
            started = time.monotonic()
            status, _ = call(
                f"{self.url}/api/v1/predictions/{ident}/feedback",
                {"correct": n % 3 > 0},
                self.token,
            )
            self.outcomes.append((started, time.monotonic(), "feedback", status, None))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()


class Deployment:
    """A demo instance served by gunicorn and worked by a trainer, on one database."""

    def __init__(self, name: str, tmp: Path, database_url: str | None) -> None:
        self.name, self.tmp, self.log = name, tmp, tmp / f"{name}.log"
        self.direct = database_url or f"sqlite:///{tmp / name / 'fraudapp.db'}"
        self.proxy = None
        served = self.direct
        if database_url:
            url = make_url(database_url)
            self.proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
            served = url.set(host="127.0.0.1", port=self.proxy.port).render_as_string(False)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDAPP_")} | {
            "FRAUDAPP_INSTANCE_PATH": str(tmp / name),
            "FRAUDAPP_DATABASE_URL": served,
            "FRAUDAPP_SECRET_KEY": secrets.token_hex(24),
            "FRAUDAPP_DEMO_CUSTOMERS": "150",
            "FRAUDAPP_DEMO_TERMINALS": "300",
            "FRAUDAPP_DEMO_DAYS": "45",
            "FRAUDAPP_TRAINING_THREADS": "1",
            "FRAUDAPP_NODE_SYNC_SECONDS": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"{name}-metrics"),
            "PYTHONUNBUFFERED": "1",
        }
        self.models = tmp / name / "models"
        self.processes: dict = {}

    def setup(self) -> str:
        """Schema, demo history and model, a release, an API token; the token."""
        if self.proxy is not None:
            engine = create_engine(engine_url(self.direct), isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
            engine.dispose()
        run_step([*FLASK, "db", "upgrade"], self.env, self.log)
        run_step([*FLASK, "init-demo"], self.env, self.log)
        run_step([*FLASK, "models", "promote", "v1"], self.env, self.log)
        return run_step([*FLASK, "create-api-token", "faults"], self.env, self.log).split()[-1]

    def start(self) -> None:
        """gunicorn and the trainer (named "trainer" on the nodes page)."""
        self.processes["web"] = start_gunicorn(self.env, self.port, WORKERS, self.log)
        wait_until_healthy(self.processes["web"], self.url, self.log)
        trainer = self.env | {"FRAUDAPP_NODE_NAME": "trainer"}
        self.processes["trainer"] = start([*FLASK, "trainer"], trainer, self.log)

    def stop(self) -> None:
        for process in self.processes.values():
            stop(process)
        if self.proxy is not None:
            self.proxy.stop()

    def stored(self, ids: list[int]) -> set[int]:
        """Which of these prediction ids the database holds."""
        engine = create_engine(engine_url(self.direct))
        found: set[int] = set()
        with engine.connect() as connection:
            for i in range(0, len(ids), 5000):
                chunk = ",".join(str(int(x)) for x in ids[i : i + 5000])
                found |= set(
                    connection.execute(text(f"SELECT id FROM predictions WHERE id IN ({chunk})"))  # noqa: S608 (integers)
                    .scalars()
                    .all()
                )
        engine.dispose()
        return found

    def reported_since(self, since_wall: float) -> bool:
        """Whether every process reported a successful sync after this (wall) time."""
        engine = create_engine(engine_url(self.direct))
        with engine.connect() as connection:
            columns = {
                row[0]
                for row in connection.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'node_status'"
                    )
                    if engine.dialect.name == "postgresql"
                    else text("SELECT name FROM pragma_table_info('node_status')")
                )
            }
            column = "last_success_at" if "last_success_at" in columns else "heartbeat_at"
            rows = connection.execute(text(f"SELECT {column} FROM node_status")).scalars().all()  # noqa: S608
        engine.dispose()
        times = [_epoch(value) for value in rows]
        return len(times) >= 2 and all(t is not None and t > since_wall for t in times)

    def wait_for_workers(self, timeout: float = 90.0) -> None:
        """Until every worker answers /healthz with 200 (a restarted one has loaded the model)."""
        seen: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(seen) < WORKERS and time.monotonic() < deadline:
            try:
                status, body = healthz(self.url)
            except OSError:
                status = 0
            if status == 200:
                seen.add(body["worker"])
            else:
                seen.clear()
                time.sleep(0.2)

    def worker(self) -> int:
        """The pid of a gunicorn worker."""
        return healthz(self.url)[1]["worker"]

    def model_file(self) -> Path:
        return self.models / (self.models / "CURRENT").read_text().strip() / "model.txt"


def _epoch(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


# -- the faults: each returns (start, end) in time.monotonic(); the load runs meanwhile -----------


def cut_database(deploy: Deployment, hold: float):
    started = time.monotonic()
    deploy.proxy.cut()
    time.sleep(hold)
    deploy.proxy.restore()
    return started, time.monotonic()


def kill_worker(deploy: Deployment, hold: float):
    started = time.monotonic()
    os.kill(deploy.worker(), signal.SIGKILL)
    return started, time.monotonic()


def corrupt_model(deploy: Deployment, hold: float):
    path = deploy.model_file()
    original = path.read_bytes()
    started = time.monotonic()
    path.write_bytes(original[: len(original) // 2])
    os.kill(deploy.worker(), signal.SIGKILL)  # a worker that starts now must load it
    time.sleep(hold)
    path.write_bytes(original)
    return started, time.monotonic()


def unwritable_model_dir(deploy: Deployment, hold: float):
    locks = [deploy.models / ".pointer.lock", deploy.models / ".install.lock"]
    started = time.monotonic()
    for lock in locks:
        lock.unlink(missing_ok=True)
        lock.mkdir()  # open(lock, "w") now fails in every process, root or not
    time.sleep(max(hold, 3.0))  # several sync rounds of every process
    for lock in locks:
        shutil.rmtree(lock)
    return started, time.monotonic()


def measure(deploy: Deployment, token: str, args) -> list[dict]:
    """The faults one after another under `args.clients` clients, then the plain load."""
    faults = [("kill -9 of a worker", kill_worker)]
    if deploy.proxy is not None:
        faults.insert(0, ("database cut", cut_database))
    faults += [
        ("model.txt truncated, then restored", corrupt_model),
        ("model dir unwritable", unwritable_model_dir),
    ]
    rows = []
    with Clients(deploy.url, token, args.clients) as clients:
        time.sleep(args.settle)
        for name, fault in faults:
            deploy.wait_for_workers()  # each fault starts from a healthy, warm server
            started, ended = fault(deploy, args.hold)
            background = _background(name, deploy, time.time(), ended)
            time.sleep(max(0.0, args.settle - (time.monotonic() - ended)))
            rows.append(
                _row(f"{name} ({ended - started:.1f} s)", clients, deploy, started, ended)
                | background
            )
            print(_format(deploy.name, rows[-1]), flush=True)
    with Clients(deploy.url, token, args.load_clients) as clients:
        started = time.monotonic()
        time.sleep(args.load_seconds)
    rows.append(
        _row(
            f"none: {args.load_clients} clients × {args.load_seconds:.0f} s",
            clients,
            deploy,
            started,
            started,
        )
    )
    print(_format(deploy.name, rows[-1]), flush=True)
    return rows


def _row(name: str, clients: Clients, deploy: Deployment, started: float, ended: float) -> dict:
    window = [o for o in clients.outcomes if o[0] >= started - 0.5 or o[1] >= started]
    failed = [o for o in window if o[3] == 0 or o[3] >= 500]
    late = [o[1] - ended for o in failed if o[1] >= ended]
    last = max(clients.outcomes, key=lambda o: o[1])[1] if clients.outcomes else ended
    if not late:
        recovery = "0.0 s"
    elif last - (ended + max(late)) < 1.0:
        recovery = f"not within {last - ended:.0f} s"
    else:
        recovery = f"{max(late):.1f} s"
    written = [o[4] for o in window if o[2] == "predict" and o[3] == 201]
    lost = len(written) - len(deploy.stored(written))
    return {
        "fault": name,
        "requests": len(window),
        "failed": len(failed),
        "recovery": recovery,
        "lost": lost,
    }


def _background(name: str, deploy: Deployment, wall: float, ended: float) -> dict:
    """For the model dir: recovery is until every process reports a successful sync again."""
    if not name.startswith("model dir"):
        return {}
    deadline = ended + 20
    while time.monotonic() < deadline:
        if deploy.reported_since(wall):
            return {"recovery": f"{time.monotonic() - ended:.1f} s (every process syncs again)"}
        time.sleep(0.25)
    return {"recovery": "not within 20 s (a process stopped reporting)"}


def _format(database: str, row: dict) -> str:
    return (
        f"| {database} | {row['fault']} | {row['requests']} | {row['failed']} | "
        f"{row['recovery']} | {row['lost']} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter faults and load (~2 min)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("FRAUDAPP_DATABASE_URL"),
        help="a PostgreSQL database to use (emptied first); SQLite only without one",
    )
    parser.add_argument(
        "--only", choices=["sqlite", "postgresql"], help="run on one of the two databases only"
    )
    args = parser.parse_args()
    args.clients = 4
    args.load_clients = 16
    args.hold, args.settle, args.load_seconds = (3.0, 3.0, 10.0) if args.quick else (5.0, 6.0, 60.0)
    tmp = Path(tempfile.mkdtemp(prefix="fraudapp-faults-"))
    backends = [("SQLite", None)]
    if args.database_url and make_url(args.database_url).get_backend_name() == "postgresql":
        backends.append(("PostgreSQL", args.database_url))
    backends = [b for b in backends if args.only in (None, b[0].lower())]
    print("| Database | Fault | Requests | Failed | Recovery | Lost writes |")
    print("|---|---|---:|---:|---|---:|", flush=True)
    for name, url in backends:
        deploy = Deployment(name, tmp, url)
        token = deploy.setup()
        try:
            deploy.start()
            measure(deploy, token, args)
        finally:
            deploy.stop()
    print(f"(logs in {tmp})")


if __name__ == "__main__":
    main()
