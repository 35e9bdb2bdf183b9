"""`make bench`: run every benchmark in bench/ one after another; each prints its baseline beside it.

Each ``bench/<name>.py`` exposes ``main(argv) -> int``. ``make bench ARGS="detectors audits"`` runs a subset;
``--quick`` is passed through for smaller sizes. Each benchmark runs in a process of its own: one that set Django
up on its database leaves threads behind (the policy listener follows that database), and the processes a later
one starts must run the same code as its own process (the compiled-policy fingerprint is taken at start-up).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


_RUN_ONE = """
import importlib, sys
sys.path.insert(0, ".")
sys.exit(importlib.import_module(f"bench.{sys.argv[1]}").main(sys.argv[2:]))
"""


def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("-")]
    wanted = [a for a in argv if not a.startswith("-")]
    names = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in {"run_all", "__init__", "common"})
    names = [n for n in names if not wanted or n in wanted]
    failures = 0
    # The figures, not the benchmark process's own INFO lines (its children already log at WARNING).
    env = {**os.environ, "SAFETY_LOG_LEVEL": os.environ.get("SAFETY_LOG_LEVEL", "WARNING")}
    for index, name in enumerate(names, 1):
        print(f"\n=== [{index}/{len(names)}] bench/{name}.py", flush=True)
        started = time.monotonic()
        # One broken benchmark must not hide the others' figures: a failure is counted, the next one runs.
        code = subprocess.run(
            [sys.executable, "-c", _RUN_ONE, name, *flags], cwd=HERE.parent, env=env, check=False
        ).returncode
        if code:
            print(f"!!! bench/{name}.py failed (exit {code})", flush=True)
        failures += bool(code)
        print(f"=== bench/{name}.py finished in {time.monotonic() - started:.1f} s (exit {code})", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
