"""The room pages: what a teacher and a student see after a launch, and the join control."""
from flask import Blueprint

bp = Blueprint("rooms", __name__, url_prefix="/rooms")

from . import attendance_views, livekit_views, routes  # noqa: E402,F401  (registers the views on bp)
