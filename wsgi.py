"""WSGI entry point: `gunicorn wsgi:app`, and `flask --app wsgi …` for the command line.

The project's `.env` is read before the tool is imported: prometheus-client chooses, once at
import, whether it keeps metrics for several processes (PROMETHEUS_MULTIPROC_DIR, lti_tool/metrics.py).
"""
from pathlib import Path

from dotenv import load_dotenv

load_dotenv(Path(__file__).resolve().parent / ".env", override=False)

from lti_tool import create_app  # noqa: E402 - after the environment is complete

app = create_app()
