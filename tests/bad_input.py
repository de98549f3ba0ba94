"""The corpus of bad input both doors must refuse, and a way to see that nothing was written."""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth.models import User

# Raw JSON values no field may take: PostgreSQL's jsonb cannot store them, Python's json would
# read 1e400 as inf, and deep nesting once exhausted the recursion limit while rendering.
BAD_JSON_VALUES = {
    "overflow": "1e400",
    "negative overflow": "-1e400",
    "NaN literal": "NaN",
    "Infinity literal": "Infinity",
    "-Infinity literal": "-Infinity",
    "NUL in text": '"a\\u0000b"',
    "lone high surrogate": '"\\ud800"',
    "lone low surrogate": '"x\\udfff"',
    "NUL in a key": '{"a\\u0000b": 1}',
    "lone surrogate in a key": '{"\\ud800": 1}',
    "33 levels deep": '{"a": ' * 33 + "1" + "}" * 33,
    "990 levels deep": "[" * 990 + "]" * 990,
    "overflow deep inside": '{"a": [1, {"b": [1e400]}]}',
    "NUL deep inside": '{"a": [1, {"b\\u0000": "x"}]}',
    "integer of 5000 digits": "9" * 5000,
}

# What a person's form field or query-string filter must not carry.
NUL_TEXT = "a\x00b"


def row_counts() -> dict[str, int]:
    """Rows of every model of the product, and its users."""
    models = [*apps.get_app_config("reviews").get_models(), User]
    return {model.__name__: model.objects.count() for model in models}
