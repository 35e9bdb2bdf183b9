"""Policy profiles: overlay merging (global → jurisdiction → context) and turning a config into rules.

A profile config (all keys optional):

    {"lists": {"*": true, "profanity": false},      # which enabled lists apply ("*" = the rest)
     "min_severity": "low",                          # rules below this severity are dropped
     "refuse_at": "high",                            # hits at or above this severity refuse
     "review_at": "medium",                          # "log" hits at or above this severity go to review
     "actions": {"SEXUAL_CONTENT": "log", "HATE": "off"},   # per reason code: refuse/review/log/off
     "steering_prompt": "…",
     "jurisdictions": {"eu": {…partial config…}},
     "contexts": {"kids": {…partial config…}}}
"""

import copy
import dataclasses
import json

from safety_admin.detectors import ACTIONS, SEVERITIES, SEVERITY_RANK, Rule

DEFAULT_PROFILE = "default"
OVERLAY_KEYS = ("jurisdictions", "contexts")
CONFIG_KEYS = ("lists", "min_severity", "refuse_at", "review_at", "actions", "steering_prompt", *OVERLAY_KEYS)

MSG_CONFIG_NOT_OBJECT = "profile config must be a JSON object"
MSG_UNKNOWN_KEY = "unknown profile key {key!r}; allowed: {allowed}"
MSG_BAD_SEVERITY = "{key} must be one of {allowed} or null"
MSG_BAD_ACTION = "actions[{code}] must be one of refuse, review, log, off"
MSG_BAD_LISTS = "lists must map list names (or '*') to true/false"
MSG_BAD_OVERLAY = "{key} must map names to partial profile configs"


def deep_merge(base: dict, *overlays: dict) -> dict:
    """Merge overlays left to right: nested dicts merge key by key, anything else replaces."""
    merged = copy.deepcopy(base)
    for overlay in overlays:
        for key, value in (overlay or {}).items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = deep_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def validate_config(config, *, overlay: bool = False) -> dict:
    """Raise ValueError with a message an admin can act on; return the config with overlay keys casefolded."""
    if not isinstance(config, dict):
        raise ValueError(MSG_CONFIG_NOT_OBJECT)
    for key, value in config.items():
        if key not in CONFIG_KEYS or (overlay and key in OVERLAY_KEYS):
            allowed = [k for k in CONFIG_KEYS if not (overlay and k in OVERLAY_KEYS)]
            raise ValueError(MSG_UNKNOWN_KEY.format(key=key, allowed=", ".join(allowed)))
        if key in ("min_severity", "refuse_at", "review_at") and value is not None and value not in SEVERITIES:
            raise ValueError(MSG_BAD_SEVERITY.format(key=key, allowed=", ".join(SEVERITIES)))
        if key == "actions":
            if not isinstance(value, dict):
                raise ValueError(MSG_BAD_ACTION.format(code="*"))
            for code, action in value.items():
                if action not in (*ACTIONS, "off"):
                    raise ValueError(MSG_BAD_ACTION.format(code=code))
        if key == "lists" and (not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values())):
            raise ValueError(MSG_BAD_LISTS)
        if key in OVERLAY_KEYS:
            if not isinstance(value, dict):
                raise ValueError(MSG_BAD_OVERLAY.format(key=key))
            config[key] = {str(name).casefold(): validate_config(part, overlay=True) for name, part in value.items()}
    return config


def effective_config(config: dict, jurisdiction: str = "", context: str = "") -> dict:
    """The profile's base, then its jurisdiction overlay, then its context overlay."""
    base = {k: v for k, v in config.items() if k not in OVERLAY_KEYS}
    layers = [config.get("jurisdictions", {}).get(jurisdiction, {}), config.get("contexts", {}).get(context, {})]
    return deep_merge(base, *layers)


def selection_key(config: dict, list_names: list[str]) -> str:
    """A canonical description of the rules ``config`` selects; equal keys compile to equal rulesets."""
    lists = config.get("lists", {})
    chosen = sorted(name for name in list_names if lists.get(name, lists.get("*", True)))
    return json.dumps(
        {
            "lists": chosen,
            "min_severity": config.get("min_severity"),
            "refuse_at": config.get("refuse_at"),
            "review_at": config.get("review_at"),
            "actions": config.get("actions", {}),
        },
        sort_keys=True,
    )


def apply_profile(rules_by_list: dict[str, list[Rule]], key: str) -> list[Rule]:
    """The rules a selection key asks for, with the profile's thresholds and per-code actions applied."""
    spec = json.loads(key)
    floor = SEVERITY_RANK.get(spec["min_severity"] or "low", 0)
    refuse_at = SEVERITY_RANK.get(spec["refuse_at"]) if spec["refuse_at"] else None
    review_at = SEVERITY_RANK.get(spec["review_at"]) if spec["review_at"] else None
    overrides = spec["actions"]
    out: list[Rule] = []
    for name in spec["lists"]:
        for rule in rules_by_list.get(name, ()):
            rank = SEVERITY_RANK.get(rule.severity, 1)
            if rank < floor:
                continue
            action = overrides.get(rule.reason_code)
            if action == "off":
                continue
            if action is None:
                action = rule.action
                if refuse_at is not None and rank >= refuse_at:
                    action = "refuse"
                elif review_at is not None and rank >= review_at and action == "log":
                    action = "review"
            out.append(rule if action == rule.action else dataclasses.replace(rule, action=action))
    return out
