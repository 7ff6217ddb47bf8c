"""The room settings form: what a teacher reads (grouped, each option said positively, only the
options the room's video service honours) and how a sent form becomes `RoomSettings`, with
contradictions refused in words a teacher can act on.

`RoomSettings` keeps the providers' vocabulary (`lock_disable_cam`); the form speaks the
teacher's ("Students may use their camera", ticked = not locked). A field the room's provider
does not honour is not shown and keeps its stored value (an absent checkbox is not "off").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..providers.base import RoomSettings

MAX_PARTICIPANTS = 10000
MAX_WELCOME = 500
# The tool's own rules, honoured whatever the video service (rooms/service.may_join_now).
TOOL_SETTINGS = frozenset({"wait_for_moderator"})


@dataclass(frozen=True)
class Choice:
    """One checkbox: the RoomSettings field it sets, its form name and its label; `inverted`
    when ticking it turns the field off (a positive label for a `lock_…` field)."""

    field: str
    name: str
    label: str
    inverted: bool = False

    def checked(self, settings: RoomSettings) -> bool:
        return getattr(settings, self.field) != self.inverted


@dataclass(frozen=True)
class Group:
    key: str
    legend: str
    choices: tuple[Choice, ...]


GROUPS = (
    Group("roles", "Who may do what", (
        Choice("wait_for_moderator", "wait_for_moderator", "Students wait until a teacher starts the class"),
        Choice("everyone_moderator", "everyone_moderator",
               "Everyone joins the video meeting as a moderator (students can then mute, remove and present "
               "there; in this tool only teachers change settings, end the class and see everyone's attendance)"),
        Choice("lock_hide_user_list", "students_see_people", "Students see who else is in the class", True),
    )),
    Group("media", "Audio and video", (
        Choice("lock_disable_mic", "students_microphone", "Students may use their microphone", True),
        Choice("lock_disable_cam", "students_camera", "Students may use their camera", True),
        Choice("webcams_only_for_moderator", "students_see_cameras",
               "Students see each other's cameras (otherwise only the teachers')", True),
        Choice("mute_on_start", "mute_on_start", "Microphones are muted when people join"),
    )),
    Group("chat", "Chat and notes", (
        Choice("lock_disable_public_chat", "students_public_chat", "Students may write in the class chat", True),
        Choice("lock_disable_private_chat", "students_private_chat",
               "Students may send private messages to each other", True),
        Choice("lock_disable_notes", "students_notes", "Students may edit the shared notes", True),
    )),
    Group("recording", "Recording", (
        Choice("record", "record", "The class may be recorded"),
        Choice("auto_start_recording", "auto_start_recording", "Start recording automatically when the class starts"),
        Choice("allow_start_stop_recording", "allow_start_stop_recording", "Teachers may start and stop the recording"),
    )),
)
LABELS = {choice.field: choice.label for group in GROUPS for choice in group.choices}


class SettingsRefused(ValueError):
    """A settings form the tool will not store: `problems` in words, `submitted` what was sent
    (to show the form again as the teacher left it)."""

    def __init__(self, problems: list[str], submitted: RoomSettings):
        super().__init__(" ".join(problems))
        self.problems, self.submitted = problems, submitted


def groups_for(supported: frozenset[str]) -> list[Group]:
    """The groups with the choices the room's provider honours (empty groups left out)."""
    shown = []
    for group in GROUPS:
        choices = tuple(c for c in group.choices if c.field in supported or c.field in TOOL_SETTINGS)
        if choices:
            shown.append(Group(group.key, group.legend, choices))
    return shown


def _ticked(form, name: str) -> bool:
    return form.get(name) in ("on", "true", "1")


def read_form(form, current: RoomSettings, supported: frozenset[str]) -> RoomSettings:
    """The settings this form asks for; `SettingsRefused` when it contradicts itself or a value
    cannot be used. Fields not shown for this provider keep their `current` values."""
    values = asdict(current)
    for group in groups_for(supported):
        for choice in group.choices:
            values[choice.field] = _ticked(form, choice.name) != choice.inverted
    problems = []
    if "max_participants" in supported and "max_participants" in form:
        raw = (form.get("max_participants") or "0").strip()
        if raw.isdigit() and int(raw) <= MAX_PARTICIPANTS:
            values["max_participants"] = int(raw)
        else:
            problems.append(f"The largest class size must be a whole number from 0 (no limit) to {MAX_PARTICIPANTS}.")
    if "welcome" in supported and "welcome" in form:
        values["welcome"] = (form.get("welcome") or "").strip()[:MAX_WELCOME]
    submitted = RoomSettings(**{f.name: values[f.name] for f in fields(RoomSettings)})
    problems += contradictions(submitted, supported)
    if problems:
        raise SettingsRefused(problems, submitted)
    return submitted


def contradictions(settings: RoomSettings, supported: frozenset[str]) -> list[str]:
    """Settings that cannot all hold, among those the provider honours."""
    found = []
    recording = {"record", "auto_start_recording", "allow_start_stop_recording"}
    if {"record", "auto_start_recording"} <= supported and settings.auto_start_recording and not settings.record:
        found.append(
            f"“{LABELS['auto_start_recording']}” needs “{LABELS['record']}”: "
            "allow recording, or turn automatic recording off."
        )
    if recording <= supported and settings.record and not (
        settings.auto_start_recording or settings.allow_start_stop_recording
    ):
        found.append(
            "The class may be recorded, but nothing would start the recording: tick "
            f"“{LABELS['auto_start_recording']}” or “{LABELS['allow_start_stop_recording']}”, "
            "or do not allow recording."
        )
    return found
