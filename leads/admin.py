from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from leads.forms import classify
from leads.models import ApiKey, Event, Form, Source


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("prefix", "scope", "created_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "rate_limit", "created_at")
    search_fields = ("name",)
    inlines = [ApiKeyInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "source", "scope", "created_at", "revoked_at")
    list_filter = ("scope", "source")
    list_select_related = ("source",)
    fields = ("source", "scope", "prefix", "created_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "revoked_at")
    actions = ["revoke"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None  # keys are created and revoked, never edited

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        raw = obj.generate()
        super().save_model(request, obj, form, change)
        messages.warning(request, f"Copy this key now; it is stored only as a hash and will not be shown again: {raw}")

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset) -> None:
        for key in queryset:
            key.revoke()
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(Form)
class FormAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "kind", "thank_you_url")
    list_filter = ("kind",)
    search_fields = ("slug", "name")

    def save_model(self, request: HttpRequest, obj: Form, form, change: bool) -> None:
        kind_changed = change and "kind" in form.changed_data
        super().save_model(request, obj, form, change)
        if kind_changed:  # the same service as everywhere: submitters are rescored
            rescored = classify(form=obj, kind=obj.kind)
            self.message_user(request, f"{len(rescored)} contact(s) who submitted this form are being rescored.")


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("type", "contact", "visitor_id", "source", "occurred_at")
    list_filter = ("type", "source")
    list_select_related = ("contact", "source")
    raw_id_fields = ("contact",)
    search_fields = ("contact__email", "visitor_id", "client_id")
    date_hierarchy = "occurred_at"

    def has_change_permission(self, request, obj=None) -> bool:
        return False
