"""Input validation for the review console."""

from datetime import timedelta

from django import forms

from review.models import Direction, EscalationStatus, Severity
from review.selectors import AGE_FILTERS
from safety_admin.detectors import REASON_CODES

SUSPEND_CHOICES = [("", "Do not suspend"), ("1", "1 hour"), ("24", "1 day"), ("168", "7 days"), ("720", "30 days")]


def _blank(choices):
    return [("", "Any"), *choices]


class QueueFilterForm(forms.Form):
    """GET filters of the queue; ``after`` is the keyset cursor."""

    status = forms.ChoiceField(choices=_blank(EscalationStatus.choices), required=False)
    severity = forms.ChoiceField(choices=_blank(Severity.choices), required=False)
    reason = forms.ChoiceField(choices=_blank([(c, c) for c in REASON_CODES]), required=False)
    direction = forms.ChoiceField(choices=_blank(Direction.choices), required=False)
    age = forms.ChoiceField(choices=_blank([(k, f"older than {k}") for k in AGE_FILTERS]), required=False)
    after = forms.RegexField(regex=r"^\d{1,19}\.\d{1,19}$", required=False)


class DecideForm(forms.Form):
    """A decision from the detail screen; the service enforces who may do what."""

    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("block", "Block")])
    note = forms.CharField(required=False, max_length=2000)
    suspend_hours = forms.TypedChoiceField(choices=SUSPEND_CHOICES, required=False, coerce=int, empty_value=None)
    suspend_reason = forms.CharField(required=False, max_length=500)
    propose_text = forms.CharField(required=False, max_length=500, strip=False)
    propose_reason_code = forms.ChoiceField(choices=_blank([(c, c) for c in REASON_CODES]), required=False)
    propose_severity = forms.ChoiceField(choices=_blank(Severity.choices), required=False)

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        hours = data.get("suspend_hours")
        return {
            "decision": data["decision"],
            "note": data["note"],
            "suspend_for": timedelta(hours=hours) if hours else None,
            "suspend_reason": data["suspend_reason"],
            "propose_text": data["propose_text"].strip(),
            "propose_reason_code": data["propose_reason_code"],
            "propose_severity": data["propose_severity"],
        }
