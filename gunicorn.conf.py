"""gunicorn settings: threaded workers, Prometheus multiprocess directory and clean-up of exited
workers.

Workers are threaded (gthread): a client that sends its request slowly holds one thread, not a
whole worker, so /healthz and everyone else keep being served while up to FRAUDAPP_THREADS - 1
such connections sit on each worker. Facing the internet, put a buffering proxy in front anyway
(deploy/nginx.conf): it reads whole requests before gunicorn sees them.
"""

import os
import shutil
import tempfile

bind = os.environ.get("FRAUDAPP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("FRAUDAPP_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("FRAUDAPP_THREADS", "16"))
accesslog = "-"
control_socket_disable = True  # gunicorn >= 27: no shared ~/.gunicorn/gunicorn.ctl between runs

_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(tempfile.gettempdir(), f"fraudapp-metrics-{os.getpid()}"),
)


def on_starting(server):
    """Start every run with an empty metrics directory."""
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker):
    """Forget the live gauges of a worker that exited."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
