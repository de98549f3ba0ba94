"""Precedents are found by precedent_key (request_people_precedents). The index on group_key
and decision time served the item page's old precedents by group; nothing reads it since, and
every submission paid for it on insert."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0023_periodic_review_audit_verbs"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="reviewrequest",
            name="request_precedents",
        ),
    ]
