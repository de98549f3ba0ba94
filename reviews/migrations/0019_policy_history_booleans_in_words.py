"""Versions saved before the history named switches in words read "Four eyes: False → True";
they now read as new ones do ("off → on"), so one history does not mix both."""

from django.db import migrations

WORDS = {"False": "off", "True": "on"}
# The policy's switches (reviews.policies.POLICY_FIELDS), as the history labels them.
SWITCHES = ("Four eyes",)


def _reworded(line: str) -> str:
    for label in SWITCHES:
        prefix = f"{label}: "
        if line.startswith(prefix):
            was, _, now = line[len(prefix) :].partition(" → ")
            if was in WORDS and now in WORDS:
                return f"{prefix}{WORDS[was]} → {WORDS[now]}"
    return line


def reword(apps, schema_editor):
    PolicyVersion = apps.get_model("reviews", "PolicyVersion")
    for version in PolicyVersion.objects.filter(diff__isnull=False).iterator():
        diff = [_reworded(line) for line in version.diff or []]
        if diff != version.diff:
            PolicyVersion.objects.filter(pk=version.pk).update(diff=diff)


class Migration(migrations.Migration):
    dependencies = [("reviews", "0018_four_eyes_step_by_latest")]

    operations = [migrations.RunPython(reword, migrations.RunPython.noop)]
