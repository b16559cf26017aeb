"""One router for the whole v1 API; each app registers its viewsets in ``<app>/api/``."""

from rest_framework.routers import DefaultRouter

from campaigns.api.views import CampaignViewSet
from contacts.api.views import (
    ContactImportViewSet,
    ContactViewSet,
    CustomFieldViewSet,
    MailingListViewSet,
    SegmentViewSet,
    SuppressionViewSet,
)

router = DefaultRouter()
router.register("lists", MailingListViewSet, basename="list")
router.register("contacts", ContactViewSet, basename="contact")
router.register("imports", ContactImportViewSet, basename="import")
router.register("fields", CustomFieldViewSet, basename="field")
router.register("segments", SegmentViewSet, basename="segment")
router.register("suppressions", SuppressionViewSet, basename="suppression")
router.register("campaigns", CampaignViewSet, basename="campaign")

urlpatterns = router.urls
