"""Navigation facts for the base layout, computed once per request in Python."""

from typing import Any

from django.http import HttpRequest

from .access import ADMINS, MANAGERS, REVIEWERS, may_hold, roles_of
from .services import holds


def navigation(request: HttpRequest) -> dict[str, Any]:
    roles = roles_of(request.user)
    return {
        "nav": {
            "is_reviewer": REVIEWERS in roles,
            "is_admin": ADMINS in roles,
            "is_manager": MANAGERS in roles,
            "is_staff": getattr(request.user, "is_staff", False),
            "may_hold": may_hold(request.user),
        },
        # Called only by a page that renders it (not by a partial): the banner on every page
        # while a hold or stop lasts, read at most every 0.5 s.
        "holds_in_force": holds.in_force,
    }
