"""WSGI entry point for gunicorn: `gunicorn wsgi:app`.

Each worker of a prediction node also runs the node agent: it converges on the database's current
model version when it starts and every FRAUDAPP_NODE_SYNC_SECONDS, and reports its heartbeat. On
SQLite, a thread of each worker checkpoints the write-ahead log, so that no request waits for a
checkpoint (fraudapp/database.py).
"""

from fraudapp import create_app
from fraudapp.database import start_checkpointer
from fraudapp.services.distribution.agent import start_agent

app = create_app()
start_checkpointer(app)
if app.config["ROLE"] != "trainer":
    start_agent(app)
