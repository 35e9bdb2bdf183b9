"""The shipped rule packs: YAML files in ``rulepacks/``, one per family of harm.

A pack file::

    pack: explosives
    defaults: {reason_code: HIGH_RISK_EXPLOSIVE, direction: prompt, severity: high, action: review}
    examples: {positive: [...], negative: [...]}   # proven by tests/detectors/test_packs.py
    rules:
      - {id: explosive.device, match: proximity, pattern: "make|build ~ bomb*", window: 6, action: refuse}
"""

from functools import lru_cache
from pathlib import Path

import yaml

from safety_admin.detectors.types import ACTIONS, DIRECTIONS, MATCH_TYPES, REASON_CODES, SEVERITIES, Rule

PACK_DIR = Path(__file__).resolve().parent / "rulepacks"
PACK_ERROR = "invalid rule in pack {pack}: {detail}"


class PackError(ValueError):
    """A shipped pack has a rule the engine cannot use."""


def _rule(pack: str, raw: dict, defaults: dict) -> Rule:
    data = {**defaults, **raw}
    rule = Rule(
        rule_id=str(data["id"]),
        pattern=str(data["pattern"]),
        reason_code=str(data["reason_code"]),
        severity=str(data.get("severity", "medium")),
        action=str(data.get("action", "review")),
        direction=str(data.get("direction", "prompt")),
        match_type=str(data.get("match", "word")),
        window=int(data.get("window", 8)),
        note=str(data.get("note", "")),
        prefilter=str(data.get("prefilter", "")),
        weight=int(data.get("weight", 0)),
    )
    checks = (
        (rule.reason_code in REASON_CODES, "reason_code"),
        (rule.severity in SEVERITIES, "severity"),
        (rule.action in ACTIONS, "action"),
        (rule.direction in DIRECTIONS, "direction"),
        (rule.match_type in MATCH_TYPES, "match"),
    )
    for ok, name in checks:
        if not ok:
            raise PackError(PACK_ERROR.format(pack=pack, detail=f"{rule.rule_id}: bad {name}"))
    return rule


@lru_cache(maxsize=1)
def _load() -> tuple[tuple[str, tuple[Rule, ...], dict], ...]:
    packs = []
    for path in sorted(PACK_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        name = str(data.get("pack") or path.stem)
        defaults = data.get("defaults") or {}
        rules = tuple(_rule(name, raw, defaults) for raw in data.get("rules") or ())
        packs.append((name, rules, data.get("examples") or {}))
    return tuple(packs)


def load_packs() -> dict[str, list[Rule]]:
    """Pack name -> its rules, in file order (a fresh list each call; the rules themselves are immutable)."""
    return {name: list(rules) for name, rules, _examples in _load()}


def pack_examples() -> dict[str, dict[str, list[str]]]:
    """Pack name -> {"positive": [...], "negative": [...]} example texts written for the tests."""
    return {name: {k: list(v) for k, v in examples.items()} for name, _rules, examples in _load()}
