"""Plain data types shared by every detector (no Django import anywhere in this package)."""

from dataclasses import dataclass, field

REASON_CODES = (
    "HIGH_RISK_BIO", "HIGH_RISK_CHEM", "HIGH_RISK_RADNUC", "HIGH_RISK_EXPLOSIVE", "HIGH_RISK_WEAPON",
    "HIGH_RISK_CSAM", "HIGH_RISK_SELF_HARM", "HIGH_RISK_VIOLENCE", "CYBER_ABUSE", "CRIME_NONVIOLENT",
    "SEX_CRIME", "SEXUAL_CONTENT", "HATE", "HARASSMENT", "VIOLENT_GRAPHIC", "PRIVACY_PII", "SECRET_LEAK",
    "DEFAMATION", "MISINFO_ELECTIONS", "SPECIALIZED_ADVICE", "IP_COPYRIGHT", "CODE_INTERPRETER_ABUSE",
    "PROMPT_INJECTION", "JAILBREAK_TEMPLATE", "OBFUSCATION", "UNSAFE_OUTPUT_CODE", "UNCLASSIFIED_REVIEW",
)  # fmt: skip
SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
ACTIONS = ("log", "review", "refuse")
ACTION_RANK = {"pass": 0, "log": 1, "review": 2, "refuse": 3}
DIRECTIONS = ("prompt", "output", "both")
MATCH_TYPES = ("word", "substring", "regex", "proximity")


@dataclass(frozen=True)
class Rule:
    """One detection rule. ``pattern`` is a term, a regex, or for proximity ``"a|b ~ c|d"`` terms."""

    rule_id: str
    pattern: str
    reason_code: str
    severity: str = "medium"
    action: str = "review"
    direction: str = "prompt"
    match_type: str = "word"
    window: int = 8
    note: str = ""
    # regex rules: run only when one of these "|"-separated literals is in the base view (a cheap prefilter)
    prefilter: str = ""
    # signal rules: weight added to the rule's reason-code score; a score of SCORE_THRESHOLD escalates
    weight: int = 0

    def applies_to(self, direction: str) -> bool:
        return self.direction == "both" or self.direction == direction


@dataclass(frozen=True)
class Hit:
    """A rule that matched: where (span in the original text) and in which normalization view."""

    rule_id: str
    reason_code: str
    severity: str
    action: str
    start: int
    end: int
    view: str = "base"
    matched: str = ""
    direction: str = ""

    def as_dict(self) -> dict:
        return {
            "rule_id": self.rule_id,
            "reason_code": self.reason_code,
            "severity": self.severity,
            "action": self.action,
            "span": [self.start, self.end],
            "view": self.view,
            "direction": self.direction,
        }


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``action`` is ``pass``, ``log``, ``review`` or ``refuse``."""

    action: str
    hits: tuple[Hit, ...] = field(default_factory=tuple)
    elapsed_us: int = 0
    ruleset_version: str = ""

    @property
    def severity(self) -> str:
        if not self.hits:
            return "low"
        return max((h.severity for h in self.hits), key=SEVERITY_RANK.__getitem__)

    @property
    def reason_codes(self) -> list[str]:
        codes: list[str] = []
        for hit in sorted(self.hits, key=lambda h: -SEVERITY_RANK[h.severity]):
            if hit.reason_code not in codes:
                codes.append(hit.reason_code)
        return codes

    @property
    def primary_reason_code(self) -> str:
        """The reason code of the hit that decided the action (highest action, then severity)."""
        deciding = [h for h in self.hits if h.action == self.action] or list(self.hits)
        if not deciding:
            return ""
        return max(deciding, key=lambda h: SEVERITY_RANK[h.severity]).reason_code
