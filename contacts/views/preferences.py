"""The preference centre: public, reached by a signed link in every message."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import Http404
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from contacts import selectors
from contacts.forms import (
    PreferencesForm,
)
from contacts.models import (
    Contact,
)
from contacts.services import preferences as preferences_service


def _contact_from_preferences_token(token: str) -> Contact:
    """The contact a preference link names; any token that is not ours is a 404."""
    from campaigns.models import Message
    from tracking import tokens

    try:
        message_id, _index = tokens.read_token("preferences", token)
    except tokens.BadToken:
        raise Http404 from None
    message = Message.objects.select_related("contact").filter(pk=message_id).first()
    if message is None:
        raise Http404
    return message.contact


@method_decorator([login_not_required, never_cache], name="dispatch")
class PreferencesView(View):
    """See and change one's subscriptions and name, or leave everything. No login: the
    signed token in the URL is the authority."""

    template_name = "contacts/preferences.html"

    def _render(self, request, contact, form, status=200, done=""):
        return render(
            request,
            self.template_name,
            {"contact": contact, "form": form, "done": done},
            status=status,
        )

    def _form(self, contact, data=None):
        subscriptions = selectors.contact_subscriptions(contact)
        initial = {
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "lists": [s.mailing_list_id for s in subscriptions if s.status == s.Status.SUBSCRIBED],
        }
        return PreferencesForm(data, initial=initial, subscriptions=subscriptions)

    def get(self, request, token):
        contact = _contact_from_preferences_token(token)
        return self._render(request, contact, self._form(contact))

    def post(self, request, token):
        contact = _contact_from_preferences_token(token)
        if "unsubscribe_all" in request.POST:
            preferences_service.contact_unsubscribe_everything(contact)
            return self._render(request, contact, None, done="unsubscribed")
        if contact.status != Contact.Status.ACTIVE:
            return self._render(request, contact, None, status=400)
        form = self._form(contact, request.POST)
        if not form.is_valid():
            return self._render(request, contact, form, status=400)
        preferences_service.preferences_update(
            contact,
            first_name=form.cleaned_data["first_name"],
            last_name=form.cleaned_data["last_name"],
            list_ids=form.cleaned_data["lists"],
        )
        return self._render(request, contact, self._form(contact), done="saved")
