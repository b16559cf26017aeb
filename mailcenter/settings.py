"""Mailcenter settings: everything an operator changes comes from the environment.

The embedded default (no variables set) is SQLite, a filesystem Celery broker under
``var/`` and the ``outbox`` delivery backend, so ``make run`` needs nothing but Python.
Set ``MAILCENTER_MODE=production`` and the app refuses to start without a real secret key.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from mailcenter.envparse import database_from_url, env_bool, env_list

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MAILCENTER_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

MODE = os.environ.get("MAILCENTER_MODE", "embedded")
if MODE not in {"embedded", "production"}:
    raise ImproperlyConfigured("MAILCENTER_MODE must be 'embedded' or 'production'.")

DEBUG = env_bool("DEBUG", default=False)

DEV_SECRET_KEY = "django-insecure-mailcenter-development-key"  # noqa: S105


def _secret_key() -> str:
    """Use SECRET_KEY from the environment; in embedded mode, keep a generated one in var/."""
    key = os.environ.get("SECRET_KEY", "")
    if MODE == "production":
        if not key or key == DEV_SECRET_KEY or key.startswith("django-insecure"):
            raise ImproperlyConfigured(
                "MAILCENTER_MODE=production needs SECRET_KEY set to a long random value; "
                "refusing to start with the development key."
            )
        return key
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

BASE_URL = os.environ.get("MAILCENTER_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
_base = urlsplit(BASE_URL)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", _base.hostname or ""])
CSRF_TRUSTED_ORIGINS = env_list(
    "CSRF_TRUSTED_ORIGINS", default=[f"{_base.scheme}://{_base.netloc}"]
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "mailcenter",
    "contacts",
    "campaigns",
    "tracking",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "mailcenter.middleware.LoginRequiredMiddleware",
    "mailcenter.middleware.UserTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mailcenter.urls"
WSGI_APPLICATION = "mailcenter.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'mailcenter.sqlite3'}")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["mailcenter.auth.UsernameOrEmailBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ru", "Russian")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"
# Shown times use this zone unless the user picks another (see UserTimezoneMiddleware).
MAILCENTER_DISPLAY_TIME_ZONE = os.environ.get("MAILCENTER_TIME_ZONE", "UTC")

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = VAR_DIR / "media"
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if _base.scheme == "https":
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Celery -------------------------------------------------------------------------------
# Embedded default: kombu's filesystem transport, a broker that needs no server.
_celery_dir = VAR_DIR / "celery"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("in", "processed", "control"):
        (_celery_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "in"),
        "data_folder_out": str(_celery_dir / "in"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "campaigns-tick": {"task": "campaigns.tasks.campaigns_tick", "schedule": 30.0},
    # Writes the opens and clicks queued in Redis by the tracking endpoints.
    "tracking-hits-drain": {"task": "tracking.tasks.hits_drain_task", "schedule": 2.0},
    # Sends due outgoing webhook deliveries (first tries and retries with backoff).
    "tracking-webhooks-deliver": {
        "task": "tracking.webhooks.tasks.webhooks_deliver_task",
        "schedule": 15.0,
    },
    # Runs again the imports whose worker died (PostgreSQL: their run lock is free).
    "contacts-imports-recover": {
        "task": "contacts.tasks.contact_imports_recover_task",
        "schedule": 60.0,
    },
    # Builds custom-field indexes an import set aside and could not build again (its
    # worker was killed); does nothing while an import has them aside.
    "contacts-indexes-repair": {
        "task": "contacts.tasks.custom_field_indexes_repair_task",
        "schedule": 600.0,
    },
}
# Reads the bounce mailbox (tracking.mailbox) when there is one.
if os.environ.get("MAILCENTER_BOUNCE_IMAP_URL"):
    CELERY_BEAT_SCHEDULE["tracking-bounce-mailbox"] = {
        "task": "tracking.tasks.bounce_mailbox_poll_task",
        "schedule": float(os.environ.get("MAILCENTER_BOUNCE_IMAP_INTERVAL", "60")),
    }

# --- Cache -------------------------------------------------------------------------------
# Rate limits (login, password reset, subscription forms) must be shared by every web
# process: Redis when the broker is Redis; a file cache under var/ when embedded.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CELERY_BROKER_URL,
            "KEY_PREFIX": "mailcenter",
        }
    }
else:
    # A file cache is shared by the web workers of the one machine (rate limits hold).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Delivery ----------------------------------------------------------------------------
# Named senders, like CACHES. MAILCENTER_SENDERS takes JSON; the SMTP_* variables are a
# shortcut for the common case of one relay.
if os.environ.get("MAILCENTER_SENDERS"):
    try:
        MAILCENTER_SENDERS = json.loads(os.environ["MAILCENTER_SENDERS"])
    except ValueError as exc:
        raise ImproperlyConfigured(f"MAILCENTER_SENDERS is not valid JSON: {exc}") from exc
elif os.environ.get("SMTP_HOST"):
    MAILCENTER_SENDERS = {
        "default": {
            "BACKEND": "smtp",
            "OPTIONS": {
                "host": os.environ["SMTP_HOST"],
                "port": int(os.environ.get("SMTP_PORT", "587")),
                "username": os.environ.get("SMTP_USERNAME", ""),
                "password": os.environ.get("SMTP_PASSWORD", ""),
                "security": os.environ.get("SMTP_SECURITY", "starttls"),
                "timeout": float(os.environ.get("SMTP_TIMEOUT", "30")),
            },
        }
    }
else:
    MAILCENTER_SENDERS = {"default": {"BACKEND": "outbox", "OPTIONS": {}}}

MAILCENTER_BOUNCE_DOMAIN = os.environ.get("MAILCENTER_BOUNCE_DOMAIN", _base.hostname or "localhost")
MAILCENTER_BATCH_SIZE = int(os.environ.get("MAILCENTER_BATCH_SIZE", "200"))
MAILCENTER_SEND_CONCURRENCY = int(os.environ.get("MAILCENTER_SEND_CONCURRENCY", "4"))
MAILCENTER_CLAIM_TIMEOUT = int(os.environ.get("MAILCENTER_CLAIM_TIMEOUT", "600"))
MAILCENTER_IMPORT_MAX_BYTES = int(os.environ.get("MAILCENTER_IMPORT_MAX_BYTES", str(50 * 2**20)))
# Importer and sign-up limits; contacts/conf.py holds their defaults.
MAILCENTER_IMPORT_COPY_MIN_ROWS = int(os.environ.get("MAILCENTER_IMPORT_COPY_MIN_ROWS", "5000"))
MAILCENTER_IMPORT_INDEXES_ASIDE_MIN_ROWS = int(
    os.environ.get("MAILCENTER_IMPORT_INDEXES_ASIDE_MIN_ROWS", "100000")
)
MAILCENTER_SIGNUP_LIMIT_PER_IP = int(os.environ.get("MAILCENTER_SIGNUP_LIMIT_PER_IP", "20"))
MAILCENTER_SIGNUP_LIMIT_PER_ADDRESS = int(
    os.environ.get("MAILCENTER_SIGNUP_LIMIT_PER_ADDRESS", "5")
)
# DKIM and DNS checks (read through mailcenter/domains/conf.py). The key secret encrypts DKIM
# private keys in the database; unset, SECRET_KEY does. Comma-separated: first encrypts.
MAILCENTER_DKIM_KEY_SECRET = os.environ.get("MAILCENTER_DKIM_KEY_SECRET", "")
MAILCENTER_DKIM_CACHE_SECONDS = float(os.environ.get("MAILCENTER_DKIM_CACHE_SECONDS", "60"))
MAILCENTER_DNS_RESOLVER = os.environ.get("MAILCENTER_DNS_RESOLVER", "")
MAILCENTER_DNS_TIMEOUT = float(os.environ.get("MAILCENTER_DNS_TIMEOUT", "3"))
# Senders defined in Settings → Senders (read through mailcenter/senders/conf.py).
MAILCENTER_SENDERS_CACHE_SECONDS = float(os.environ.get("MAILCENTER_SENDERS_CACHE_SECONDS", "30"))
MAILCENTER_SENDER_TEST_TIMEOUT = float(os.environ.get("MAILCENTER_SENDER_TEST_TIMEOUT", "10"))

DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", f"mailcenter@{MAILCENTER_BOUNCE_DOMAIN}")
# ESP tracking webhooks (/webhooks/anymail/<esp>/tracking/, tracking.esp): django-anymail
# checks basic auth (WEBHOOK_SECRET, "user:password", comma-separated to rotate) and, where
# the ESP signs its calls, the signature with that ESP's key.
ANYMAIL = {
    name: value
    for name, value in {
        "WEBHOOK_SECRET": [
            v.strip()
            for v in os.environ.get("MAILCENTER_ANYMAIL_WEBHOOK_SECRET", "").split(",")
            if v.strip()
        ],
        "MAILGUN_WEBHOOK_SIGNING_KEY": os.environ.get("MAILGUN_WEBHOOK_SIGNING_KEY", ""),
        "UNISENDER_GO_API_KEY": os.environ.get("UNISENDER_GO_API_KEY", ""),
        "POSTAL_WEBHOOK_KEY": os.environ.get("POSTAL_WEBHOOK_KEY", ""),
        "MANDRILL_WEBHOOK_KEY": os.environ.get("MANDRILL_WEBHOOK_KEY", ""),
        "MAILERSEND_SIGNING_SECRET": os.environ.get("MAILERSEND_SIGNING_SECRET", ""),
        "RESEND_SIGNING_SECRET": os.environ.get("RESEND_SIGNING_SECRET", ""),
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": os.environ.get(
            "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY", ""
        ),
    }.items()
    if value
}

# Django's own mail (password reset) goes through the default named sender, so nothing
# outside mailcenter/delivery/ speaks SMTP.
EMAIL_BACKEND = "mailcenter.delivery.django_backend.DeliveryEmailBackend"

# --- REST API ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "mailcenter.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mailcenter API",
    "DESCRIPTION": "Lists, contacts, imports and campaigns.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {"ContactImportStatusEnum": "contacts.models.ContactImport.Status"},
    # Served from our own static files (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
