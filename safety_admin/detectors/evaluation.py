"""Corpus scoring shared by the eval_detectors, scan_corpus and fuzz_policies commands (pure Python)."""

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from safety_admin.detectors.packs import _rule
from safety_admin.detectors.types import Rule, Verdict

CAUGHT = frozenset({"refuse", "review"})


def load_rules_file(path: str) -> list[Rule]:
    """Rules from a YAML or JSON file shaped like a pack (``rules:`` list, optional ``defaults:``)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if isinstance(data, list):
        data = {"rules": data}
    defaults = data.get("defaults") or {}
    return [_rule(Path(path).stem, raw, defaults) for raw in data.get("rules") or ()]


def read_jsonl(path: Path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                item.setdefault("id", f"{path.stem}:{number}")
                yield item


def percentile(values: list[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _rate(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def evaluate(files: Iterable[Path], run: Callable[[str, str], Verdict]) -> dict:
    """Run every item of ``files`` and compute recall, false-positive rates and latency."""
    items = []
    for path in files:
        for item in read_jsonl(path):
            text = item.get("text") if isinstance(item.get("text"), str) else ""
            verdict = run(text, item.get("kind") or "prompt")
            items.append(
                {
                    **item,
                    "file": path.stem,
                    "action": verdict.action,
                    "codes": verdict.reason_codes,
                    "elapsed_us": verdict.elapsed_us,
                }
            )
    harmful = [i for i in items if i.get("label") == "harmful" and i["file"] != "evasion"]
    evasion = [i for i in items if i["file"] == "evasion" or (i.get("label") == "harmful" and i.get("transform"))]
    benign = [i for i in items if i.get("label") == "benign"]

    def recall(group: list[dict]) -> dict:
        caught = sum(1 for i in group if i["action"] in CAUGHT)
        return {"n": len(group), "caught": caught, "recall": _rate(caught, len(group))}

    def by(group: list[dict], key: str) -> dict:
        keys = sorted({str(i.get(key)) for i in group})
        return {k: recall([i for i in group if str(i.get(key)) == k]) for k in keys}

    refused = sum(1 for i in benign if i["action"] == "refuse")
    review = sum(1 for i in benign if i["action"] == "review")
    latency = [i["elapsed_us"] for i in items]
    return {
        "harmful": recall(harmful),
        "harmful_strict": recall([i for i in harmful if not i.get("weak_label")]),
        "harmful_by_code": by(harmful, "category"),
        "code_agreement": _rate(sum(1 for i in harmful if i.get("category") in i["codes"]), len(harmful)),
        "evasion": recall(evasion),
        "evasion_by_transform": by(evasion, "transform"),
        "evasion_by_code": by(evasion, "category"),
        "benign": {
            "n": len(benign),
            "refused": refused,
            "review": review,
            "refused_rate": _rate(refused, len(benign)),
            "review_rate": _rate(review, len(benign)),
        },
        "benign_by_source": {
            s: {
                "n": len(g),
                "refused": sum(i["action"] == "refuse" for i in g),
                "review": sum(i["action"] == "review" for i in g),
            }
            for s in sorted({str(i.get("source")) for i in benign})
            for g in [[i for i in benign if str(i.get("source")) == s]]
        },
        "latency_us": {
            "p50": percentile(latency, 50),
            "p95": percentile(latency, 95),
            "p99": percentile(latency, 99),
            "max": max(latency, default=0),
            "n": len(latency),
        },
        "items": items,
    }


def format_report(report: dict, misses: int = 0) -> str:
    lines = []
    h, s, e, b = report["harmful"], report["harmful_strict"], report["evasion"], report["benign"]
    lines.append(f"harmful caught: {h['caught']}/{h['n']} = {h['recall']} %  (without weak labels: {s['recall']} %)")
    lines.append(f"reason code agreement on harmful: {report['code_agreement']} %")
    lines.append("recall per reason code:")
    for code, r in report["harmful_by_code"].items():
        lines.append(f"  {code:<22} {r['caught']:>4}/{r['n']:<4} {r['recall']:>6} %")
    lines.append(f"obfuscated caught: {e['caught']}/{e['n']} = {e['recall']} %")
    for name, r in report["evasion_by_transform"].items():
        lines.append(f"  {name:<26} {r['caught']:>4}/{r['n']:<4} {r['recall']:>6} %")
    lines.append(
        f"benign refused: {b['refused']}/{b['n']} = {b['refused_rate']} %   "
        f"sent to review: {b['review']}/{b['n']} = {b['review_rate']} %"
    )
    for source, r in report["benign_by_source"].items():
        lines.append(f"  {source:<22} n={r['n']:<4} refused={r['refused']:<3} review={r['review']}")
    lat = report["latency_us"]
    lines.append(
        f"latency (us): p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}  (n={lat['n']})"
    )
    if misses:
        items = report["items"]
        missed = [i for i in items if i.get("label") == "harmful" and i["action"] not in CAUGHT]
        flagged = [i for i in items if i.get("label") == "benign" and i["action"] in CAUGHT]
        lines.append("missed:")
        lines.extend(f"  [{i.get('category')}] {i['text'][:150]!r}" for i in missed[:misses])
        lines.append("benign flagged:")
        lines.extend(f"  [{i['action']} {','.join(i['codes'])}] {i['text'][:150]!r}" for i in flagged[:misses])
    return "\n".join(lines) + "\n"
