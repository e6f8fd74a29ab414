"""The WSGI entry point gunicorn's workers load."""

from __future__ import annotations

import subprocess
import sys

from tests.processes import ROOT


def test_a_worker_hides_its_startup_objects_from_the_garbage_collector(tmp_path):
    script = "import gc, wsgi; print(gc.get_freeze_count())"
    env = {
        "FRAUDAPP_SECRET_KEY": "test",
        "FRAUDAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
        "FRAUDAPP_MODEL_DIR": str(tmp_path / "models"),
        "FRAUDAPP_NODE_SYNC_SECONDS": "0",
        "FRAUDAPP_INSTANCE_PATH": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 10_000  # modules and the app: frozen, not collected
