"""What every provider's callbacks share: the two ways a callback is refused, and JSON read
defensively (a callback's body comes from the network; authentic or not, it must not be able
to exhaust the stack or smuggle in values the database refuses)."""
from __future__ import annotations

import json
import math


class CallbackAuthError(Exception):
    """The callback's token or signature did not check out: answer 401, process nothing."""


class CallbackFormatError(ValueError):
    """The callback was authentic (or not yet checked) but its body is not what its provider sends."""


# Deeper than any callback a provider sends (an analytics body is about 8 levels): deeper bodies
# are refused before anything walks them, so neither parsing nor storing can exhaust the stack.
MAX_JSON_DEPTH = 32


def load_json(text: str | bytes, what: str):
    """JSON from a callback, read defensively: nesting deeper than `MAX_JSON_DEPTH` and the
    non-standard NaN/Infinity Python's json accepts (no provider writes them, and PostgreSQL's
    json type refuses them) raise `CallbackFormatError` like any other malformed JSON."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise CallbackFormatError(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise CallbackFormatError(f"{what} is not JSON: {exc}") from None
    if _nested_deeper_than(value, MAX_JSON_DEPTH):
        raise CallbackFormatError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("a number out of range")
    return number


def _nested_deeper_than(value, limit: int) -> bool:
    pending = [(value, 1)]
    while pending:  # a loop, not recursion: the value may be as deep as the parser allowed
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                pending.append((child, depth + 1))
    return False
