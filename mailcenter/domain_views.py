"""Settings → Domains: sending domains, their DKIM keys, the DNS records and checks.

Thin: every write goes through ``mailcenter.domains.services``; a private key is never put
in a context, so no template can show it.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mailcenter.domains import checks, keys, selectors, services
from mailcenter.models import DkimKey, SendingDomain


def domain_list(request):
    if request.method == "POST":
        try:
            domain = services.sending_domain_create(request.POST.get("domain", ""))
        except services.DomainError as exc:
            messages.error(request, str(exc))
            return render(
                request,
                "mailcenter/domain_list.html",
                {"domains": selectors.sending_domain_list(), "value": request.POST.get("domain")},
                status=400,
            )
        messages.success(
            request,
            _("%(domain)s added. Generate a DKIM key for it next.") % {"domain": domain.domain},
        )
        return redirect("settings:domain-detail", pk=domain.pk)
    return render(
        request, "mailcenter/domain_list.html", {"domains": selectors.sending_domain_list()}
    )


def domain_detail(request, pk: int):
    domain = get_object_or_404(SendingDomain, pk=pk)
    key_rows = [
        {"key": key, "record": selectors.dkim_key_record(key)}
        for key in domain.keys.select_related("domain").order_by("-active", "-created_at")
    ]
    report = None
    if request.GET.get("check"):
        report = checks.sending_domain_check(domain)
    return render(
        request,
        "mailcenter/domain_detail.html",
        {
            "domain": domain,
            "key_rows": key_rows,
            "report": report,
            "algorithms": DkimKey.Algorithm.choices,
        },
    )


@require_POST
def domain_delete(request, pk: int):
    domain = get_object_or_404(SendingDomain, pk=pk)
    services.sending_domain_delete(domain.pk)
    messages.success(
        request,
        _("%(domain)s and its keys are deleted; its mail is no longer signed.")
        % {"domain": domain.domain},
    )
    return redirect("settings:domains")


@require_POST
def key_generate(request, pk: int):
    domain = get_object_or_404(SendingDomain, pk=pk)
    algorithm = request.POST.get("algorithm", keys.RSA)
    try:
        key = services.dkim_key_generate(domain.pk, algorithm, request.POST.get("selector", ""))
    except services.DomainError as exc:
        messages.error(request, str(exc))
        return redirect("settings:domain-detail", pk=domain.pk)
    if key.active:
        messages.success(
            request,
            _(
                "Key %(selector)s generated and active: mail from %(domain)s is signed with it "
                "from now on. Publish its DNS record below."
            )
            % {"selector": key.selector, "domain": domain.domain},
        )
    else:
        messages.success(
            request,
            _(
                "Key %(selector)s generated, not active yet. Publish its DNS record, check it, "
                "then activate it to replace the current key."
            )
            % {"selector": key.selector},
        )
    return redirect("settings:domain-detail", pk=domain.pk)


def _key_of(domain_pk: int, key_pk: int) -> DkimKey:
    return get_object_or_404(
        DkimKey.objects.select_related("domain"), pk=key_pk, domain_id=domain_pk
    )


@require_POST
def key_activate(request, pk: int, key_pk: int):
    key = _key_of(pk, key_pk)
    services.dkim_key_activate(key.pk)
    messages.success(
        request, _("Key %(selector)s now signs this domain's mail.") % {"selector": key.selector}
    )
    return redirect("settings:domain-detail", pk=pk)


@require_POST
def key_deactivate(request, pk: int, key_pk: int):
    key = _key_of(pk, key_pk)
    services.dkim_key_deactivate(key.pk)
    messages.success(
        request, _("Key %(selector)s no longer signs mail.") % {"selector": key.selector}
    )
    return redirect("settings:domain-detail", pk=pk)


@require_POST
def key_delete(request, pk: int, key_pk: int):
    key = _key_of(pk, key_pk)
    services.dkim_key_delete(key.pk)
    messages.success(request, _("Key %(selector)s deleted.") % {"selector": key.selector})
    return redirect("settings:domain-detail", pk=pk)
