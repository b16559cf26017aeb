"""The contacts app's pages, one module per area; ``contacts.urls`` imports them from here."""

from contacts.views.contacts import (
    ContactDetailView,
    ContactImportCancelView,
    ContactImportCreateView,
    ContactImportDetailView,
    ContactImportMappingView,
    ContactImportProgressView,
    ContactImportRefusedCsvView,
    ContactListView,
    MailingListCreateView,
    MailingListDeleteView,
    MailingListDetailView,
    MailingListListView,
)
from contacts.views.fields import CustomFieldDeleteView, CustomFieldListView, CustomFieldUpdateView
from contacts.views.preferences import PreferencesView
from contacts.views.privacy import ContactDataView, ContactEraseView, ContactExportView
from contacts.views.segments import (
    CampaignAudienceView,
    SegmentCountView,
    SegmentCreateView,
    SegmentDeleteView,
    SegmentListView,
    SegmentUpdateView,
)
from contacts.views.signup import (
    PublicSignupView,
    SignupConfirmView,
    SignupFormCreateView,
    SignupFormDeleteView,
    SignupFormListView,
    SignupFormUpdateView,
)
from contacts.views.suppression import (
    SuppressionAddView,
    SuppressionDeleteView,
    SuppressionImportView,
    SuppressionListView,
)

__all__ = [
    "CampaignAudienceView",
    "ContactDataView",
    "ContactDetailView",
    "ContactEraseView",
    "ContactExportView",
    "ContactImportCancelView",
    "ContactImportCreateView",
    "ContactImportDetailView",
    "ContactImportMappingView",
    "ContactImportProgressView",
    "ContactImportRefusedCsvView",
    "ContactListView",
    "CustomFieldDeleteView",
    "CustomFieldListView",
    "CustomFieldUpdateView",
    "MailingListCreateView",
    "MailingListDeleteView",
    "MailingListDetailView",
    "MailingListListView",
    "PreferencesView",
    "PublicSignupView",
    "SegmentCountView",
    "SegmentCreateView",
    "SegmentDeleteView",
    "SegmentListView",
    "SegmentUpdateView",
    "SignupConfirmView",
    "SignupFormCreateView",
    "SignupFormDeleteView",
    "SignupFormListView",
    "SignupFormUpdateView",
    "SuppressionAddView",
    "SuppressionDeleteView",
    "SuppressionImportView",
    "SuppressionListView",
]
