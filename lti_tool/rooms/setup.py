"""A new room's first set-up from its resource link's custom parameters: the vocabulary deep
linking writes (lti/deep_linking.py) and a link's first launch reads (lti/launches.py).

| custom parameter | value | when absent |
|---|---|---|
| `provider` | one of the installation's providers (`providers.provider_names()`) | `VIDEO_PROVIDER` |
| `schedule_start` | ISO 8601 with a UTC offset: `2027-03-01T09:00+01:00` | no schedule |
| `schedule_minutes` | length of each session, 1–1440 | none |
| `schedule_weeks` | how many weekly sessions, 1–52 | 1 |
| a `RoomSettings` field (`wait_for_moderator`, `record`, …) | `true`/`false` (`max_participants`: 0–10000) | default |
| `grading` | `on` or `off`: send attendance grades to the gradebook | `on` |
| `grade_points` | the score maximum, more than 0 and at most 10000 | 100 |

Only the room's first launch reads them (the platform sends them with every launch); later
changes are made in the tool. A value the tool cannot use is ignored with a log line saying
which and why, never a refused launch.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

from ..grades.policy import SCORE_MAXIMUM, plain_number
from ..logsafe import quoted
from ..providers import provider_names
from ..providers.base import RoomSettings

log = logging.getLogger(__name__)

MAX_SESSION_MINUTES = 24 * 60
MAX_WEEKS = 52
MAX_POINTS = 10000.0
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
SETTING_FIELDS = {field.name: field for field in fields(RoomSettings)}


@dataclass(frozen=True)
class RoomSetup:
    """What a room starts with."""

    provider: str | None  # None (deep linking only): VIDEO_PROVIDER decides at the first launch
    settings: RoomSettings
    graded: bool = True
    score_maximum: float = SCORE_MAXIMUM
    schedule_start: datetime | None = None  # aware; the room keeps it as UTC
    schedule_minutes: int | None = None
    schedule_weeks: int | None = None

    def room_values(self) -> dict:
        """The Room columns this set-up fills."""
        return {
            "provider": self.provider, "settings": asdict(self.settings), "graded": self.graded,
            "score_maximum": self.score_maximum, "schedule_start": self.schedule_start,
            "schedule_minutes": self.schedule_minutes, "schedule_weeks": self.schedule_weeks,
        }


# --- reading values ---------------------------------------------------------------------------
def parse_start(text: str) -> datetime:
    """An ISO 8601 date and time with its UTC offset, as UTC; ValueError otherwise."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("has no UTC offset")
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise ValueError(f"is not between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return moment.astimezone(UTC)


def whole_number(text: str, low: int, high: int) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ValueError(f"is not a whole number from {low} to {high}")
    return int(text)


def parse_points(text: str) -> float:
    try:
        points = float(text.strip())
    except ValueError:
        raise ValueError("is not a number") from None
    if not math.isfinite(points) or not 0 < points <= MAX_POINTS:
        raise ValueError(f"is not more than 0 and at most {plain_number(MAX_POINTS)}")
    return round(points, 2)


def parse_switch(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"is not one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")


def _read(custom: dict, name: str, parse, *args):
    """The parsed custom parameter, or None when absent or unusable (then logged)."""
    raw = custom.get(name)
    if raw is None or raw == "":
        return None
    try:
        if not isinstance(raw, str):
            raise ValueError(f"is a {type(raw).__name__}, not text")
        return parse(raw, *args)
    except ValueError as exc:
        log.warning("ignoring custom parameter %s=%s: it %s", name, quoted(raw, 80), exc)
        return None


def _setting(text: str, name: str):
    default = getattr(RoomSettings(), name)
    if isinstance(default, bool):
        return parse_switch(text)
    if isinstance(default, int):
        return whole_number(text, 0, 10000)
    return text.strip()[:500]


# --- the set-up -------------------------------------------------------------------------------
def choose_provider(custom: dict, default: str) -> str:
    wanted = custom.get("provider")
    wanted = wanted.strip().lower() if isinstance(wanted, str) else ""
    if wanted in provider_names():
        return wanted
    if wanted:
        log.warning("ignoring unknown custom provider %s; using VIDEO_PROVIDER", quoted(wanted))
    return default


def _settings(custom: dict) -> RoomSettings:
    chosen = {name: _read(custom, name, _setting, name) for name in SETTING_FIELDS}
    return RoomSettings(**{name: value for name, value in chosen.items() if value is not None})


def _schedule(custom: dict) -> dict:
    start = _read(custom, "schedule_start", parse_start)
    minutes = _read(custom, "schedule_minutes", whole_number, 1, MAX_SESSION_MINUTES)
    weeks = _read(custom, "schedule_weeks", whole_number, 1, MAX_WEEKS)
    if start is None:
        if minutes is not None or weeks is not None:
            log.warning("ignoring schedule_minutes and schedule_weeks: no usable schedule_start")
        return {}
    return {"schedule_start": start, "schedule_minutes": minutes, "schedule_weeks": weeks or 1}


def room_setup(custom: dict, default_provider: str) -> RoomSetup:
    """A new room's set-up from its link's custom parameters (a dict of the launch's `custom`)."""
    custom = custom if isinstance(custom, dict) else {}
    grading = _read(custom, "grading", parse_switch)
    points = _read(custom, "grade_points", parse_points)
    return RoomSetup(
        provider=choose_provider(custom, default_provider),
        settings=_settings(custom),
        graded=True if grading is None else grading,
        score_maximum=SCORE_MAXIMUM if points is None else points,
        **_schedule(custom),
    )


def custom_parameters(setup: RoomSetup, settings: tuple[str, ...]) -> dict[str, str]:
    """The custom parameters that give a new room this set-up (deep linking's content item);
    `settings`: the RoomSettings fields to write. Every value is text, as LTI requires. The
    schedule start keeps the UTC offset it was given (the teacher's own time zone)."""
    custom = {"provider": setup.provider} if setup.provider else {}
    if setup.schedule_start is not None:
        custom["schedule_start"] = setup.schedule_start.isoformat(timespec="minutes")
        custom["schedule_weeks"] = str(setup.schedule_weeks or 1)
        if setup.schedule_minutes:
            custom["schedule_minutes"] = str(setup.schedule_minutes)
    for name in settings:
        value = getattr(setup.settings, name)
        custom[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    custom["grading"] = "on" if setup.graded else "off"
    if setup.graded:
        custom["grade_points"] = plain_number(setup.score_maximum)
    return custom
