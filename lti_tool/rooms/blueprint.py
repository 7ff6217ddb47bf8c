"""The rooms blueprint (/rooms/…), on which routes.py and attendance_views.py register views."""
from flask import Blueprint

from ..grades.policy import plain_number

bp = Blueprint("rooms", __name__, url_prefix="/rooms")
# {{ 99.8149|number }} -> 99.81: pages show grades and minutes as the gradebook receives them.
bp.add_app_template_filter(plain_number, "number")
