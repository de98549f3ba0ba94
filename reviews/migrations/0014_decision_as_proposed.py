from django.db import migrations, models
from django.db.models import F


def backfill(apps, schema_editor):
    """Approvals count as the agent being right unless a person chose another option than
    the recommended one; the rollups are then recomputed by their next run."""
    Decision = apps.get_model("reviews", "Decision")
    RollupCursor = apps.get_model("reviews", "RollupCursor")
    approved = Decision.objects.filter(outcome="approved")
    approved.update(as_proposed=True)
    approved.exclude(chosen_option="").exclude(request__recommended_option="").exclude(
        chosen_option=F("request__recommended_option")
    ).update(as_proposed=False)
    RollupCursor.objects.filter(name="rollups").update(last_id=0, last_run_at=None)


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0013_proposal_versions"),
    ]

    operations = [
        migrations.AddField(
            model_name="decision",
            name="as_proposed",
            field=models.BooleanField(
                default=False,
                help_text="Approved unchanged with the recommended option (or with no options): "
                "the agent was right. What calibration, readiness, advice and precedents count.",
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
