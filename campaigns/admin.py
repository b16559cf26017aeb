from django.contrib import admin

from campaigns.models import Campaign, CampaignLink, Message


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "recipients_count", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "subject"]
    filter_horizontal = ["lists"]
    raw_id_fields = ["created_by"]
    readonly_fields = ["created_at", "updated_at", "started_at", "finished_at", "recipients_count"]


@admin.register(CampaignLink)
class CampaignLinkAdmin(admin.ModelAdmin):
    list_display = ["campaign", "index", "url"]
    search_fields = ["url"]
    raw_id_fields = ["campaign"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["email", "campaign", "status", "attempts", "sent_at", "smtp_code"]
    list_filter = ["status"]
    search_fields = ["email"]
    raw_id_fields = ["campaign", "contact"]
    list_select_related = ["campaign"]
