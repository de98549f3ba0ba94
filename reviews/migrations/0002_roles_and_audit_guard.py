"""Role groups (reviewers, admins, managers), and on PostgreSQL a trigger that makes the
audit log append-only in the database itself, not only in the ORM."""

from django.db import migrations

ROLES = ["reviewers", "admins", "managers"]

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION reviews_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'reviews_auditevent is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reviews_auditevent_no_change
    BEFORE UPDATE OR DELETE ON reviews_auditevent
    FOR EACH ROW EXECUTE FUNCTION reviews_auditevent_append_only();
"""

DROP_SQL = """
DROP TRIGGER IF EXISTS reviews_auditevent_no_change ON reviews_auditevent;
DROP FUNCTION IF EXISTS reviews_auditevent_append_only();
"""


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


def add_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_roles, drop_roles),
        migrations.RunPython(add_trigger, drop_trigger),
    ]
