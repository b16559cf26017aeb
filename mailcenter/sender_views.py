"""Settings → Senders: list, create, edit, delete and test the named senders.

Thin: every write goes through ``mailcenter.senders.services``. No context holds a secret:
the edit form's secret inputs render empty, and the list shows only whether one is set.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from mailcenter.models import Sender
from mailcenter.senders import selectors, services
from mailcenter.senders.forms import SenderForm


def sender_list(request):
    return render(request, "mailcenter/sender_list.html", {"senders": selectors.sender_list()})


# Error reports (the 500 e-mail to ADMINS, the debug page) show POST data: not these.
@sensitive_post_parameters("password", "api_key")
def sender_create(request):
    form = SenderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            sender = services.sender_create(
                form.cleaned_data["alias"],
                form.fields_data(),
                password=form.cleaned_data.get("password"),
                api_key=form.cleaned_data.get("api_key"),
            )
        except services.SenderError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(
                request,
                _("Sender “%(alias)s” added. Test its connection before using it.")
                % {"alias": sender.alias},
            )
            return redirect("settings:sender-edit", alias=sender.alias)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "mailcenter/sender_form.html", {"form": form, "sender": None}, status=status
    )


@sensitive_post_parameters("password", "api_key")
def sender_edit(request, alias: str):
    if alias in selectors.conf.configured_senders():
        row = next(r for r in selectors.sender_list() if r.alias == alias)
        return render(request, "mailcenter/sender_configured.html", {"row": row})
    sender = get_object_or_404(Sender, alias=alias)
    form = SenderForm(request.POST or None, instance=sender)
    if request.method == "POST" and form.is_valid():
        try:
            services.sender_update(
                sender.pk,
                form.fields_data(),
                password=form.cleaned_data.get("password"),
                clear_password=bool(form.cleaned_data.get("clear_password")),
                api_key=form.cleaned_data.get("api_key"),
                clear_api_key=bool(form.cleaned_data.get("clear_api_key")),
            )
        except services.SenderError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(request, _("Sender “%(alias)s” saved.") % {"alias": alias})
            return redirect("settings:sender-edit", alias=alias)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "mailcenter/sender_form.html",
        {"form": form, "sender": sender, "in_use": selectors.sender_campaigns_in_use(alias)},
        status=status,
    )


def sender_delete(request, alias: str):
    sender = get_object_or_404(Sender, alias=alias)
    if request.method == "POST":
        try:
            services.sender_delete(sender.pk)
        except services.SenderError as exc:
            messages.error(request, str(exc))
            return redirect("settings:sender-edit", alias=alias)
        messages.success(request, _("Sender “%(alias)s” deleted.") % {"alias": alias})
        return redirect("settings:senders")
    return render(
        request,
        "mailcenter/sender_confirm_delete.html",
        {
            "sender": sender,
            "in_use": selectors.sender_campaigns_in_use(alias),
            "drafts": selectors.sender_draft_count(alias),
        },
    )


@require_POST
def sender_test(request, alias: str):
    if alias not in selectors.conf.configured_senders():
        get_object_or_404(Sender, alias=alias)
    result = services.sender_test(alias)
    if result.ok:
        messages.success(request, result.message)
    else:
        messages.error(
            request, _("Connection test failed: %(reason)s") % {"reason": result.message}
        )
    return redirect("settings:sender-edit", alias=alias)
