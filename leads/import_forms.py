"""An import's options as a request gives them (the API's multipart fields, the import page's form)."""

from __future__ import annotations

import json

from django import forms

from leads import import_rows
from leads.models import Import, ImportFile

BOOLEAN = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


class Flag(forms.CharField):
    """true/false (also 1/0, yes/no, on/off); absent is false."""

    def __init__(self, **kwargs):
        super().__init__(required=False, max_length=5, **kwargs)

    def clean(self, value):
        text = (super().clean(value) or "false").strip().lower()
        if text not in BOOLEAN:
            raise forms.ValidationError("Say true or false.")
        return BOOLEAN[text]


class ImportOptions(forms.Form):
    mode = forms.ChoiceField(choices=Import.Mode.choices, required=False)
    overwrite = Flag(help_text="A value in the file replaces a filled field; otherwise it only fills empty ones.")
    dry_run = Flag(help_text="Check every row and count what would change, writing nothing.")
    mapping = forms.CharField(required=False, max_length=100_000, help_text='JSON: {"CSV header": "field"}')

    def clean_mode(self) -> str:
        return self.cleaned_data["mode"] or Import.Mode.UPSERT

    def clean_mapping(self) -> dict[str, str]:
        text = self.cleaned_data["mapping"].strip()
        if not text:
            return {}
        try:
            mapping = json.loads(text)
        except ValueError:
            raise forms.ValidationError('Give the mapping as JSON: {"CSV header": "field"}.') from None
        if not isinstance(mapping, dict) or not all(isinstance(v, str | None) for v in mapping.values()):
            raise forms.ValidationError('Give the mapping as a JSON object of text: {"CSV header": "field"}.')
        return {str(header): value or "" for header, value in mapping.items()}

    def problems_with(self, file: ImportFile) -> list[tuple[str, str]]:
        """(field, message) for what is wrong with the mapping once the file's headers are known."""
        return import_rows.mapping_problems(file.headers, self.cleaned_data["mapping"])
