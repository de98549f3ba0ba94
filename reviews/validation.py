"""What the product accepts from agents and people: text and JSON that the database can store
and a page can render. The agent API (reviews.api_schemas) and the web door
(reviews.middleware, the Modify form) both check through here, so they refuse the same things.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

# Deepest nesting of objects and arrays accepted in any JSON field; `{"a": 1}` is depth 1.
# Real actions are a few levels deep; the limit keeps parsing, storing and rendering cheap
# and far from Python's recursion limit.
MAX_JSON_DEPTH = 32
# The largest id a bigint column holds: a cursor or id past it names no row that can exist.
MAX_ID = 2**63 - 1


class InvalidInput(ValueError):
    """Input the product refuses, with a message fit to show to whoever sent it."""


def text_problem(value: str) -> str | None:
    """Why this text cannot be stored, or None. PostgreSQL text cannot hold NUL, and UTF-8
    cannot encode a lone surrogate (which JSON's \\ud800 escapes can produce)."""
    if "\x00" in value:
        return "Text must not contain NUL characters."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Text must be valid Unicode (no lone surrogates)."
    return None


def check_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise InvalidInput(problem)
    return value


def check_json(value: Any, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Refuse non-finite numbers, unstorable text in any string or key, and nesting deeper
    than `max_depth`. Walks with its own stack: a hostile value cannot exhaust Python's."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            _check_at(item, path)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInput(f"{_where(path)}Numbers must be finite.")
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise InvalidInput(f"JSON must not be nested more than {max_depth} levels deep.")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InvalidInput(f"{_where(path)}Keys must be text.")
                    _check_at(key, path)
                    stack.append((child, depth + 1, f"{path}.{key}" if path else key))
            else:
                stack.extend((child, depth + 1, f"{path}[{n}]") for n, child in enumerate(item))
    return value


def parse_json(text: str | bytes) -> Any:
    """Parse JSON and refuse everything check_json refuses, with a message for people."""
    return check_json(loads(text))


def loads(text: str | bytes) -> Any:
    """JSON as PostgreSQL's jsonb takes it: no NaN or Infinity, and no number that overflows to
    infinity (Python would read 1e400 as inf). Raises InvalidInput."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except InvalidInput:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None
    except RecursionError:
        raise InvalidInput(
            f"JSON must not be nested more than {MAX_JSON_DEPTH} levels deep."
        ) from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise InvalidInput(f"Not valid JSON: {exc}") from None
    return value


def parse_id(text: str) -> int | None:
    """A row id typed or linked by a person ("42"), else None. ASCII digits only: str.isdigit
    also takes "²", which int() refuses; and at most 18 digits, which a bigint column holds."""
    if 0 < len(text) <= 18 and text.isascii() and text.isdigit():
        return int(text)
    return None


def unstorable_params(pairs: Iterable[tuple[str, list[str]]]) -> str | None:
    """The first problem in a query string's or form's names and values, or None."""
    for name, values in pairs:
        for text in (name, *values):
            problem = text_problem(text)
            if problem:
                return problem
    return None


def _check_at(text: str, path: str) -> None:
    problem = text_problem(text)
    if problem:
        raise InvalidInput(_where(path) + problem)


def _where(path: str) -> str:
    return f"At {path[:100]}: " if path else ""


def _refuse_constant(name: str) -> None:
    raise InvalidInput(f"{name} is not valid JSON; numbers must be finite.")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidInput(f"The number {text[:40]} is too large; numbers must be finite.")
    return number
