"""Campaign pages: thin wrappers that turn requests into service calls and results into
messages. Every refusal becomes a message on a page; none becomes an error page."""

from campaigns.views.editing import (
    CampaignCreateView,
    CampaignDeleteView,
    CampaignDetailView,
    CampaignListView,
    CampaignUpdateView,
)
from campaigns.views.preview import (
    CampaignPreviewHtmlView,
    CampaignPreviewView,
    CampaignSendTestView,
)
from campaigns.views.sending import (
    CampaignCancelView,
    CampaignMessagesView,
    CampaignPauseView,
    CampaignProgressView,
    CampaignResumeView,
    CampaignSendView,
)

__all__ = [
    "CampaignCancelView",
    "CampaignCreateView",
    "CampaignDeleteView",
    "CampaignDetailView",
    "CampaignListView",
    "CampaignMessagesView",
    "CampaignPauseView",
    "CampaignPreviewHtmlView",
    "CampaignPreviewView",
    "CampaignProgressView",
    "CampaignResumeView",
    "CampaignSendTestView",
    "CampaignSendView",
    "CampaignUpdateView",
]
