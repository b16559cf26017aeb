from rest_framework import viewsets

from campaigns.models import Campaign


class CampaignViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Campaign.objects.all()
