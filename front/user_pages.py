"""Users for admins, in the product: invite by email (a link valid 7 days: resend, revoke), change a role,
deactivate (open claims go back to the queue) and reactivate. And the invitation's own page."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import SetPasswordForm
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from crm import accounts
from crm.roles import ADMIN, ROLES, primary_role, role_required
from handoff import services as handoff

ROLE_CHOICES = [(r, r.capitalize()) for r in ROLES]


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


def _invitation(request: HttpRequest, user) -> str:
    """Email the user their link; returns what to tell the admin (with the link, should the email not arrive)."""
    link = request.build_absolute_uri(reverse("invitation", args=[accounts.invite_token(user)]))
    try:
        send_mail(
            "You are invited to Baton",
            f"Hello {user.first_name or user.email},\n\nChoose your password and log in to Baton here (the link "
            f"works for {accounts.INVITE_DAYS} days):\n{link}\n",
            None,
            [user.email],
        )
        return f"Invitation sent to {user.email}. The link, should it not arrive: {link}"
    except OSError:
        return f"The email to {user.email} could not be sent; give them this link: {link}"


@role_required(ADMIN)
def users(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with transaction.atomic():
            user = accounts.invite(email=data["email"], name=data["name"], role=data["role"])
        messages.success(request, _invitation(request, user))
        return redirect("users")
    people = (
        get_user_model()
        .objects.annotate(
            open_claims=Count("queue_entries", filter=Q(queue_entries__status__in=["claimed", "working"]))
        )
        .prefetch_related("groups")
        .order_by("-is_active", "email")
    )
    rows = [(u, primary_role(u), not u.has_usable_password()) for u in people]
    return render(
        request,
        "front/users.html",
        {"form": form, "rows": rows, "role_choices": ROLE_CHOICES},
        status=400 if form.errors else 200,
    )


@require_POST
@role_required(ADMIN)
def user_action(request: HttpRequest, user_id: int, action: str) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=user_id)
    if user == request.user and action in ("deactivate", "role"):
        messages.error(request, "You cannot change your own role or deactivate yourself; ask another admin.")
        return redirect("users")
    with transaction.atomic():
        if action == "role":
            form = RoleForm(request.POST)
            if not form.is_valid():
                messages.error(request, "Choose a role from the list.")
                return redirect("users")
            accounts.set_role(user=user, role=form.cleaned_data["role"])
            messages.success(request, f"{user.email} is now {form.cleaned_data['role']}.")
        elif action == "deactivate":
            user.is_active = False
            user.save(update_fields=["is_active"])
            returned = handoff.release(rep=user)
            messages.success(
                request, f"{user.email} can no longer log in; {returned} open claim(s) went back to the queue."
            )
        elif action == "reactivate":
            user.is_active = True
            user.save(update_fields=["is_active"])
            messages.success(request, f"{user.email} can log in again.")
        elif action == "resend":
            accounts.revoke_invitation(user=user)  # the old link stops working
            messages.success(request, _invitation(request, user))
        elif action == "revoke":
            accounts.revoke_invitation(user=user)
            user.is_active = False
            user.save(update_fields=["is_active"])
            messages.success(request, f"The invitation of {user.email} no longer works.")
        else:
            messages.error(request, "There is no such action.")
    return redirect("users")


@login_not_required
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The invited person chooses a password and is logged in."""
    user = accounts.invited_user(token)
    if user is None:
        return render(request, "registration/invitation.html", {"expired": True}, status=404)
    form = SetPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("home")
    return render(
        request, "registration/invitation.html", {"form": form, "invited": user}, status=400 if form.errors else 200
    )
