"""Forms of the pages on this floor: handing leads over, re-opening one, paging a timeline."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme

MAX_ID = 2**63 - 1
MAX_SELECTED = 500
ID = re.compile(r"[0-9]{1,19}", re.ASCII)  # str.isdigit() takes "²", which int() refuses


class PlainSelect(forms.Select):
    """A select of flat choices written here, not through the form renderer's templates (one per option: the leads
    list's five selects took a fifth of its page). The same markup, escaped the same way; grouped choices and
    multiple selection are left to Django's."""

    def render(self, name, value, attrs=None, renderer=None) -> str:
        if self.allow_multiple_selected or any(isinstance(label, list | tuple) for _, label in self.choices):
            return super().render(name, value, attrs, renderer)
        chosen, marked, options = set(self.format_value(value)), False, []
        for v, label in self.choices:
            v = "" if v is None else str(v)
            selected = not marked and v in chosen  # the first match only, as Django's
            marked |= selected
            options.append((v, " selected" if selected else "", label))
        return format_html(
            '<select name="{}"{}>{}</select>',
            name,
            flatatt(self.build_attrs(self.attrs, attrs)),
            format_html_join("", '<option value="{}"{}>{}</option>', options),
        )


class IdsField(forms.Field):
    """Selected row ids, as checkboxes send them (each value once)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        values = value if isinstance(value, list | tuple) else [value] if value else []
        ids = []
        for v in values:
            if not isinstance(v, str) or not ID.fullmatch(v) or int(v) > MAX_ID:
                raise ValidationError("That selection is not one this page offered; reload and select again.")
            ids.append(int(v))
        if len(ids) > MAX_SELECTED:
            raise ValidationError(f"Select at most {MAX_SELECTED} leads at a time.")
        return list(dict.fromkeys(ids))

    def validate(self, value: list[int]) -> None:
        if self.required and not value:
            raise ValidationError("Select at least one lead first.", code="required")


class HandOverForm(forms.Form):
    ACTIONS = {"send": "Send to sales", "disqualify": "Disqualify"}

    ids = IdsField()
    action = forms.ChoiceField(choices=list(ACTIONS.items()))
    note = forms.CharField(required=False, max_length=2000)
    back = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args: Any, host: str, secure: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host, self.secure = host, secure

    def clean_back(self) -> str:
        """Where to go afterwards: only a page of this site (never an open redirect)."""
        back = self.cleaned_data["back"]
        allowed = url_has_allowed_host_and_scheme(back, allowed_hosts={self.host}, require_https=self.secure)
        return back if back.startswith("/") and allowed else ""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        note = (data.get("note") or "").strip()
        if data.get("action") == "send" and not note:
            self.add_error("note", "Add a handoff note: what should sales know?")
        if data.get("action") == "disqualify" and not note:
            self.add_error("note", "Say why you disqualify (the reason is kept in the stage history).")
        data["note"] = note
        return data

    @property
    def message(self) -> str:
        """The first problem, as one sentence for the page."""
        return next(iter(e for errors in self.errors.values() for e in errors), "")


class ReopenForm(forms.Form):
    reason = forms.CharField(max_length=2000, error_messages={"required": "Say why you re-open this contact."})


class TimelineQuery(forms.Form):
    before = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
