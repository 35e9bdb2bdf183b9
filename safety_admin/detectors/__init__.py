"""Detectors: normalization views, matchers, rules and reason codes. Pure Python, no Django.

The public interface used by the gateway, the worker and the policy screens:

    ruleset = compile_ruleset(rules, version="v1")   # once; then shared read-only by threads
    verdict = check(text, "prompt", ruleset)        # -> Verdict(action, hits, elapsed_us)
"""

from safety_admin.detectors.engine import Ruleset, check, compile_ruleset, default_rules, default_ruleset
from safety_admin.detectors.packs import load_packs
from safety_admin.detectors.types import (
    ACTIONS,
    DIRECTIONS,
    MATCH_TYPES,
    REASON_CODES,
    SEVERITIES,
    SEVERITY_RANK,
    Hit,
    Rule,
    Verdict,
)

__all__ = [
    "ACTIONS",
    "DIRECTIONS",
    "MATCH_TYPES",
    "REASON_CODES",
    "SEVERITIES",
    "SEVERITY_RANK",
    "Hit",
    "Rule",
    "Ruleset",
    "Verdict",
    "check",
    "compile_ruleset",
    "default_rules",
    "default_ruleset",
    "load_packs",
]
