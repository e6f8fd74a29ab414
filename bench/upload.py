"""Memory of a gunicorn worker receiving a large upload on Score a file (`/files`).

Builds a fresh demo instance (as `make run` does, small demo sizes), starts gunicorn with one
worker and file jobs switched off (FRAUDAPP_FILE_POLL_SECONDS=0: this measures the upload, not the
scoring), logs in an analyst with curl and uploads a generated Handbook-format CSV of --rows rows.
Prints the worker's resident memory before the upload and its peak (VmHWM) after, the file's size
and the upload's wall time.

    .venv/bin/python bench/upload.py --rows 4000000
"""

from __future__ import annotations

import argparse
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import processes  # noqa: E402


def _write_csv(path: Path, rows: int) -> None:
    with path.open("w") as handle:
        handle.write("TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n")
        for i in range(rows):
            handle.write(
                f"b{i},2018-05-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{i % 59:02d},"
                f"{i % 5000},{i % 10000},{(i % 9973) / 7:.2f},0\n"
            )


def _memory(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) // 1024  # MiB
    return fields


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def _curl(jar: Path, *args: str) -> str:
    command = ["curl", "-sS", "-b", str(jar), "-c", str(jar), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    return match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    options = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fraudapp-upload-"))
    log = tmp / "server.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "FRAUDAPP_INSTANCE_PATH": str(tmp / "instance"),
        "FRAUDAPP_DATABASE_URL": f"sqlite:///{tmp / 'fraudapp.db'}",
        "FRAUDAPP_DEMO_CUSTOMERS": "300",
        "FRAUDAPP_DEMO_TERMINALS": "600",
        "FRAUDAPP_DEMO_DAYS": "40",
        "FRAUDAPP_FILE_POLL_SECONDS": "0",
        "FRAUDAPP_FILE_MAX_BYTES": str(1024**3),
    }
    password = secrets.token_urlsafe(12)
    processes.run_step([*processes.FLASK, "db", "upgrade"], env, log)
    processes.run_step([*processes.FLASK, "init-demo"], env, log)
    processes.run_step(
        [*processes.FLASK, "create-user", "bench", "--role", "analyst", "--password", password],
        env,
        log,
    )
    source = tmp / "large.csv"
    _write_csv(source, options.rows)
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    server = processes.start_gunicorn(env, port, 1, log)
    try:
        processes.wait_until_healthy(server, url, log)
        jar = tmp / "cookies"
        token = _token(_curl(jar, f"{url}/login"))
        _curl(jar, "-d", f"csrf_token={token}&username=bench&password={password}", f"{url}/login")
        token = _token(_curl(jar, f"{url}/files"))
        worker = _worker_pid(server.pid)
        before = _memory(worker)
        started = time.monotonic()
        status = _curl(
            jar,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-F",
            f"csrf_token={token}",
            "-F",
            f"file=@{source};type=text/csv",
            f"{url}/files",
        )
        seconds = time.monotonic() - started
        after = _memory(worker)
    finally:
        processes.stop(server)
    size = source.stat().st_size / 1024**2
    print(f"upload of {options.rows:,} rows ({size:.0f} MiB): HTTP {status} in {seconds:.1f} s")
    print(f"worker resident memory: {before['VmRSS']} MiB before, peak {after['VmHWM']} MiB")


if __name__ == "__main__":
    main()
