"""Admins run the sales desk: open queue or round robin, the offer time, the team calendar, reps' weights
(with who is available and each rep's open load), and routing rules."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from crm.roles import ADMIN, SALES, role_required
from handoff.forms import DeskForm, RoutingRuleForm, WeightForm
from handoff.models import Desk, Rep, RoutingRule
from handoff.services import HOLDING


def _reps():
    now = timezone.now()
    users = (
        get_user_model()
        .objects.filter(groups__name=SALES, is_active=True)
        .annotate(
            open_load=Count("queue_entries", filter=Q(queue_entries__status__in=HOLDING), distinct=True),
            offered=Count(
                "offers", filter=Q(offers__status="waiting", offers__offer_expires_at__gt=now), distinct=True
            ),
        )
        .order_by("first_name", "email")
    )
    places = {r.pk: r for r in Rep.objects.filter(user__in=users)}
    return [(u, places.get(u.pk) or Rep(user=u)) for u in users]


@role_required(ADMIN)
def desk(request: HttpRequest) -> HttpResponse:
    settings_form, rule_form, status = DeskForm(instance=Desk.get()), RoutingRuleForm(), 200
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "settings":
            settings_form = DeskForm(request.POST, instance=Desk.get())
            if settings_form.is_valid():
                settings_form.save()
                messages.success(request, "Desk settings saved.")
                return redirect("desk")
        elif action == "weight":
            form = WeightForm(request.POST)
            if form.is_valid() and get_user_model().objects.filter(pk=form.cleaned_data["rep"], groups__name=SALES):
                Rep.objects.update_or_create(
                    user_id=form.cleaned_data["rep"], defaults={"weight": form.cleaned_data["weight"]}
                )
                messages.success(request, "Weight saved.")
                return redirect("desk")
            messages.error(request, "A weight is a whole number from 1 to 100, for a sales rep.")
        elif action == "rule":
            rule_form = RoutingRuleForm(request.POST)
            if rule_form.is_valid():
                rule_form.save()
                messages.success(request, "Routing rule added.")
                return redirect("desk")
        status = 400
    context = {
        "form": settings_form,
        "rule_form": rule_form,
        "reps": _reps(),
        "rules": RoutingRule.objects.prefetch_related("reps"),
    }
    return render(request, "handoff/desk.html", context, status=status)


@require_POST
@role_required(ADMIN)
def delete_rule(request: HttpRequest, rule_id: int) -> HttpResponse:
    get_object_or_404(RoutingRule, pk=rule_id).delete()
    messages.success(request, "Routing rule deleted.")
    return redirect("desk")
