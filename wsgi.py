"""WSGI entry point for gunicorn: `gunicorn wsgi:app`.

Each worker of a prediction node also runs the node agent: it converges on the database's current
model version when it starts and every FRAUDAPP_NODE_SYNC_SECONDS, and reports its heartbeat.
"""

from fraudapp import create_app
from fraudapp.services.distribution.agent import start_agent

app = create_app()
if app.config["ROLE"] != "trainer":
    start_agent(app)
