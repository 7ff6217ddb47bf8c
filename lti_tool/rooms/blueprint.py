"""The rooms blueprint (/rooms/…), on which routes.py and attendance_views.py register views."""
from flask import Blueprint

from ..grades.policy import grade_text, plain_number

bp = Blueprint("rooms", __name__, url_prefix="/rooms")
# {{ 99.8149|number }} -> 99.81: pages show grades and minutes as the gradebook receives them.
bp.add_app_template_filter(plain_number, "number")
# {{ 7.5|grade(10) }} -> "7.5 of 10 points"; out of 100: "99.83%".
bp.add_app_template_filter(grade_text, "grade")
