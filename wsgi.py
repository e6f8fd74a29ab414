"""WSGI entry point for gunicorn: `gunicorn wsgi:app`."""

from fraudapp import create_app

app = create_app()
