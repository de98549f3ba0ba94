"""The autonomy scorecard in a terminal: per category, whether it can run without a person, and
what a month of it without one would let through."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviews import monitoring
from reviews.insights.readiness import Readiness, readiness_of
from reviews.models import Category


class Command(BaseCommand):
    help = (
        "Print the autonomy scorecard (/metrics/autonomy/): per category its evidence, the "
        "errors and cost a month without a person with their 95% bound, the accepted damage, "
        "and what blocks it; for an autonomous category, the damage its monitoring projects."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--category", help="one category's slug")

    def handle(self, *args: Any, **options: Any) -> None:
        category_id = None
        if options["category"]:
            category = Category.objects.filter(slug=options["category"]).first()
            if category is None:
                raise CommandError(f"No category {options['category']!r}.")
            category_id = category.pk
        for state in readiness_of(category_id=category_id):
            self.stdout.write("\n".join(card(state)) + "\n")


def card(state: Readiness) -> list[str]:
    """A category's scorecard, a line per figure, in the page's words."""
    category = state.category
    lines = [f"{category.name} ({category.slug}): {category.get_mode_display()}"]
    if state.is_autonomous:
        damage = monitoring.watched_damage(state.autonomy)
        lines += [
            f"  monitoring since {state.autonomy.autonomous_since:%Y-%m-%d %H:%M}",
            f"  this month: {damage.watch_summary}",
        ]
    else:
        damage = state.damage
        lines.append(f"  evidence: {state.evidence}")
        if damage is not None:
            lines.append(f"  a month without a person: {damage.summary}")
    if damage is not None:
        lines += [
            f"  volume: {damage.volume_words}",
            f"  error rate: {damage.rate_words}",
            f"  an error costs: {damage.cost_words}",
        ]
        if not damage.costed:
            lines.append(f"  at stake: {damage.risk_words}")
        accepted = damage.watch_words if state.is_autonomous else damage.accepted_words
        lines.append(f"  accepted: {accepted}")
    if not state.is_autonomous:
        verdict = "ready" if state.ready else "not ready: " + "; ".join(state.blockers)
        lines.append(f"  {verdict}")
    return lines
