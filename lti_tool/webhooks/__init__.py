"""Callbacks from video providers, all under /webhooks/ (JSON answers, never pages)."""
from flask import Blueprint

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

from . import routes  # noqa: E402,F401  (registers the views on bp)
