"""Time from a promotion to both prediction nodes serving it: signed webhook against periodic check.

Sets up PostgreSQL (a database of its own), a trainer (gunicorn serving artifacts + `flask
trainer`) and two prediction nodes (gunicorn, two workers each, their own model dirs) on loopback,
keeps one client per node scoring transactions, and switches the serving version (`flask models
promote`) several times in each of two set-ups measured in the same run:

- webhook: the trainer tells the nodes (FRAUDAPP_NODES); their periodic check is off (600 s);
- periodic: no webhook; the nodes' periodic check runs every NODE_SYNC_SECONDS (10 s, the default).

Prints, per set-up, the seconds from the release to every worker of both nodes serving it (median
and max), the ratio between the two, and the failed scoring requests.

    .venv/bin/python bench/distribution.py [--switches 4] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hot_swap import Load  # noqa: E402  (bench/ is on the path when run as a script)
from sqlalchemy import create_engine, text  # noqa: E402

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

WORKERS = 2
PERIODIC_SECONDS = 10  # the default NODE_SYNC_SECONDS


def serving(url: str) -> set:
    """Versions answered by a node's workers over several /healthz requests."""
    found = set()
    for _ in range(3 * WORKERS):
        try:
            status, body = healthz(url)
            found.add(body["model_version"] if status == 200 else None)
        except OSError:
            found.add("down")
    return found


def measure(mode: str, database_url: str, switches: int, tmp: Path) -> dict:
    """Start trainer and nodes in one set-up, switch versions; the timings."""
    secret = secrets.token_hex(24)
    ports = {name: free_port() for name in ("trainer", "a", "b")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDAPP_")} | {
        "FRAUDAPP_DATABASE_URL": database_url,
        "FRAUDAPP_WEBHOOK_SECRET": secret,
        "FRAUDAPP_SECRET_KEY": secrets.token_hex(24),
        "PYTHONUNBUFFERED": "1",
    }
    trainer = base | {
        "FRAUDAPP_ROLE": "trainer",
        "FRAUDAPP_INSTANCE_PATH": str(tmp / "trainer"),
        "FRAUDAPP_ARTIFACT_BASE_URL": urls["trainer"],
        "FRAUDAPP_NODES": json.dumps([urls["a"], urls["b"]] if mode == "webhook" else []),
        "FRAUDAPP_NODE_NAME": "trainer",
    }
    sync = "600" if mode == "webhook" else str(PERIODIC_SECONDS)
    log = tmp / f"{mode}.log"
    processes = {
        "artifacts": start_gunicorn(trainer, ports["trainer"], 1, log),
        "trainer": start([*FLASK, "trainer"], trainer, log),
    }
    try:
        wait_until_healthy(processes["artifacts"], urls["trainer"], log)
        for name in ("a", "b"):
            env = base | {
                "FRAUDAPP_ROLE": "web",
                "FRAUDAPP_INSTANCE_PATH": str(tmp / f"{mode}-node-{name}"),
                "FRAUDAPP_NODE_NAME": f"{mode}-node-{name}",
                "FRAUDAPP_NODE_SYNC_SECONDS": sync,
            }
            processes[name] = start_gunicorn(env, ports[name], WORKERS, log)
            wait_until_healthy(processes[name], urls[name], log)
        nodes = [urls["a"], urls["b"]]
        token = run_step([*FLASK, "create-api-token", f"bench-{mode}"], trainer, log).split()[-1]
        engine = create_engine(engine_url(database_url))
        seconds = []
        with Load(nodes, token, clients=1) as load:
            for i in range(switches):
                version = "v2" if i % 2 == 0 else "v1"
                run_step([*FLASK, "models", "promote", version], trainer, log)
                with engine.connect() as connection:
                    released = connection.execute(
                        text("SELECT created_at FROM model_releases ORDER BY id DESC LIMIT 1")
                    ).scalar()
                while not all(serving(url) == {version} for url in nodes):
                    time.sleep(0.05)
                seconds.append((dt.datetime.now(dt.UTC) - released).total_seconds())
                print(f"  {mode}: {version} on both nodes after {seconds[-1]:.2f} s", flush=True)
        engine.dispose()
        failed = sum(1 for _, status, _, _ in load.outcomes if status != 201)
        return {"seconds": seconds, "requests": len(load.outcomes), "failed": failed}
    finally:
        for process in processes.values():
            stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=4)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("FRAUDAPP_DATABASE_URL") or "postgresql://postgres@127.0.0.1/test",
        help="a PostgreSQL server (a database of its own is created on it and dropped)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fraudapp-distribution-"))
    admin = create_engine(engine_url(args.database_url), isolation_level="AUTOCOMMIT")
    name = f"fraudapp_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = engine_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    try:
        setup = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDAPP_")} | {
            "FRAUDAPP_DATABASE_URL": url,
            "FRAUDAPP_ROLE": "trainer",
            "FRAUDAPP_INSTANCE_PATH": str(tmp / "trainer"),
            "FRAUDAPP_DEMO_CUSTOMERS": "300",
            "FRAUDAPP_DEMO_TERMINALS": "600",
            "FRAUDAPP_DEMO_DAYS": "40",
            "FRAUDAPP_TRAINING_THREADS": "2",
        }
        log = tmp / "setup.log"
        run_step([*FLASK, "db", "upgrade"], setup, log)
        run_step([*FLASK, "init-demo"], setup, log)
        run_step([*FLASK, "train"], setup, log)  # v2, not promoted
        results = {mode: measure(mode, url, args.switches, tmp) for mode in ("webhook", "periodic")}
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    print(f"\n{args.switches} switches per set-up, 2 nodes × {WORKERS} workers, PostgreSQL")
    for mode, result in results.items():
        s = result["seconds"]
        print(
            f"{mode:>8}: release → every worker of both nodes serving: median "
            f"{statistics.median(s):.2f} s, max {max(s):.2f} s; scoring requests "
            f"{result['requests']}, failed {result['failed']}"
        )
    ratio = statistics.median(results["periodic"]["seconds"]) / statistics.median(
        results["webhook"]["seconds"]
    )
    print(f"periodic check ({PERIODIC_SECONDS} s) / webhook, medians: {ratio:.1f}×")


if __name__ == "__main__":
    main()
