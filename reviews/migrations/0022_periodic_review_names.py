"""The code says what the pages say: spot checks are periodic review. The tables, the relations'
names and the one-batch-a-day constraint follow the models' new names; no data changes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0021_one_outbox"),
    ]

    operations = [
        migrations.RenameModel(old_name="SpotCheckBatch", new_name="PeriodicReviewBatch"),
        migrations.RenameModel(old_name="SpotCheckItem", new_name="PeriodicReviewItem"),
        migrations.AlterModelOptions(
            name="periodicreviewbatch",
            options={
                "ordering": ["completed_at", "-day"],
                "verbose_name_plural": "periodic review batches",
            },
        ),
        migrations.AlterField(
            model_name="periodicreviewbatch",
            name="category",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="periodic_review_batches",
                to="reviews.category",
            ),
        ),
        migrations.AlterField(
            model_name="periodicreviewitem",
            name="request",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="periodic_review",
                to="reviews.reviewrequest",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="periodicreviewbatch",
            name="spot_batch_per_day",
        ),
        migrations.AddConstraint(
            model_name="periodicreviewbatch",
            constraint=models.UniqueConstraint(
                fields=("category", "day"), name="periodic_review_batch_per_day"
            ),
        ),
    ]
