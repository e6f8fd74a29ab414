"""WSGI entry point for gunicorn: `gunicorn wsgi:app`.

Each worker of a prediction node also runs the node agent: it converges on the database's current
model version when it starts and every FRAUDAPP_NODE_SYNC_SECONDS, and reports its heartbeat; a
thread runs the file jobs of "Score a file" uploaded to this node. On SQLite, a thread of each
worker checkpoints the write-ahead log, so that no request waits for a checkpoint
(fraudapp/database.py).

Everything loaded so far (modules, the app, the model) lives as long as the worker: gc.freeze()
moves it out of the collector's sight, so a full collection scans only what requests left behind
(about 200,000 startup objects made each full collection take 90-260 ms in a worker).
"""

import gc

from fraudapp import create_app
from fraudapp.database import start_checkpointer
from fraudapp.services.distribution.agent import start_agent
from fraudapp.services.transactions.file_jobs import start_file_worker

app = create_app()
start_checkpointer(app)
if app.config["ROLE"] != "trainer":
    start_agent(app)
    start_file_worker(app)
gc.freeze()
