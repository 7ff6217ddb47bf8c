"""The room pages: what a teacher and a student see after a launch, and the join control."""
from flask import Blueprint

from ..grades.policy import plain_number

bp = Blueprint("rooms", __name__, url_prefix="/rooms")
# {{ 99.8149|number }} -> 99.81: pages show grades and minutes as the gradebook receives them.
bp.add_app_template_filter(plain_number, "number")

from . import attendance_views, routes  # noqa: E402,F401  (registers the views on bp)
