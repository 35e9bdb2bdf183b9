"""`make bench`: run every benchmark in bench/ one after another; each prints its baseline beside it.

Each ``bench/<name>.py`` exposes ``main(argv) -> int``. ``make bench ARGS="detectors audits"`` runs a subset;
``--quick`` is passed through for smaller sizes.
"""

import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("-")]
    wanted = [a for a in argv if not a.startswith("-")]
    names = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in {"run_all", "__init__", "common"})
    names = [n for n in names if not wanted or n in wanted]
    failures = 0
    for index, name in enumerate(names, 1):
        print(f"\n=== [{index}/{len(names)}] bench/{name}.py", flush=True)
        started = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        try:
            code = module.main(flags)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            print(f"!!! bench/{name}.py failed: {type(exc).__name__}: {exc}", flush=True)
            code = 1
        failures += bool(code)
        print(f"=== bench/{name}.py finished in {time.monotonic() - started:.1f} s (exit {code})", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
