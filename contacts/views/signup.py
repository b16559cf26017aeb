"""Subscription forms: the marketer's pages, and the public page, snippet target and
confirmation link."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import FormView, ListView

from contacts.forms import PublicSignupForm, SignupFormForm
from contacts.models import SignupForm
from contacts.services import signup as signup_service
from contacts.views.common import add_errors


class SignupFormListView(ListView):
    template_name = "contacts/signupform_list.html"
    context_object_name = "forms"

    def get_queryset(self):
        return SignupForm.objects.annotate(consent_count=Count("consents")).order_by("name")


class _SignupFormEditView(FormView):
    template_name = "contacts/signupform_form.html"
    form_class = SignupFormForm
    signup_form: SignupForm | None = None

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "instance": self.signup_form}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["signup_form"] = self.signup_form
        if self.signup_form is not None:
            context["hosted_url"] = settings.BASE_URL + reverse(
                "contacts:signup", args=[self.signup_form.key]
            )
            context["snippet"] = signup_snippet(self.signup_form)
        return context

    def form_valid(self, form):
        try:
            signup_form = signup_service.signup_form_save(self.signup_form, **form.cleaned_data)
        except ValidationError as exc:
            add_errors(form, exc)
            return self.form_invalid(form)
        messages.success(
            self.request, _("The form “%(name)s” was saved.") % {"name": signup_form.name}
        )
        return redirect("contacts:signup-form-edit", pk=signup_form.pk)

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)


class SignupFormCreateView(_SignupFormEditView):
    pass


class SignupFormUpdateView(_SignupFormEditView):
    def dispatch(self, request, *args, **kwargs):
        self.signup_form = get_object_or_404(SignupForm, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)


class SignupFormDeleteView(View):
    def post(self, request, pk):
        signup_form = get_object_or_404(SignupForm, pk=pk)
        signup_service.signup_form_delete(signup_form)
        messages.success(
            request,
            _("The form “%(name)s” was deleted; the consents it collected are kept.")
            % {"name": signup_form.name},
        )
        return redirect("contacts:signup-forms")


def signup_snippet(signup_form: SignupForm) -> str:
    """The HTML a marketer pastes into their site: a plain form posting to the hosted page."""
    form = PublicSignupForm(signup_form=signup_form)
    return render_to_string(
        "contacts/signup_snippet.html",
        {
            "signup_form": signup_form,
            "form": form,
            "action": settings.BASE_URL + reverse("contacts:signup", args=[signup_form.key]),
            "honeypot": signup_service.HONEYPOT_FIELD,
        },
    ).strip()


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


# Embedded forms post from other sites, without our CSRF cookie; nothing here acts for a
# logged-in user, and bots are held off by the honeypot and the rate limits.
@method_decorator([login_not_required, never_cache, csrf_exempt], name="dispatch")
class PublicSignupView(View):
    template_name = "contacts/signup_public.html"

    def _render(self, request, signup_form, form, status=200, done=False, error=""):
        return render(
            request,
            self.template_name,
            {
                "signup_form": signup_form,
                "form": form,
                "done": done,
                "error": error,
                "honeypot": signup_service.HONEYPOT_FIELD,
            },
            status=status,
        )

    def get(self, request, key):
        signup_form = get_object_or_404(SignupForm, key=key)
        return self._render(request, signup_form, PublicSignupForm(signup_form=signup_form))

    def post(self, request, key):
        signup_form = get_object_or_404(SignupForm, key=key)
        form = PublicSignupForm(request.POST, signup_form=signup_form)
        try:
            signup_service.signup_submit(
                signup_form,
                request.POST,
                ip=_client_ip(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
            )
        except signup_service.RateLimited:
            return self._render(
                request,
                signup_form,
                form,
                status=429,
                error=_("Too many sign-ups from here. Please try again in an hour."),
            )
        except ValidationError as exc:
            form.is_valid()  # draws the inputs with what was typed
            form._errors = {}
            add_errors(form, exc)
            return self._render(request, signup_form, form, status=400)
        return self._render(request, signup_form, None, done=True)


@method_decorator([login_not_required, never_cache], name="dispatch")
class SignupConfirmView(View):
    """GET shows a button, POST confirms: link scanners that open every URL in a message
    must not confirm on the reader's behalf."""

    template_name = "contacts/signup_confirm.html"

    def get(self, request, token):
        return render(request, self.template_name, {"token": token, "done": False})

    def post(self, request, token):
        consent = signup_service.signup_confirm(token)
        if consent is None:
            return render(
                request, self.template_name, {"token": token, "invalid": True}, status=404
            )
        return render(request, self.template_name, {"done": True, "consent": consent})
