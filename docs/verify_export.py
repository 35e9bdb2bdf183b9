#!/usr/bin/env python3
"""Verify a Safety Admin audit export (``manage.py export_audit``) without the Safety Admin code.

    python verify_export.py export.jsonl [--public-key HEX]

Needs Python 3.11+ and the ``cryptography`` package. Checks that every event's hash matches its fields,
that the events link to one another without gaps, and that every checkpoint is signed by a trusted key and
matches the event hash at its sequence number, and that the last exported event is covered by a checkpoint.
Pass ``--public-key`` with the key you obtained from the operator out of band; otherwise the key listed in
the export itself is used (which only proves the export is self-consistent). Exit status 0 means verified.
"""

import argparse
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VERSION = "safety-audit-v1"
FIELDS = ("seq", "prev_hash", "ticket_id", "created_at", "actor_id", "actor_label", "action", "subject_type",
          "subject_id", "subject_repr", "request_id", "trace_id", "principal_pseudonym", "data")  # fmt: skip


def event_hash(event: dict) -> str:
    """SHA-256 over 'safety-audit-v1' and each field as '<length>:<value>', one per line (data as canonical JSON)."""
    parts = [VERSION]
    for name in FIELDS:
        value = event[name]
        if name == "data":
            value = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        text = "" if value is None else str(value)
        parts.append(f"{len(text)}:{text}")
    return hashlib.sha256(("\n".join(parts) + "\n").encode()).hexdigest()


def checkpoint_valid(cp: dict, public_key: str) -> bool:
    message = f"safety-audit-checkpoint-v1\n{cp['seq']}\n{cp['head_hash']}\n{cp['created_at']}\n".encode()
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(bytes.fromhex(cp["signature"]), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(lines, pinned_key: str | None = None) -> tuple[bool, str]:
    records = [json.loads(line) for line in lines if line.strip()]
    if not records or records[0].get("type") != "header":
        return False, "not an audit export (no header line)"
    header = records[0]
    trusted = {pinned_key.lower()} if pinned_key else set(header["public_keys"])
    events = [r for r in records if r["type"] == "event"]
    checkpoints = [r for r in records if r["type"] == "checkpoint"]
    hashes = {}
    previous = None
    for event in events:
        seq = event["seq"]
        if previous is not None and seq != previous["seq"] + 1:
            return False, f"seq {previous['seq'] + 1}: event missing"
        if previous is not None and event["prev_hash"] != previous["hash"]:
            return False, f"seq {seq}: does not link to the previous event"
        if event_hash(event) != event["hash"]:
            return False, f"seq {seq}: hash does not match the event's fields"
        hashes[seq] = event["hash"]
        previous = event
    covered = 0
    for cp in checkpoints:
        if cp["public_key"].lower() not in trusted:
            return False, f"checkpoint {cp['seq']}: signed by an untrusted key"
        if not checkpoint_valid(cp, cp["public_key"]):
            return False, f"checkpoint {cp['seq']}: bad signature"
        if hashes.get(cp["seq"]) != cp["head_hash"]:
            return False, f"checkpoint {cp['seq']}: does not match the exported events"
        covered = max(covered, cp["seq"])
    last = header.get("last_seq")
    if last is not None and covered < last:
        return False, f"seq {last}: not covered by a signed checkpoint"
    return True, f"verified {sum(e['in_range'] for e in events)} events and {len(checkpoints)} checkpoints"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("--public-key", help="trusted Ed25519 public key, hex")
    args = parser.parse_args(argv)
    with open(args.export, encoding="utf-8") as handle:
        ok, message = verify(handle, args.public_key)
    print(("OK: " if ok else "FAILED: ") + message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
