"""The built-in demo model used when MODEL_API_URL is unset: deterministic and labelled "demo"."""

import hashlib

DEMO_LABEL = "[demo model]"

_OPENINGS = (
    "Here is a short, general answer.",
    "A brief overview follows.",
    "In short:",
)


def demo_complete(messages: list[dict]) -> str:
    """A deterministic answer that echoes the question's topic; never a real model."""
    user_text = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    digest = int(hashlib.sha256(user_text.encode("utf-8", "surrogatepass")).hexdigest(), 16)
    topic = " ".join(user_text.split()[:12])
    return (
        f"{DEMO_LABEL} {_OPENINGS[digest % len(_OPENINGS)]} You asked about: \u201c{topic}\u201d. "
        "This answer comes from Safety Admin's built-in demo model; set MODEL_API_URL to use a real one."
    )
