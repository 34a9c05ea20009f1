from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from crm import views
from crm.login import LoginForm, ResetForm

urlpatterns = [
    # The events API first: one event per request is the busiest path, and resolving walks the patterns in order.
    path("", include("leads.urls")),
    path("healthz", views.healthz, name="healthz"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=LoginForm),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_reset/", views.PasswordReset.as_view(form_class=ResetForm), name="password_reset"),
    path("password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(post_reset_login=False),
        name="password_reset_confirm",
    ),
    path("reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("admin/", admin.site.urls),
    path("", include("front.urls")),
    path("", include("handoff.urls")),
    path("", include("scoring.urls")),
]

handler400 = "crm.error_pages.bad_request"
handler403 = "crm.error_pages.permission_denied"
handler404 = "crm.error_pages.not_found"
handler500 = "crm.error_pages.server_error"
