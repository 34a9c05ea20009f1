"""What a report is asked for, from the URL: the period (last 7/30/90 days, this quarter, or from–to), the funnel's
mode, a channel, the cohort window and whether to compare with the previous period. The pages, the CSV files
and the API parse it with this one form."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.utils import timezone

from front.reports import Scope

PERIODS = [("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days"), ("quarter", "This quarter")]
MAX_DAYS = 3660


class Moment(forms.Field):
    """A day (YYYY-MM-DD, taken whole) or an ISO 8601 moment with its offset."""

    def __init__(self, **kwargs):
        super().__init__(required=False, widget=forms.TextInput(attrs={"placeholder": "YYYY-MM-DD"}), **kwargs)

    def to_python(self, value):
        text = str(value or "").strip()
        if not text:
            return None
        if not text.isascii() or len(text) > 40:
            raise forms.ValidationError("Give a date as YYYY-MM-DD (or an ISO 8601 time with its offset).")
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise forms.ValidationError("Give a date as YYYY-MM-DD (or an ISO 8601 time with its offset).") from None

    def validate(self, value):
        super().validate(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            raise forms.ValidationError("Give the time's offset (Z or +hh:mm).")


class ReportQuery(forms.Form):
    period = forms.ChoiceField(required=False, choices=[*PERIODS, ("custom", "From … to …")])
    mode = forms.ChoiceField(
        required=False,
        choices=[("cohort", "Cohort: leads of the period, how far they got"), ("period", "Period: entries per stage")],
    )
    channel = forms.CharField(required=False, max_length=100)
    window = forms.IntegerField(required=False, min_value=1, max_value=730, label="Conversion window (days)")
    compare = forms.BooleanField(required=False, label="Compare with the previous period")

    def __init__(self, data=None, *, default_period: str = "30", **kwargs):
        super().__init__(data, **kwargs)
        self.fields["from"] = Moment(label="From")
        self.fields["to"] = Moment(label="To")
        self.default_period = default_period

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "\x00" in (data.get("channel") or ""):
            self.add_error("channel", "Null characters are not allowed.")
        first, last = data.get("from"), data.get("to")
        period = data.get("period") or ("custom" if first or last else self.default_period)
        now = timezone.now()
        if period == "custom":
            start = start_of(first) if first else now - timedelta(days=30)
            end = end_of(last) if last else now
        elif period == "quarter":
            today = now.date()
            start = start_of(date(today.year, 3 * ((today.month - 1) // 3) + 1, 1))
            end = now
        else:
            start, end = now - timedelta(days=int(period)), now
        if end <= start:
            self.add_error("to", "Must be after the start of the period.")
        elif (end - start).days > MAX_DAYS:
            self.add_error("from", "A report covers at most ten years.")
        data["period"], data["start"], data["end"] = period, start, end
        data["mode"] = data.get("mode") or "cohort"
        data["window"] = data.get("window") or 90
        return data

    def scope(self) -> Scope:
        data = self.cleaned_data
        return Scope(
            start=data["start"], end=data["end"], channel=(data["channel"] or "").strip(), window_days=data["window"]
        )

    def as_query(self, **changes) -> str:
        """This query (cleaned) as URL parameters, with ``changes``."""
        data = self.cleaned_data
        values = {
            "period": data["period"],
            "from": data["start"].isoformat() if data["period"] == "custom" else "",
            "to": data["end"].isoformat() if data["period"] == "custom" else "",
            "mode": data["mode"],
            "channel": data["channel"],
            "window": data["window"],
            "compare": "on" if data["compare"] else "",
        } | changes
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def start_of(value: date | datetime) -> datetime:
    return value if isinstance(value, datetime) else Scope.of_days(value, value).start


def end_of(value: date | datetime) -> datetime:
    """A day is taken whole: "to 2026-11-30" ends at the start of 1 December."""
    return value if isinstance(value, datetime) else Scope.of_days(value, value).end
