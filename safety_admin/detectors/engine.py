"""A small first engine behind the detectors interface (the detectors issue replaces its internals)."""

import re
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from safety_admin.detectors.types import ACTION_RANK, Hit, Rule, Verdict

_BUILTIN = (
    Rule("builtin.explosive.synthesis", r"\b(build|make|assemble)\b.{0,40}\b(pipe bomb|bomb|explosive device)\b",
         "HIGH_RISK_EXPLOSIVE", "critical", "refuse", "prompt", "regex"),
    Rule("builtin.nerve_agent", r"\b(synthesi[sz]e|make|produce)\b.{0,40}\b(sarin|vx|tabun|novichok)\b",
         "HIGH_RISK_CHEM", "critical", "refuse", "prompt", "regex"),
    Rule("builtin.injection.ignore", r"\bignore (all )?(previous|prior) instructions\b",
         "PROMPT_INJECTION", "medium", "review", "prompt", "regex"),
    Rule("builtin.secret.aws", r"\bAKIA[0-9A-Z]{16}\b", "SECRET_LEAK", "high", "review", "output", "regex"),
    Rule("builtin.secret.private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----", "SECRET_LEAK", "high", "review",
         "output", "regex"),
)  # fmt: skip


@dataclass(frozen=True)
class Ruleset:
    """Compiled, immutable rules; safe to share between threads."""

    version: str
    rules: tuple[Rule, ...]
    compiled: tuple[tuple[Rule, re.Pattern], ...]


def default_rules() -> list[Rule]:
    return list(_BUILTIN)


def compile_ruleset(rules, version: str = "builtin") -> Ruleset:
    compiled = []
    for rule in rules:
        pattern = rule.pattern if rule.match_type == "regex" else r"\b" + re.escape(rule.pattern.lower()) + r"\b"
        compiled.append((rule, re.compile(pattern, re.IGNORECASE)))
    return Ruleset(version=version, rules=tuple(rules), compiled=tuple(compiled))


@lru_cache(maxsize=1)
def default_ruleset() -> Ruleset:
    return compile_ruleset(default_rules(), version="builtin")


def check(text: str, direction: str, ruleset: Ruleset | None = None) -> Verdict:
    """Scan ``text`` for ``direction`` ("prompt" or "output"); never raises on any ``str``."""
    started = time.perf_counter()
    ruleset = ruleset or default_ruleset()
    base = unicodedata.normalize("NFKC", text or "")
    hits = []
    for rule, regex in ruleset.compiled:
        if not rule.applies_to(direction):
            continue
        match = regex.search(base[:100_000])
        if match:
            hits.append(Hit(rule.rule_id, rule.reason_code, rule.severity, rule.action, match.start(), match.end()))
    action = max((h.action for h in hits), key=ACTION_RANK.__getitem__, default="pass")
    elapsed = int((time.perf_counter() - started) * 1_000_000)
    return Verdict(action=action, hits=tuple(hits), elapsed_us=elapsed, ruleset_version=ruleset.version)
