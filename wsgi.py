"""WSGI entry point for gunicorn: `gunicorn wsgi:app`.

Each worker of a prediction node also runs the node agent: it converges on the database's current
model version when it starts and every FRAUDAPP_NODE_SYNC_SECONDS, and reports its heartbeat; and
a thread that runs the file jobs of "Score a file" uploaded to this node.
"""

from fraudapp import create_app
from fraudapp.services.distribution.agent import start_agent
from fraudapp.services.transactions.file_jobs import start_file_worker

app = create_app()
if app.config["ROLE"] != "trainer":
    start_agent(app)
    start_file_worker(app)
