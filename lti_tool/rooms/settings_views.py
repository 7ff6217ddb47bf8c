"""The room settings form's view: a teacher saves the room's settings (rooms/settings_form.py).

Saved: back to the room page with `?saved=1` (the settings panel stays open, "Settings saved.").
Refused (a contradiction, a value the tool cannot use): the room page again with status 400,
the panel open, the problems at its top and the form as the teacher left it; nothing stored.
"""
from __future__ import annotations

import logging

from flask import g, redirect, request

from ..logsafe import quoted
from . import service
from .access import RoomAccess, page_url, room_view
from .blueprint import bp
from .routes import show

log = logging.getLogger(__name__)

# The room page's settings panel reads its groups from here: {{ room_setting_groups(room) }}.
bp.add_app_template_global(service.setting_groups, "room_setting_groups")
bp.add_app_template_global(service.supported_settings, "room_setting_fields")


@bp.post("/<int:room_id>/settings")
@room_view(teacher=True)
def settings(access: RoomAccess):
    try:
        service.update_settings(access.room, request.form)
    except service.SettingsRefused as refused:
        log.info("room %s: settings refused: %s", access.room.id, quoted(refused.problems))
        g.settings_refused = refused  # read by rooms/_settings_form.html
        return show.__wrapped__(access), 400
    return redirect(page_url("rooms.show", saved=1), code=303)
