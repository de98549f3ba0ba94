"""Guidance for a category, written from a decision; agents fetch it by API."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from ..insights.flagged import parse_pattern, pattern_key
from ..models import Category, Guideline, ReviewRequest
from .audit import audit


def add_guideline(request_id: int, *, by: AbstractBaseUser, text: str, pattern: str = "") -> Any:
    """Write guidance for the request's category, born from its decision (or from a pattern
    periodic review keeps flagging, e.g. 'amount gt 700'); agents fetch it."""
    text = text.strip()
    pattern = pattern.strip()
    errors = {}
    if not text:
        errors["text"] = "Write the guideline."
    if pattern:
        try:
            pattern = pattern_key(parse_pattern(pattern))
        except ValueError as exc:
            errors["pattern"] = str(exc)
        if len(pattern) > Guideline._meta.get_field("pattern").max_length:
            errors["pattern"] = "The pattern is too long to record."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        request = ReviewRequest.objects.select_related("category").get(pk=request_id)
        guideline = Guideline.objects.create(
            category=request.category,
            text=text,
            created_by=by,
            source_request=request,
            pattern=pattern,
        )
        after = {"guideline": guideline.pk, "text": text, "pattern": pattern}
        audit("guideline.created", request, by, after=after)
    return guideline


def guidelines_for(slug: str) -> dict[str, Any] | None:
    """A category's guidelines as agents read them (API and MCP server); None for no such
    category."""
    category = Category.objects.filter(slug=slug).first()
    if category is None:
        return None
    return {
        "category": category.slug,
        "name": category.name,
        "text": category.guidelines,
        "guidelines": list(
            category.guideline_set.filter(is_active=True).values("id", "text", "created_at")
        ),
    }
