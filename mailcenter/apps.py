from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MailcenterConfig(AppConfig):
    name = "mailcenter"
    verbose_name = _("Mailcenter")
