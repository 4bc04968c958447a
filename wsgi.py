"""The WSGI entry point: `gunicorn wsgi:app`."""

from welead.app import create_app

app = create_app()
