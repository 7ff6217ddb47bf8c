"""One setting of the tool: its name, default, kind and the sentence that explains it.

The core's settings are listed in config.py; every provider package lists its own (providers/
<name>/__init__.py), and config.py reads them all the same way: environment (a `.env` file
included) < the overrides a test passes. A value that cannot be used is kept as given, and
`problem()` says what is wrong with it, so one start reports every mistake at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

TEXT, NUMBER, FLAG = "text", "number", "flag"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    kind: str = TEXT  # TEXT, NUMBER (0 or more: seconds, bytes, hours) or FLAG (true/false)
    help: str = ""
    lower: bool = False  # compared case-insensitively (an algorithm's name, say)

    def read(self, raw) -> object:
        """The value as the tool uses it: text stripped, a number, a bool; or `raw` unchanged
        when it cannot be read (then `problem()` explains)."""
        text = str(raw)
        if self.kind == NUMBER:
            return _number(text)
        if self.kind == FLAG:
            return _flag(text)
        text = text.strip()
        return text.lower() if self.lower else text

    def problem(self, value) -> str | None:
        if self.kind == NUMBER and not isinstance(value, (int, float)):
            return f"{self.name} must be a number (0 or more), not {value!r}"
        if self.kind == FLAG and not isinstance(value, bool):
            return f"{self.name} must be true or false, not {value!r}"
        return None


def _number(text: str) -> float | str:
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) and number >= 0 else text


def _flag(text: str) -> bool | str:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    return False if word in _FALSE else text
