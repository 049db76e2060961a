#!/usr/bin/env python3
"""The project's server x app matrix, on the shared driver ../shared/bench/run.py.

This loads run.py as a module (it is not edited and not copied), registers the project's
servers and two project-local apps in its tables, and hands over to its main(): the method
(one server per cell on a free port, readiness and body checks, warm-up, RSS/PSS from /proc,
`wrk -t1 -c64 -dD --latency`, cells shuffled in every round, disturbed runs repeated,
medians) and the output (OUT/meta.json, runs.jsonl, summary.json, summary.md) are run.py's.

Added servers (binaries from this checkout's target/release, built by bench/all.sh):
  wsgi-server        `wsgi-server --workers W module:attr` (Python apps; default --threads 1)
  rust-hello         examples' `serve hello --threads 4 --io-threads W` (Rust app, app pool)
  rust-hello-inline  the same with --inline (Rust app on the I/O threads); both hello only

Added apps (run.py's table holds hello, 64k, echo, flask, django):
  echo-1m     the shared echo app (reads the body, answers its length) with a 1 MiB POST
              (lua/post1m.lua; the shared echo cell posts 4 KiB); hyper-raw serves it too
  django-tpl  apps/djtemplate: a Django view rendering a template (extends, include, for,
              if, filters, autoescape; 2.5 KiB of HTML) - the shared django app renders none;
              its expected body is rendered in-process once and checked byte for byte

Every server gets PYTHONPATH=<shared bench/apps>:<bench/apps> (run.py sets only the first).

Usage: python3 bench/matrix.py [run.py options]   (python3 bench/matrix.py --list)
Environment: SHARED (../shared), WSGI_SERVER_BIN, SERVE_BIN, and run.py's BENCH_VENV,
CARGO_TARGET_DIR (hyper-hello), WRK, BENCH_LOG_DIR.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = Path(os.environ.get("SHARED") or ROOT.parent / "shared").resolve()
WSGI_SERVER_BIN = os.environ.get("WSGI_SERVER_BIN") or str(ROOT / "target/release/wsgi-server")
SERVE_BIN = os.environ.get("SERVE_BIN") or str(ROOT / "target/release/serve")

# What bench/all.sh runs when SERVERS / APPS are not given.
DEFAULT_SERVERS = ("wsgi-server", "gunicorn-sync", "gunicorn-gthread", "uwsgi", "granian", "bjoern",
                   "hyper-raw", "rust-hello", "rust-hello-inline")
DEFAULT_APPS = ("hello", "64k", "flask", "django", "django-tpl", "echo", "echo-1m")


def load_run():
    """../shared/bench/run.py as the module `run` (registered first: its dataclasses need it)."""
    path = SHARED / "bench" / "run.py"
    if not path.exists():
        sys.exit(f"matrix.py: {path} not found (set SHARED to the folder holding bench/run.py)")
    spec = importlib.util.spec_from_file_location("run", path)
    run = importlib.util.module_from_spec(spec)
    sys.modules["run"] = run
    spec.loader.exec_module(run)
    return run


def render_django_tpl(venv):
    """The body djtemplate answers `GET /` with, rendered in-process by the venv's Django."""
    code = ("import sys, wsgiref.util, djtemplate\n"
            "env = {}\nwsgiref.util.setup_testing_defaults(env)\n"
            "sys.stdout.buffer.write(b''.join(djtemplate.application(env, lambda *a: None)))\n")
    env = dict(os.environ, PYTHONPATH=str(HERE / "apps"))
    return subprocess.run([f"{venv}/bin/python", "-c", code], env=env, check=True,
                          capture_output=True, timeout=60).stdout


def register(run, need_template=False):
    pythonpath = f"{run.APPS_DIR}{os.pathsep}{HERE / 'apps'}"
    run.APPS["echo-1m"] = run.App(
        "echo", raw="echo", lua=str(HERE / "lua" / "post1m.lua"),  # run.py joins lua/ with it:
        method="POST", req_body=b"a" * (1 << 20), expect_body=b"1048576\n")  # absolute wins
    run.APPS["django-tpl"] = run.App(
        "djtemplate", attr="application",
        expect_body=render_django_tpl(run.VENV) if need_template else None)
    raw = run.SERVERS["hyper-raw"]
    raw.apps = tuple(raw.apps or ()) + ("echo-1m",)
    run.SERVERS["wsgi-server"] = run.Server(
        WSGI_SERVER_BIN + " --bind {host}:{port} --workers {workers} {module}:{attr}",
        note="this checkout's release build; W worker processes, defaults otherwise "
             "(--threads 1: the app runs inline on one I/O thread per process)")
    serve = SERVE_BIN + " hello --bind {host}:{port} --threads 4 --io-threads {workers}"
    run.SERVERS["rust-hello"] = run.Server(
        serve, workers="I/O threads", apps=("hello",),
        note="examples' Rust hello app on wsgi-server: 4 app threads, W I/O threads")
    run.SERVERS["rust-hello-inline"] = run.Server(
        serve + " --inline", workers="I/O threads", apps=("hello",),
        note="examples' Rust hello app on wsgi-server, inline on W I/O threads")
    for server in run.SERVERS.values():
        server.env = dict(server.env, PYTHONPATH=pythonpath)
    run.DEFAULT_SERVERS = DEFAULT_SERVERS


def main():
    argv = sys.argv[1:]
    if not any(a == "--apps" or a.startswith("--apps=") for a in argv):
        argv = ["--apps", ",".join(DEFAULT_APPS)] + argv
    apps_arg = next((a.split("=", 1)[1] if "=" in a else argv[i + 1]
                     for i, a in enumerate(argv) if a.split("=", 1)[0] == "--apps"), "")
    run = load_run()
    info_only = any(a in ("--list", "--summarize", "-h", "--help") for a in argv)
    register(run, need_template="django-tpl" in apps_arg.split(",") and not info_only)
    sys.argv = [sys.argv[0]] + argv
    run.main()


if __name__ == "__main__":
    main()
