from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from . import logins, retention, rulebook  # noqa: F401  (connect their receivers)
        from .services import autonomy  # noqa: F401  (starts and ends monitoring periods)
        from .tallies import reinstall_if_dropped  # it reads the models, loaded by now

        post_migrate.connect(reinstall_if_dropped, sender=self)
        post_migrate.connect(retention.apply_setting, sender=self)
