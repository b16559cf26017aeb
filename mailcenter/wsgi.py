import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailcenter.settings")
application = get_wsgi_application()

# The open pixel and the click redirect skip Django's request machinery (tracking.fastpath).
from tracking.fastpath import TrackingFastPath  # noqa: E402

application = TrackingFastPath(application)
