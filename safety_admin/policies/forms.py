"""Input validation for the policy screens."""

from django import forms

from safety_admin.detectors import ACTIONS, DIRECTIONS, MATCH_TYPES, REASON_CODES, SEVERITIES
from safety_admin.policies.models import Blocklist, BlocklistEntry
from safety_admin.policies.validation import InvalidEntry, validate_entry

MAX_UPLOAD_BYTES = 64 * 1024 * 1024


def _choices(values):
    return [(v, v) for v in values]


class PublishForm(forms.Form):
    note = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 3}), help_text="Why (change log)")
    confirm_impact = forms.BooleanField(required=False, label="I have seen the impact and want to publish anyway")


class RollbackForm(forms.Form):
    note = forms.CharField(max_length=1000, required=False, help_text="Why (audit trail)")


class ImportForm(forms.Form):
    file = forms.FileField(help_text="One term per line (# comments), or CSV with a header row")
    list_name = forms.SlugField(max_length=100, initial="imported", label="List")
    reason_code = forms.ChoiceField(choices=_choices(REASON_CODES), initial="UNCLASSIFIED_REVIEW")
    severity = forms.ChoiceField(choices=_choices(SEVERITIES), initial="medium")
    action = forms.ChoiceField(choices=_choices(ACTIONS), initial="review")
    match_type = forms.ChoiceField(choices=_choices(MATCH_TYPES), initial="word")
    direction = forms.ChoiceField(choices=_choices(DIRECTIONS), initial="prompt")
    skip_invalid = forms.BooleanField(required=False, help_text="Import the valid lines even if some are invalid")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"file larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
        return upload


class ProposalAcceptForm(forms.Form):
    blocklist = forms.ModelChoiceField(queryset=Blocklist.objects.filter(builtin=False), empty_label=None)
    match_type = forms.ChoiceField(choices=_choices(MATCH_TYPES), initial="substring")
    action = forms.ChoiceField(choices=_choices(ACTIONS), initial="refuse")


class ProposalRejectForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)


class EntryAdminForm(forms.ModelForm):
    """The admin's entry form: the same checks as an import (bad or catastrophic regex, proximity shape)."""

    class Meta:
        model = BlocklistEntry
        fields = [
            "blocklist",
            "pattern",
            "match_type",
            "reason_code",
            "severity",
            "action",
            "direction",
            "window",
            "note",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["blocklist"].queryset = Blocklist.objects.filter(builtin=False)

    def clean(self):
        data = super().clean()
        try:
            data["pattern"] = validate_entry(
                pattern=data.get("pattern", ""),
                match_type=data.get("match_type", ""),
                reason_code=data.get("reason_code", ""),
                severity=data.get("severity", ""),
                action=data.get("action", ""),
                direction=data.get("direction", ""),
            )
        except InvalidEntry as exc:
            self.add_error("pattern", str(exc))
        return data
