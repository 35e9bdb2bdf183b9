"""Preview: what a draft would change on recent stored requests and on the labelled corpus."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from safety_admin.detectors import check
from safety_admin.inference.models import InferenceRequest
from safety_admin.policies import selectors
from safety_admin.policies.runtime import PolicyState, build_state

EXAMPLES = 5
CORPUS_MISSING_NOTE = "The labelled corpus was not found at {path}; that part of the preview was skipped."
CATEGORIES = ("newly_refused", "newly_review", "no_longer_caught")


@dataclass
class PreviewPart:
    """Counts and a few examples per change category for one set of texts."""

    total: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    examples: dict[str, list[dict]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})
    by_label: dict[str, dict[str, int]] = field(default_factory=dict)

    def percent(self, category: str) -> float:
        return 100.0 * self.counts[category] / self.total if self.total else 0.0

    @property
    def percent_refused(self) -> float:
        return self.percent("newly_refused")


@dataclass
class Preview:
    recent: PreviewPart
    corpus: PreviewPart | None
    corpus_note: str = ""


def _deciding_rules(verdict) -> list[str]:
    return sorted({h.rule_id for h in verdict.hits if h.action == verdict.action})


def classify(before: str, after: str) -> str | None:
    """Which change category moving from action ``before`` to ``after`` falls in (None: no change that matters)."""
    if after == "refuse" and before != "refuse":
        return "newly_refused"
    if after == "review" and before in ("pass", "log"):
        return "newly_review"
    if before in ("refuse", "review") and after in ("pass", "log"):
        return "no_longer_caught"
    return None


def _compare(part: PreviewPart, text: str, old, new, *, item_id: str, label: str = "") -> None:
    part.total += 1
    before, after = check(text, "prompt", old), check(text, "prompt", new)
    category = classify(before.action, after.action)
    if category is None:
        return
    part.counts[category] += 1
    if label:
        part.by_label.setdefault(category, {}).setdefault(label, 0)
        part.by_label[category][label] += 1
    if len(part.examples[category]) < EXAMPLES:
        responsible = before if category == "no_longer_caught" else after
        part.examples[category].append(
            {
                "id": item_id,
                "text": text[:300],
                "label": label,
                "before": before.action,
                "after": after.action,
                "rules": _deciding_rules(responsible),
            }
        )


def recent_preview(old: PolicyState, new: PolicyState, *, limit: int) -> PreviewPart:
    """Replay the last ``limit`` stored prompts under their own profile and metadata."""
    part = PreviewPart()
    rows = InferenceRequest.objects.order_by("-created_at").values_list("id", "user_input", "profile", "metadata")
    for pk, text, profile, metadata in rows[:limit]:
        meta = metadata if isinstance(metadata, dict) else {}
        j, c = str(meta.get("jurisdiction") or ""), str(meta.get("context") or "")
        _compare(part, text, old.lookup(profile, j, c)[0], new.lookup(profile, j, c)[0], item_id=str(pk))
    return part


def corpus_preview(old: PolicyState, new: PolicyState, *, directory: Path) -> PreviewPart | None:
    """Every ``*.jsonl`` item (``text``, ``label``) under ``directory`` with the default profile; None if absent."""
    files = sorted(Path(directory).glob("*.jsonl")) if Path(directory).is_dir() else []
    if not files:
        return None
    part = PreviewPart()
    old_rules, new_rules = old.lookup("")[0], new.lookup("")[0]
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if isinstance(item, dict) and isinstance(item.get("text"), str):
                    _compare(
                        part,
                        item["text"],
                        old_rules,
                        new_rules,
                        item_id=str(item.get("id") or f"{path.name}:{number}"),
                        label=str(item.get("label", "")),
                    )
    return part


def draft_preview(*, limit: int | None = None, corpus_dir: Path | None = None, corpus: bool = True) -> Preview:
    """Compare the draft against the active version on recent traffic and (optionally) the corpus."""
    old = build_state(selectors.version_snapshot(selectors.version_active()), version=None, label="active")
    new = build_state(selectors.draft_snapshot(), version=None, label="draft")
    return states_preview(old, new, limit=limit, corpus_dir=corpus_dir, corpus=corpus)


def states_preview(
    old: PolicyState, new: PolicyState, *, limit: int | None = None, corpus_dir: Path | None = None, corpus: bool = True
) -> Preview:
    limit = settings.POLICY_PREVIEW_RECENT if limit is None else limit
    recent = recent_preview(old, new, limit=limit)
    if not corpus:
        return Preview(recent=recent, corpus=None)
    directory = Path(corpus_dir or settings.POLICY_CORPUS_DIR)
    part = corpus_preview(old, new, directory=directory)
    note = CORPUS_MISSING_NOTE.format(path=directory) if part is None else ""
    return Preview(recent=recent, corpus=part, corpus_note=note)
