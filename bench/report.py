#!/usr/bin/env python3
"""Write docs/benchmarks.md and docs/benchmarks.svg from bench/all.sh's results (stdlib only).

  python3 bench/report.py [RESULTS_DIR ...]      (default: bench/results/latest)
  python3 bench/report.py --save-env DIR --command 'bash bench/all.sh'   (all.sh, before measuring)
  python3 bench/report.py --finish-env DIR                               (all.sh, after measuring)

A results folder (bench/all.sh's RESULTS) holds env.json (machine, versions, command, times),
matrix/ (../shared/bench/run.py's meta.json, runs.jsonl, summary.json) and static/
(bench/apps/static_bench.py's runs.jsonl, checks.json). A folder written by run.py or
static_bench.py alone (python.sh, rust-hello.sh, static.sh with their own OUT) works too; with
several folders, a later one's cells replace an earlier one's; machine and versions come from the
last env.json, and every folder's date and command are listed.

Output: one Markdown table per app (median req/s, min..max over the rounds, median p50/p99
latency, median RSS, ratio to wsgi-server), the Rust hello vs bare hyper and the static/gzip
sections, the project's performance targets with PASS/FAIL computed from the medians, and a
handwritten SVG grouped bar chart (median req/s, log scale, min..max whiskers, W=1 and W=2).
"""

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = Path(os.environ.get("SHARED") or ROOT.parent / "shared").resolve()

APP_ORDER = ["hello", "64k", "flask", "django", "django-tpl", "echo", "echo-1m"]
APP_TITLES = {
    "hello": "hello: plain WSGI, 14-byte text/plain body",
    "64k": "64k: plain WSGI, one 64 KiB body",
    "flask": "flask: Flask JSON route (jsonify)",
    "django": "django: Django view returning a constant HttpResponse (CommonMiddleware)",
    "django-tpl": "django-tpl: Django view rendering a template (TechEmpower's fortunes shape, 1.5 KiB of "
                  "HTML; bench/apps/djtemplate)",
    "echo": "echo: POST 4 KiB, the app reads wsgi.input and answers the length",
    "echo-1m": "echo-1m: POST 1 MiB to the same echo app (bench/lua/post1m.lua)",
}
SERVER_ORDER = ["wsgi-server", "bjoern", "granian", "uwsgi", "gunicorn-gthread", "gunicorn-sync",
                "hyper-raw", "rust-hello-inline", "rust-hello"]
SERVER_NOTES = {
    "wsgi-server": "this checkout's release build, `--workers W`, defaults otherwise (`--threads 1`: "
                   "the app runs inline on the I/O thread)",
    "bjoern": "pre-fork on one SO_REUSEPORT socket (../shared/bench/servers/bjoern_run.py)",
    "granian": "`--interface wsgi --http 1 --no-ws --workers W`, defaults otherwise",
    "uwsgi": "`--http` (uWSGI's HTTP router process in front of the workers) `--http-keepalive "
             "--master --processes W`",
    "gunicorn-gthread": "`--worker-class gthread --threads 4 --workers W`",
    "gunicorn-sync": "`--worker-class sync --workers W` (one request at a time per process, no keep-alive)",
    "hyper-raw": "../shared/bench/hyper-hello: hyper 1.x + tokio, no Python at all, W tokio threads; "
                 "the ceiling (it serves hello, 64k, echo and echo-1m)",
    "rust-hello-inline": "the examples' Rust hello app on wsgi-server (`serve hello --inline "
                         "--io-threads W`): the app runs on the I/O threads",
    "rust-hello": "the same app on wsgi-server's app-thread pool (`serve hello --threads 4 --io-threads W`)",
}
COLORS = {
    "wsgi-server": "#c8102e", "bjoern": "#1f77b4", "granian": "#8e44ad", "uwsgi": "#17a589",
    "gunicorn-gthread": "#a6acaf", "gunicorn-sync": "#5d6d7e", "hyper-raw": "#1b2631",
    "rust-hello-inline": "#f39c12", "rust-hello": "#f8c471",
}
# the static cell's servers, drawn in the colour of the server they run on
STATIC_AS = {"wsgi-server --static-map": "wsgi-server", "gunicorn + WhiteNoise": "gunicorn-sync",
             "uwsgi --static-map": "uwsgi", "granian --static-path-mount": "granian"}
LEGEND = {
    "wsgi-server": "wsgi-server (static: --static-map)",
    "gunicorn-sync": "gunicorn-sync (static: + WhiteNoise)",
    "uwsgi": "uwsgi (static: --static-map)",
    "granian": "granian (static: --static-path-mount)",
    "hyper-raw": "hyper-raw (no Python)",
    "rust-hello-inline": "wsgi-server, Rust app, inline",
    "rust-hello": "wsgi-server, Rust app, 4 app threads",
}


# --------------------------------------------------------------------------------------------
# Environment: machine and versions, recorded by bench/all.sh before it measures
# --------------------------------------------------------------------------------------------
def _out(argv, **kw):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw)
        return (p.stdout or p.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def collect_env(command=None):
    venv = os.environ.get("BENCH_VENV", "/tmp/venv-anchors")
    env = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": command}
    env["ncpu"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        meminfo = Path("/proc/meminfo").read_text()
        env["mem_gib"] = round(int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1)) / 1024 ** 2, 1)
    except (OSError, AttributeError):
        env["mem_gib"] = None
    env["kernel"] = f"{os.uname().sysname} {os.uname().release} {os.uname().machine}"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        env["cpu"] = m.group(1).strip() if m else ""
    except OSError:
        env["cpu"] = ""
    git = ["git", "-C", str(ROOT)]
    env["git_rev"] = _out(git + ["rev-parse", "--short=12", "HEAD"])
    env["git_date"] = _out(git + ["log", "-1", "--format=%cd", "--date=format:%Y-%m-%d %H:%M"])
    dirty = _out(git + ["status", "--porcelain", "--untracked-files=no", "--", ".",
                        ":(exclude)bench", ":(exclude)docs"])
    env["git_dirty"] = len(dirty.splitlines()) if dirty else 0
    env["rustc"] = _out(["rustc", "-V"])
    wrk = _out([os.environ.get("WRK", "wrk"), "--version"])
    m = re.search(r"wrk (\S+)", wrk)
    env["wrk"] = m.group(1) if m else wrk.splitlines()[0] if wrk else ""
    env["python"] = _out([f"{venv}/bin/python", "-c", "import platform; print(platform.python_version())"])
    code = ("import importlib.metadata as m, json\nout = {}\n"
            "for p in ('gunicorn', 'granian', 'uWSGI', 'bjoern', 'Flask', 'Django', 'whitenoise'):\n"
            "    try: out[p] = m.version(p)\n    except Exception: out[p] = None\nprint(json.dumps(out))")
    try:
        env["packages"] = json.loads(_out([f"{venv}/bin/python", "-c", code]) or "{}")
    except ValueError:
        env["packages"] = {}
    try:
        lock = (SHARED / "bench/hyper-hello/Cargo.lock").read_text()
        env["hyper"] = re.search(r'name = "hyper"\nversion = "([^"]+)"', lock).group(1)
    except (OSError, AttributeError):
        env["hyper"] = None
    return env


# --------------------------------------------------------------------------------------------
# Loading results
# --------------------------------------------------------------------------------------------
def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def matrix_rows(d):
    """run.py's summary rows of results folder d (recomputed from runs.jsonl if missing)."""
    if (d / "summary.json").exists():
        return json.loads((d / "summary.json").read_text())
    sys.path.insert(0, str(HERE))
    import matrix  # noqa: E402 - ../shared/bench/run.py's own summary of an interrupted run
    run = matrix.load_run()
    return run.summarize([r for r in read_jsonl(d / "runs.jsonl") if "app" in r])


def static_rows(d):
    """Medians per (cell, server) of static_bench.py's runs (the kept attempt of each round)."""
    kept = {}
    for r in read_jsonl(d / "runs.jsonl"):
        kept[(r["cell"], r["server"], r["round"])] = r  # the last attempt is the one used
    groups = {}
    for r in kept.values():
        groups.setdefault((r["cell"], r["server"]), []).append(r)
    rows = {}
    for (cell, server), rs in groups.items():
        rps = [r["rps"] for r in rs if r.get("rps")]
        rows[(cell, server)] = dict(
            cell=cell, server=server, runs=len(rs), rps=med(rps), rps_min=min(rps, default=None),
            rps_max=max(rps, default=None), p50_ms=med([r.get("p50_ms") for r in rs]),
            p99_ms=med([r.get("p99_ms") for r in rs]),
            rss_mib=med([r["rss_kib"] / 1024 for r in rs if r.get("rss_kib")]),
            errors=sum(r.get("non2xx", 0) + sum(r.get("socket_errors", [])) for r in rs),
            disturbed=sum(1 for r in rs if r.get("disturbed")),
            rounds={r["round"]: r for r in rs})
    return rows


def load(dirs):
    data = {"env": None, "envs": [], "matrix": {}, "matrix_meta": None, "commands": {}, "static": {},
            "static_checks": None, "static_args": None, "sources": []}
    for top in dirs:
        top = Path(top)
        if not top.exists():
            sys.exit(f"report.py: {top} does not exist")
        data["sources"].append(top)
        if (top / "env.json").exists():
            data["env"] = json.loads((top / "env.json").read_text())
            data["envs"].append(data["env"])
        for d in [top] + sorted(p for p in top.iterdir() if p.is_dir()):
            if not (d / "runs.jsonl").exists():
                continue
            first = next(iter(read_jsonl(d / "runs.jsonl")), {})
            if "cell" in first:
                data["static"].update(static_rows(d))
                if (d / "checks.json").exists():
                    data["static_checks"] = json.loads((d / "checks.json").read_text())
                data["static_args"] = {"rounds": max(r["round"] for r in read_jsonl(d / "runs.jsonl"))}
            elif "app" in first:
                for row in matrix_rows(d):
                    data["matrix"][(row["server"], row["app"], row["workers"], row["conns"])] = row
                if (d / "meta.json").exists():
                    data["matrix_meta"] = json.loads((d / "meta.json").read_text())
                for r in read_jsonl(d / "runs.jsonl"):
                    if r.get("cmd"):
                        data["commands"][(r["server"], r["app"], r["workers"])] = r["cmd"]
    return data


def portable_cmd(cmd):
    """A recorded command without this machine's paths and ports (run.py already cut the
    shared folder's prefix off its own paths: bench/servers/... is ../shared/bench/servers/...)."""
    cmd = cmd.replace(str(ROOT) + "/", "").replace(str(SHARED) + "/", "../shared/")
    cmd = cmd.replace(" bench/servers/", " ../shared/bench/servers/")
    venv = os.environ.get("BENCH_VENV", "/tmp/venv-anchors")
    cmd = cmd.replace(venv + "/", "$BENCH_VENV/").replace(venv + " ", "$BENCH_VENV ")
    cmd = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", cmd)
    return re.sub(r"--port \d+", "--port PORT", cmd)


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------
def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def f_num(v, spec=",.0f"):
    return "-" if v is None else format(v, spec)


def f_ratio(a, b):
    return "-" if not a or not b else f"{a / b:.2f}x"


def rps_of(data, server, app, w, conns):
    row = data["matrix"].get((server, app, w, conns))
    return row["rps"] if row and row.get("rps") else None


def targets(data, conns):
    """[(target text, measured text, PASS/FAIL/n/a)] from the medians."""
    out = []
    ws = sorted({k[2] for k in data["matrix"]})

    def ratio_target(app, ours, theirs, need, label):
        for w in ws:
            a, b = rps_of(data, ours, app, w, conns), rps_of(data, theirs, app, w, conns)
            if a is None and b is None:
                continue
            text = f"{label}, W={w}: {ours} / {theirs} >= {need}x"
            if a and b:
                out.append((text, f"{a / b:.2f}x ({a:,.0f} vs {b:,.0f} req/s)",
                            "PASS" if a / b >= need else "FAIL"))
            else:
                out.append((text, "not measured", "n/a"))

    ratio_target("hello", "wsgi-server", "bjoern", 0.8, "Python hello")
    ratio_target("hello", "wsgi-server", "granian", 1.5, "Python hello")
    for app, label in (("flask", "Flask"), ("django", "Django"), ("django-tpl", "Django template")):
        ratio_target(app, "wsgi-server", "bjoern", 0.95, label)
        ratio_target(app, "wsgi-server", "granian", 1.3, label)
    ratio_target("hello", "rust-hello-inline", "hyper-raw", 0.9, "Rust hello (inline)")
    ratio_target("hello", "rust-hello", "hyper-raw", 0.9, "Rust hello (app-thread pool)")
    st = data["static"]
    for kind in ("css", "js"):
        a, b = st.get((f"static-{kind}", "wsgi-server --static-map")), st.get((f"static-{kind}", "gunicorn + WhiteNoise"))
        if a and b and a["rps"] and b["rps"]:
            out.append((f"static {kind}: wsgi-server --static-map / Gunicorn + WhiteNoise >= 5x",
                        f"{a['rps'] / b['rps']:.2f}x ({a['rps']:,.0f} vs {b['rps']:,.0f} req/s)",
                        "PASS" if a["rps"] / b["rps"] >= 5 else "FAIL"))
    a, b = st.get(("json-c1", "wsgi-server")), st.get(("json-c1", "wsgi-server --compress"))
    if a and b and a["p50_ms"] is not None and b["p50_ms"] is not None:
        added = b["p50_ms"] - a["p50_ms"]
        pairs = [b["rounds"][r]["p50_ms"] - a["rounds"][r]["p50_ms"] for r in a["rounds"] if r in b["rounds"]]
        out.append(("gzip (--compress) of a 100 KiB JSON response adds < 1 ms (p50, one connection)",
                    f"{added:+.3f} ms ({a['p50_ms']:.3f} -> {b['p50_ms']:.3f} ms; per-round paired median "
                    f"{statistics.median(pairs):+.3f} ms)", "PASS" if added < 1 else "FAIL"))
    return out


def env_lines(env, data):
    if not env:
        return ["Machine and versions were not recorded (no env.json in the results)."]
    p = env.get("packages") or {}
    pv = lambda k: p.get(k) or "?"  # noqa: E731
    rev = env.get("git_rev") or "?"
    if env.get("git_dirty"):
        rev += f" plus uncommitted changes in {env['git_dirty']} file(s)"
    took = ""
    if env.get("finished_epoch") and env.get("started_epoch"):
        took = f" (the runs took {(env['finished_epoch'] - env['started_epoch']) / 60:.0f} min)"
    return [
        f"Measured {env.get('started', '?')}{took}.",
        "",
        f"- Machine: {env.get('ncpu')} vCPU ({env.get('cpu') or 'CPU model unknown'}), "
        f"{env.get('mem_gib')} GiB RAM, {env.get('kernel')}; wrk and the servers share the machine "
        "and talk over loopback.",
        f"- Versions: wsgi-server {rev} (commit of {env.get('git_date') or '?'}), {env.get('rustc') or 'rustc ?'}; "
        f"Python {env.get('python') or '?'}; Gunicorn {pv('gunicorn')}, Granian {pv('granian')}, "
        f"uWSGI {pv('uWSGI')}, bjoern {pv('bjoern')}, Flask {pv('Flask')}, Django {pv('Django')}, "
        f"WhiteNoise {pv('whitenoise')}; hyper {env.get('hyper') or '?'} (hyper-raw); wrk {env.get('wrk') or '?'}.",
        f"- Command: `{env.get('command') or 'bash bench/all.sh'}`",
    ] + runs_lines(data)


def runs_lines(data):
    """With several runs, each one's date and command (a later run's cells replace an earlier's)."""
    envs = data.get("envs") or []
    if len(envs) < 2:
        return []
    lines = ["- Runs merged into these tables (a cell measured by a later run replaces the earlier "
             "one's; every cell's rounds come from one run):"]
    for i, e in enumerate(envs, 1):
        lines.append(f"  {i}. {e.get('started', '?')}, wsgi-server {e.get('git_rev') or '?'}: "
                     f"`{e.get('command') or 'bash bench/all.sh'}`")
    return lines


def app_table(data, app, w_list, conns, ref="wsgi-server", servers=None):
    lines = [f"| W | server | req/s (median) | min..max | p50 ms | p99 ms | RSS MiB | vs {ref} | runs | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    order = {s: i for i, s in enumerate(SERVER_ORDER)}
    for w in w_list:
        rows = [r for (s, a, ww, c), r in data["matrix"].items()
                if a == app and ww == w and c == conns
                and (s in servers if servers is not None else not s.startswith("rust-hello"))]
        rows.sort(key=lambda r: (-(r.get("rps") or 0), order.get(r["server"], 99)))
        base = rps_of(data, ref, app, w, conns)
        for r in rows:
            name = f"**{r['server']}**" if r["server"] == ref else r["server"]
            err = str(r.get("errors", 0))
            if r.get("failures"):
                err += f" ({len(r['failures'])} failed: {escape(r['failures'][0][:60])})"
            runs = f"{r.get('ok', '?')}/{r.get('runs', '?')}{'*' if r.get('disturbed_used') else ''}"
            lines.append(
                f"| {w} | {name} | {f_num(r.get('rps'))} | {f_num(r.get('rps_min'))}..{f_num(r.get('rps_max'))} "
                f"| {f_num(r.get('p50_ms'), '.2f')} | {f_num(r.get('p99_ms'), '.2f')} "
                f"| {f_num(r.get('rss_mib'), '.1f')} | {f_ratio(r.get('rps'), base)} | {runs} | {err} |")
    return lines


def markdown(data, svg_name, sources):
    env = data["env"] or {}
    meta = (data["matrix_meta"] or {}).get("args", {})
    conns_all = sorted({k[3] for k in data["matrix"]}) or [64]
    conns = 64 if 64 in conns_all else conns_all[0]
    w_list = sorted({k[2] for k in data["matrix"] if k[3] == conns})
    apps = [a for a in APP_ORDER if any(k[1] == a for k in data["matrix"])]
    apps += sorted({k[1] for k in data["matrix"]} - set(apps))
    L = ["# Benchmarks", "",
         f"<!-- Written by bench/report.py from {', '.join(portable_cmd(str(s)) for s in sources)}; "
         "regenerate with `bash bench/all.sh` (see bench/README.md) instead of editing. -->", ""]
    L += env_lines(env, data)
    if meta:
        L += [f"- Method: ../shared/bench/run.py through bench/matrix.py: every cell starts its server on a free "
              f"port, checks two responses, warms up {meta.get('warmup')} s, reads RSS from /proc, then runs "
              f"`wrk -t1 -c{conns} -d{meta.get('duration')}s --latency`; {plural(meta.get('rounds'), 'round')}, the "
              "cells shuffled in each; a run disturbed by other load on the machine is repeated. Tables show the "
              "median over the rounds (min..max of req/s beside it), RSS summed over the server's "
              "processes. W is worker processes (tokio or I/O threads for hyper-raw and the Rust app)."]
    L += ["", "## Targets", "",
          "The targets the issues set, computed from the medians below:", "",
          "| target | measured | result |", "|---|---|---|"]
    tg = targets(data, conns)
    for text, measured, verdict in tg:
        L.append(f"| {text} | {measured} | **{verdict}** |")
    if not tg:
        L.append("| (no cell measured) | - | n/a |")
    npass = sum(1 for t in tg if t[2] == "PASS")
    nfail = sum(1 for t in tg if t[2] == "FAIL")
    L += ["", f"{npass} PASS, {nfail} FAIL." + (" A ratio near its target can change sides between runs: "
                                                 "see the min..max columns." if tg else ""), ""]
    L += [f"![Median requests/s per app and server, W=1 and W=2 (log scale)]({svg_name})", ""]
    for app in apps:
        L += [f"## {APP_TITLES.get(app, app)}", ""]
        L += app_table(data, app, w_list, conns)
        L.append("")
    rust = [s for s in ("rust-hello-inline", "rust-hello") if any(k[0] == s for k in data["matrix"])]
    if rust:
        L += ["## Rust hello app vs a bare hyper server", "",
              "The examples' Rust hello app (no Python) on wsgi-server against ../shared/bench's hyper-hello "
              "(hyper 1.x + tokio, the same 14-byte answer); W is I/O threads for wsgi-server and tokio "
              "worker threads for hyper-raw. Same runs as the hello table's hyper-raw rows.", ""]
        L += app_table(data, "hello", w_list, conns, ref="hyper-raw", servers=set(rust) | {"hyper-raw"})
        L.append("")
    if data["static"]:
        L += static_section(data)
    L += ["## Servers", ""]
    seen = sorted({k[0] for k in data["matrix"]}, key=lambda s: SERVER_ORDER.index(s) if s in SERVER_ORDER else 99)
    for s in seen:
        cmd = data["commands"].get((s, "hello", 1)) or next(
            (c for (ss, _, _), c in sorted(data["commands"].items()) if ss == s), "")
        L.append(f"- **{s}**: {SERVER_NOTES.get(s, '')}" + (f"; e.g. `{portable_cmd(cmd)}`" if cmd else ""))
    L += ["", "Raw results: runs.jsonl / summary.json of every cell in the results folder named above "
          "(bench/results/ is not committed)."]
    return "\n".join(L) + "\n"


def static_section(data):
    st = data["static"]
    checks = data["static_checks"] or {}
    enc = checks.get("encoding", {})
    rounds = (data["static_args"] or {}).get("rounds")
    L = ["## Static files and gzip", "",
         "bench/static.sh (its own runner, bench/apps/static_bench.py, with the same method: the shared "
         "driver requests only `/` of its own apps). Django's collected static files (hashed names, "
         "WhiteNoise's .gz siblings), one worker each, `wrk -t1 -c64 -H 'Accept-Encoding: gzip'`, "
         f"{plural(rounds, 'shuffled round')}, medians; all servers run side by side for the whole cell, RSS "
         "after each run. uWSGI (behind its --http router, as in the matrix: compare its 64k row) and Granian "
         "serve the files with their own static options, for context (they do not send Django's long-cache "
         "headers; Granian ignores the .gz siblings)." + (" Files: " + ", ".join(
            f"{k} `{u}` ({'10 KiB' if k == 'css' else '100 KiB'})" for k, u in checks.get("urls", {}).items()) + "."
            if checks.get("urls") else ""), "",
         "| file | server | req/s (median) | min..max | p50 ms | p99 ms | RSS MiB | vs WhiteNoise | sent | errors |",
         "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for kind in ("css", "js"):
        cell = f"static-{kind}"
        rows = sorted((r for (c, _), r in st.items() if c == cell), key=lambda r: -(r["rps"] or 0))
        base = st.get((cell, "gunicorn + WhiteNoise"), {}).get("rps")
        for r in rows:
            name = f"**{r['server']}**" if r["server"] == "wsgi-server --static-map" else r["server"]
            L.append(f"| {kind} | {name} | {f_num(r['rps'])} | {f_num(r['rps_min'])}..{f_num(r['rps_max'])} "
                     f"| {f_num(r['p50_ms'], '.2f')} | {f_num(r['p99_ms'], '.2f')} | {f_num(r['rss_mib'], '.1f')} "
                     f"| {f_ratio(r['rps'], base)} | {enc.get(r['server'] + ' ' + kind, '')} | {r['errors']} |")
    json_rows = [r for (c, _), r in st.items() if c.startswith("json-")]
    if json_rows:
        L += ["", "What `--compress` costs on a 100 KiB JSON response from Django "
              f"({enc.get('json --compress', 'gzip')}): json-c1 is one connection (the latency of one "
              "request), json-c64 the throughput at -c64.", "",
              "| cell | server | req/s (median) | min..max | p50 ms | p99 ms | RSS MiB | errors |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
        for r in sorted(json_rows, key=lambda r: (int(r["cell"][6:]), r["server"])):
            L.append(f"| {r['cell']} | {r['server']} | {f_num(r['rps'])} | {f_num(r['rps_min'])}..{f_num(r['rps_max'])} "
                     f"| {f_num(r['p50_ms'], '.3f')} | {f_num(r['p99_ms'], '.3f')} | {f_num(r['rss_mib'], '.1f')} "
                     f"| {r['errors']} |")
    L.append("")
    return L


# --------------------------------------------------------------------------------------------
# SVG: grouped bars, one panel per W, log scale
# --------------------------------------------------------------------------------------------
def short(v):
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def nice_above(v):
    """The smallest 1, 2 or 5 x 10^k at or above v."""
    k = math.floor(math.log10(v))
    return next(m * 10 ** k for m in (1, 2, 5, 10) if m * 10 ** k >= v * 0.9999)


def nice_below(v):
    """The largest 1, 2 or 5 x 10^k at or below v."""
    k = math.floor(math.log10(v))
    return next(m * 10 ** k for m in (5, 2, 1) if m * 10 ** k <= v * 1.0001)


def tick(v):
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{unit}"
    return f"{v:g}"


def chart_groups(data, w, conns):
    """[(label, [(series, rps, min, max)])] for panel W=w."""
    groups = []
    order = {s: i for i, s in enumerate(SERVER_ORDER)}
    apps = [a for a in APP_ORDER if any(k[1] == a for k in data["matrix"])]
    apps += sorted({k[1] for k in data["matrix"]} - set(apps))
    for app in apps:
        bars = [(s, r["rps"], r.get("rps_min"), r.get("rps_max"))
                for (s, a, ww, c), r in data["matrix"].items()
                if a == app and ww == w and c == conns and r.get("rps") and not s.startswith("rust-hello")]
        bars.sort(key=lambda b: order.get(b[0], 99))
        if bars:
            groups.append((app, bars))
    rust = [(s, r["rps"], r.get("rps_min"), r.get("rps_max"))
            for (s, a, ww, c), r in data["matrix"].items()
            if a == "hello" and ww == w and c == conns and r.get("rps")
            and s in ("rust-hello-inline", "rust-hello", "hyper-raw")]
    if any(b[0] != "hyper-raw" for b in rust):
        rust.sort(key=lambda b: order.get(b[0], 99))
        groups.append(("Rust hello", rust))
    if w == 1:
        for kind in ("css", "js"):
            bars = [(STATIC_AS.get(r["server"], r["server"]), r["rps"], r["rps_min"], r["rps_max"])
                    for (c, _), r in data["static"].items() if c == f"static-{kind}" and r["rps"]]
            bars.sort(key=lambda b: order.get(b[0], 99))
            if bars:
                groups.append((f"static {kind}", bars))
    return groups


def svg(data, title):
    conns_all = sorted({k[3] for k in data["matrix"]}) or [64]
    conns = 64 if 64 in conns_all else conns_all[0]
    ws = sorted({k[2] for k in data["matrix"] if k[3] == conns}) or ([1] if data["static"] else [])
    panels = [(w, chart_groups(data, w, conns)) for w in ws]
    panels = [(w, g) for w, g in panels if g]
    bw, gap, pad_l, pad_r = 15, 22, 64, 16
    values = [v for _, g in panels for _, bars in g for b in bars for v in (b[1], b[3]) if v]
    if not values:
        values = [1.0]
    lo, hi = nice_below(min(values) * 0.8), nice_above(max(values) * 1.8)  # room for the labels
    ph, top_title, legend_h, panel_gap, label_h = 300, 56, 0, 36, 40
    series = [s for s in SERVER_ORDER if any(b[0] == s for _, g in panels for _, bars in g for b in bars)]
    series += sorted({b[0] for _, g in panels for _, bars in g for b in bars} - set(series))
    def group_w(label, bars):
        return max(len(bars) * bw, 7.2 * len(label) + 4)

    widths = [sum(group_w(label, bars) + gap for label, bars in g) + gap for _, g in panels]
    width = max([pad_l + w_ + pad_r for w_ in widths] + [760])
    # legend: rows of entries that fit the width
    leg_rows, row, x = [], [], pad_l
    for s in series:
        label = LEGEND.get(s, s) if data["static"] or "static" not in LEGEND.get(s, "") else s
        wlab = 22 + 6.6 * len(label) + 18
        if row and x + wlab > width - pad_r:
            leg_rows.append(row)
            row, x = [], pad_l
        row.append((s, label, x))
        x += wlab
    if row:
        leg_rows.append(row)
    legend_h = 20 * len(leg_rows) + 8
    height = top_title + legend_h + len(panels) * (ph + label_h + panel_gap) + 24

    def y_of(v, y0):
        return y0 + ph - ph * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">',
         f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
         f'<text x="{pad_l}" y="24" font-size="16" font-weight="bold">{escape(title[0])}</text>',
         f'<text x="{pad_l}" y="44" font-size="12" fill="#444">{escape(title[1])}</text>']
    for i, row in enumerate(leg_rows):
        yy = top_title + 6 + 20 * i
        for s, label, x in row:
            o.append(f'<rect x="{x:.0f}" y="{yy}" width="14" height="12" fill="{COLORS.get(s, "#999")}"/>')
            o.append(f'<text x="{x + 20:.0f}" y="{yy + 11}" font-size="12">{escape(label)}</text>')
    y0 = top_title + legend_h + 20
    for (w, groups), pw in zip(panels, widths):
        o.append(f'<text x="{pad_l}" y="{y0 - 8}" font-size="13" font-weight="bold">W = {w}'
                 f'{" (static: one worker)" if w == 1 and data["static"] else ""}</text>')
        # grid and y labels
        k = math.floor(math.log10(lo))
        while 10 ** k <= hi * 1.0001:
            for m in (1, 2, 5):
                v = m * 10 ** k
                if v < lo or v > hi * 1.0001:
                    continue
                yy = y_of(v, y0)
                major = m == 1
                o.append(f'<line x1="{pad_l}" x2="{pad_l + pw}" y1="{yy:.1f}" y2="{yy:.1f}" '
                         f'stroke="{"#bbb" if major else "#e5e5e5"}" stroke-width="1"/>')
                o.append(f'<text x="{pad_l - 6}" y="{yy + 4:.1f}" font-size="{11 if major else 9}" '
                         f'text-anchor="end" fill="{"#222" if major else "#777"}">{tick(v)}</text>')
            k += 1
        o.append(f'<text x="16" y="{y0 + ph / 2:.0f}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 16 {y0 + ph / 2:.0f})">requests/s (log)</text>')
        o.append(f'<line x1="{pad_l}" x2="{pad_l}" y1="{y0}" y2="{y0 + ph}" stroke="#333"/>')
        o.append(f'<line x1="{pad_l}" x2="{pad_l + pw}" y1="{y0 + ph}" y2="{y0 + ph}" stroke="#333"/>')
        x = pad_l + gap
        for label, bars in groups:
            gx = x + (group_w(label, bars) - len(bars) * bw) / 2
            x = gx
            for s, v, vmin, vmax in bars:
                yy = y_of(v, y0)
                color = COLORS.get(s, "#999")
                o.append(f'<rect x="{x}" y="{yy:.1f}" width="{bw - 2}" height="{y0 + ph - yy:.1f}" fill="{color}">'
                         f'<title>{escape(f"{label}, W={w}: {s} {v:,.0f} req/s")}</title></rect>')
                if vmin and vmax and vmax > vmin:
                    cx = x + (bw - 2) / 2
                    y1, y2 = y_of(vmin, y0), y_of(vmax, y0)
                    o.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" stroke="#000" '
                             f'stroke-width="1" opacity="0.6"/>')
                    top = y2
                else:
                    top = yy
                tx, ty = x + (bw - 2) / 2 + 3.5, top - 4
                o.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="10" transform="rotate(-90 {tx:.1f} {ty:.1f})"'
                         f' fill="#222">{short(v)}</text>')
                x += bw
            o.append(f'<text x="{(gx + x - 2) / 2:.1f}" y="{y0 + ph + 16}" font-size="12" text-anchor="middle">'
                     f'{escape(label)}</text>')
            x = gx - (group_w(label, bars) - len(bars) * bw) / 2 + group_w(label, bars) + gap
        y0 += ph + label_h + panel_gap
    o.append(f'<text x="{pad_l}" y="{height - 8}" font-size="10" fill="#555">Bars: median over the rounds; '
             'whiskers: min..max. Generated by bench/report.py.</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


# --------------------------------------------------------------------------------------------
def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="*", help="results folders (default bench/results/latest)")
    p.add_argument("--md", default=str(ROOT / "docs/benchmarks.md"))
    p.add_argument("--svg", default=str(ROOT / "docs/benchmarks.svg"))
    p.add_argument("--save-env", metavar="DIR", help="record machine, versions and --command in DIR/env.json")
    p.add_argument("--finish-env", metavar="DIR", help="record the end time in DIR/env.json")
    p.add_argument("--command", help="with --save-env: the command that runs the benchmark")
    args = p.parse_args()

    if args.save_env:
        env = collect_env(args.command)
        env["started_epoch"] = time.time()
        Path(args.save_env).mkdir(parents=True, exist_ok=True)
        (Path(args.save_env) / "env.json").write_text(json.dumps(env, indent=2) + "\n")
        return
    if args.finish_env:
        path = Path(args.finish_env) / "env.json"
        env = json.loads(path.read_text()) if path.exists() else collect_env()
        env["finished_epoch"] = time.time()
        path.write_text(json.dumps(env, indent=2) + "\n")
        return

    dirs = [Path(d) for d in args.dirs] or [HERE / "results" / "latest"]
    data = load(dirs)
    if data["env"] is None:
        data["env"] = collect_env()
        data["env"]["started"] += " (machine and versions read when the report was written)"
    if not data["matrix"] and not data["static"]:
        sys.exit("report.py: no results (runs.jsonl) in " + ", ".join(map(str, dirs)))
    md_path, svg_path = Path(args.md), Path(args.svg)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    svg_path.parent.mkdir(parents=True, exist_ok=True)
    env = data["env"]
    meta = (data["matrix_meta"] or {}).get("args", {})
    subtitle = (f"wrk -t1 -c64, {plural(meta.get('rounds', '?'), 'round')} x {meta.get('duration', '?')} s; "
                f"{env.get('ncpu')} vCPU {env.get('cpu') or ''}; {env.get('started', '')[:20]}; "
                f"wsgi-server {env.get('git_rev') or '?'}")
    svg_path.write_text(svg(data, ("Median requests/s per app and server (higher is better)", subtitle)))
    md_path.write_text(markdown(data, os.path.relpath(svg_path, md_path.parent), dirs))
    print(f"wrote {md_path} and {svg_path}")


if __name__ == "__main__":
    main()
