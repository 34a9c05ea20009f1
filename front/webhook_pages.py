"""Admins manage outgoing webhooks: endpoints, a test event, the delivery log, replays."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from crm import webhooks
from crm.models import WebhookDelivery, WebhookEndpoint
from crm.roles import ADMIN, role_required

LOG_PAGE = 50


class EndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=WebhookEndpoint.Event.choices, widget=forms.CheckboxSelectMultiple, label="Events it receives"
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "kind", "url", "events"]
        labels = {"url": "Address (https://…)", "kind": "Kind"}
        help_texts = {"kind": "Slack posts a readable message to an incoming-webhook address instead of the JSON."}

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            webhooks.check_url(url)
        except webhooks.WebhookRefused as e:
            raise forms.ValidationError(str(e)) from None
        return url


class LogFilter(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "All"), *WebhookDelivery.Status.choices])
    page = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)


class ReplayForm(forms.Form):
    delivery = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


@role_required(ADMIN)
def endpoints(request: HttpRequest) -> HttpResponse:
    """The endpoints, and a form to add one (its secret is shown once, on the page that answers)."""
    form = EndpointForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        endpoint = form.save(commit=False)
        endpoint.secret_salt = webhooks.new_salt()
        endpoint.save()
        secret, form = webhooks.secret_of(endpoint), EndpointForm()
    context = {"form": form, "endpoints": WebhookEndpoint.objects.order_by("name"), "new_secret": secret}
    return render(request, "front/webhooks.html", context, status=400 if form.errors else 200)


@role_required(ADMIN)
def endpoint_detail(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
    template = "front/webhook_detail.html#log" if request.htmx else "front/webhook_detail.html"
    return render(request, template, _detail_context(request, endpoint))


def _detail_context(request: HttpRequest, endpoint: WebhookEndpoint) -> dict:
    query = LogFilter(request.GET)
    data = query.cleaned_data if query.is_valid() else {}
    log = endpoint.deliveries.order_by("-id")
    if data.get("status"):
        log = log.filter(status=data["status"])
    page = Paginator(log, LOG_PAGE).get_page(data.get("page") or 1)
    return {
        "endpoint": endpoint,
        "page": page,
        "query": query,
        "failed": endpoint.deliveries.filter(status=WebhookDelivery.Status.FAILED).count(),
        "pending": endpoint.deliveries.filter(status=WebhookDelivery.Status.PENDING).exists(),
    }


def _test(request: HttpRequest, endpoint: WebhookEndpoint) -> str:
    webhooks.send_test(endpoint=endpoint)
    return "A test event is on its way; its delivery shows below in a moment."


def _enable(request: HttpRequest, endpoint: WebhookEndpoint) -> str:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=True, disabled_reason="", failing_since=None)
    webhooks.nudge()
    return "Enabled: pending deliveries go out again."


def _disable(request: HttpRequest, endpoint: WebhookEndpoint) -> str:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False, disabled_reason="Disabled by an admin.")
    return "Disabled: deliveries wait until it is enabled again."


def _replay(request: HttpRequest, endpoint: WebhookEndpoint) -> str:
    """One failed delivery (``delivery``), or, without that field, all of them."""
    form = ReplayForm(request.POST)
    if not form.is_valid():
        raise BadAction("That delivery is not one of this endpoint's; reload the page.")
    one = form.cleaned_data["delivery"]
    count = webhooks.replay(endpoint=endpoint, delivery_ids=[one] if one else None)
    return f"Sending {count} failed deliver{'y' if count == 1 else 'ies'} again."


class BadAction(Exception):
    pass


ACTIONS = {"test": _test, "enable": _enable, "disable": _disable, "replay": _replay}


@require_POST
@role_required(ADMIN)
def endpoint_action(request: HttpRequest, endpoint_id: int, action: str) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
    if action == "delete":
        endpoint.delete()
        messages.success(request, f"Deleted “{endpoint.name}” and its delivery log.")
        return redirect("webhooks")
    if action == "rotate":  # the new secret is shown on the answer itself, once (never in a cookie)
        endpoint.secret_salt = webhooks.new_salt()
        endpoint.save(update_fields=["secret_salt"])
        context = _detail_context(request, endpoint) | {"new_secret": webhooks.secret_of(endpoint)}
        return render(request, "front/webhook_detail.html", context)
    if action not in ACTIONS:
        return HttpResponse(status=404)
    try:
        messages.success(request, ACTIONS[action](request, endpoint))
    except BadAction as e:
        messages.error(request, str(e))
        return redirect("webhook_detail", endpoint.pk)
    return redirect("webhook_detail", endpoint.pk)
