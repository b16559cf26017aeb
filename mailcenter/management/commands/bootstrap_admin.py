"""Create the first admin account, once.

``make run`` calls this on every start, so it must be idempotent: when any superuser
exists it does nothing. Otherwise it creates one from ``MAILCENTER_ADMIN_EMAIL`` and
``MAILCENTER_ADMIN_PASSWORD``; without a password it generates one and prints it once,
because nothing else will ever show it again.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

ENV_EMAIL = "MAILCENTER_ADMIN_EMAIL"
ENV_PASSWORD = "MAILCENTER_ADMIN_PASSWORD"  # noqa: S105 - the variable's name, not a secret
DEFAULT_USERNAME = "admin"


def admin_username(email: str) -> str:
    """The email's local part, or ``admin`` when there is no usable email."""
    local = email.rsplit("@", 1)[0].strip() if "@" in email else ""
    return local or DEFAULT_USERNAME


class Command(BaseCommand):
    help = (
        f"Create the first superuser from ${ENV_EMAIL} / ${ENV_PASSWORD} (or with a generated "
        "password, printed once). Does nothing when a superuser exists."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            if options["verbosity"] >= 1:
                self.stdout.write(f"Admin account exists ({existing.get_username()}).")
            return

        email = os.environ.get(ENV_EMAIL, "").strip()
        password = os.environ.get(ENV_PASSWORD, "")
        username = admin_username(email)
        if user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).exists():
            raise CommandError(
                f"A user named {username!r} exists but is not a superuser. Set {ENV_EMAIL} "
                "to another address, or run `manage.py createsuperuser`."
            )

        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        else:
            try:
                validate_password(password)
            except ValidationError as exc:
                # The operator chose it; say what is weak about it but do not block startup.
                self.stderr.write(f"Warning: {ENV_PASSWORD} is weak: {' '.join(exc.messages)}")

        user_model.objects.create_superuser(username=username, email=email, password=password)
        if generated:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Admin account created: user {username}, password {password} — shown only once"
                )
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Admin account created: user {username} (password from {ENV_PASSWORD})."
                )
            )
