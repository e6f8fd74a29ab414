"""Time from a promotion (or rollback) to every gunicorn worker serving the new version, under load.

Sets up a demo instance like `make run` (small), publishes a second version, starts gunicorn with
several workers, keeps a client loop scoring transactions on loopback, promotes v2 and then v1 again
(as `flask models promote` does: the release in the database, then the registry pointer), and prints
per switch: seconds until every worker answered with the new version, failed requests, and request
latency before and during the switch.

    .venv/bin/python bench/hot_swap.py [--workers 4] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from fraudapp import create_app  # noqa: E402
from fraudapp.services.training import runs  # noqa: E402


def flask(env: dict, *args: str) -> str:
    """Run a flask command like an operator; its output."""
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "fraudapp", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def call(url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict, float]:
    """One request; (status, JSON body, seconds)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method="POST" if data else "GET",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read()), time.perf_counter() - started
    except urllib.error.HTTPError as exc:
        return exc.code, {}, time.perf_counter() - started
    except OSError:
        return 0, {}, time.perf_counter() - started


class Load:
    """Client threads scoring transactions until stopped, `clients` per server URL; every outcome
    (time, status, model version, seconds) is kept."""

    def __init__(self, urls: list[str], token: str, clients: int):
        self.token, self.stop = token, threading.Event()
        self.outcomes: list[tuple[float, int, str | None, float]] = []
        self.threads = [
            threading.Thread(target=self._loop, args=(url, i), daemon=True)
            for url in urls
            for i in range(clients)
        ]

    def _loop(self, url: str, seed: int) -> None:
        n = 0
        while not self.stop.is_set() and n < 100_000:
            n += 1
            status, body, seconds = call(
                f"{url}/api/v1/predictions",
                {
                    "tx_datetime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                    "customer_id": (seed * 7919 + n) % 300,
                    "terminal_id": n % 600,
                    "amount": 10.0 + n % 200,
                    "consent": False,
                },
                self.token,
            )
            self.outcomes.append((time.monotonic(), status, body.get("model_version"), seconds))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()


def switch(url: str, app, version: str, workers: set[int], limit: float = 10.0):
    """Promote `version` as `flask models promote` does; seconds from the promotion until every
    worker's /healthz names it."""
    started = time.monotonic()
    with app.app_context():
        runs.promote(version, "bench")
    seen: dict[int, float] = {}
    while time.monotonic() - started < limit and set(seen) < workers:
        status, body, _ = call(f"{url}/healthz")
        if status == 200 and body["model_version"] == version:
            seen.setdefault(body["worker"], time.monotonic() - started)
    return max(seen.values()) if set(seen) >= workers else float("nan"), started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fraudapp-hotswap-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FRAUDAPP_")},
        "FRAUDAPP_INSTANCE_PATH": str(tmp),
        "FRAUDAPP_DEMO_CUSTOMERS": "300",
        "FRAUDAPP_DEMO_TERMINALS": "600",
        "FRAUDAPP_DEMO_DAYS": "45",
        "FRAUDAPP_TRAINING_THREADS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }
    flask(env, "db", "upgrade")
    flask(env, "init-demo")
    flask(env, "train")  # v2, not promoted
    token = flask(env, "create-api-token", "bench").strip().splitlines()[-1]
    os.environ.update(env)  # this process promotes, on the same instance
    app = create_app()
    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--config",
            "gunicorn.conf.py",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{args.port}",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        workers = warm_up(url, args.workers)
        with Load([url], token, args.clients) as load:
            time.sleep(3)
            results = []
            for version in ("v2", "v1"):
                seconds, started = switch(url, app, version, workers)
                results.append((version, seconds, started))
                time.sleep(3)
        report(load.outcomes, results, args)
    finally:
        server.terminate()
        server.wait(timeout=30)


def warm_up(url: str, expected: int) -> set[int]:
    """Wait for the server; the worker pids seen answering."""
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(workers) < expected:
        status, body, _ = call(f"{url}/healthz")
        if status == 200:
            workers.add(body["worker"])
        else:
            time.sleep(0.2)
    return workers


def report(outcomes, results, args) -> None:
    """Print the switch times, errors and latencies."""
    first_switch = results[0][2]
    before = [s for t, _, _, s in outcomes if t < first_switch]
    during = [s for t, _, _, s in outcomes if t >= first_switch]
    errors = sum(1 for _, status, _, _ in outcomes if status != 201)
    print(
        f"{args.workers} workers, {args.clients} client threads, {len(outcomes)} requests, "
        f"{errors} failed"
    )
    for version, seconds, _ in results:
        print(f"switch to {version}: every worker serving it after {seconds:.3f} s")
    for name, values in (("before the switches", before), ("during and after", during)):
        if values:
            ms = sorted(v * 1000 for v in values)
            print(
                f"latency {name}: median {statistics.median(ms):.1f} ms, "
                f"p99 {ms[int(len(ms) * 0.99) - 1]:.1f} ms ({len(ms)} requests)"
            )


if __name__ == "__main__":
    main()
