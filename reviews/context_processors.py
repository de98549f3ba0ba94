"""Navigation facts for the base layout, computed once per request in Python."""

from typing import Any

from django.http import HttpRequest

from .access import ADMINS, MANAGERS, REVIEWERS, roles_of


def navigation(request: HttpRequest) -> dict[str, Any]:
    roles = roles_of(request.user)
    return {
        "nav": {
            "is_reviewer": REVIEWERS in roles,
            "is_admin": ADMINS in roles,
            "is_manager": MANAGERS in roles,
            "is_staff": getattr(request.user, "is_staff", False),
        }
    }
