"""Room kept free on each page of the requests table, so the update a first view makes (only
first_viewed_at, which no index holds) is a HOT update: the new row version stays on its page
and no index gets a new entry. With full pages every such update moved the row and wrote an
entry into each of the table's indexes."""

from django.db import migrations

FILLFACTOR = 85


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE reviews_reviewrequest SET (fillfactor = {FILLFACTOR})")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE reviews_reviewrequest RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("reviews", "0006_tallies")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
