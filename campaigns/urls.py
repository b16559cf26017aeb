from django.urls import path

from campaigns import views

app_name = "campaigns"

urlpatterns = [
    path("", views.CampaignListView.as_view(), name="list"),
    path("new/", views.CampaignCreateView.as_view(), name="create"),
    path("<int:pk>/", views.CampaignDetailView.as_view(), name="detail"),
    path("<int:pk>/edit/", views.CampaignUpdateView.as_view(), name="edit"),
    path("<int:pk>/delete/", views.CampaignDeleteView.as_view(), name="delete"),
    path("<int:pk>/messages/", views.CampaignMessagesView.as_view(), name="messages"),
    path("<int:pk>/progress/", views.CampaignProgressView.as_view(), name="progress"),
    path("<int:pk>/preview/", views.CampaignPreviewView.as_view(), name="preview"),
    path("<int:pk>/preview/html/", views.CampaignPreviewHtmlView.as_view(), name="preview-html"),
    path("<int:pk>/test/", views.CampaignSendTestView.as_view(), name="send-test"),
    path("<int:pk>/send/", views.CampaignSendView.as_view(), name="send"),
    path("<int:pk>/pause/", views.CampaignPauseView.as_view(), name="pause"),
    path("<int:pk>/resume/", views.CampaignResumeView.as_view(), name="resume"),
    path("<int:pk>/cancel/", views.CampaignCancelView.as_view(), name="cancel"),
]
