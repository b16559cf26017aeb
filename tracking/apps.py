from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = _("Tracking")

    def ready(self) -> None:
        from anymail.signals import tracking

        from tracking.signals import anymail_tracking_received

        tracking.connect(anymail_tracking_received, dispatch_uid="mailcenter-anymail-tracking")
