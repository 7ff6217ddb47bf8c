"""WSGI entry point: `gunicorn wsgi:app`, and `flask --app wsgi …` for the command line."""
from lti_tool import create_app

app = create_app()
