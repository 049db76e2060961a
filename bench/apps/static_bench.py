#!/usr/bin/env python3
"""Interleaved wrk runs for bench/static.sh (stdlib only).

../shared/bench/run.py serves only its own apps (a fixed table, readiness and
body checks on `/`) and always requests `/`, so it cannot measure a static URL
of a custom Django project. This runner does the same kind of measurement for
that case: every server runs in its own session on a free 127.0.0.1 port, the
responses are checked before anything is measured, and then each round runs
every cell once in a shuffled order (warm-up, then `wrk -t1 -c{C} -d{D}s
--latency`); the summary takes medians over the rounds. A run during which
other processes used more than --max-other-pct of the machine is marked
disturbed and repeated once.

Cells:
  static-css / static-js   the same hashed static URL (10 KiB CSS, 100 KiB JS) from
                           wsgi-server --static-map and from Gunicorn (1 sync worker)
                           with WhiteNoise; Accept-Encoding: gzip, so both send the
                           collected .gz sibling; wrk -c64
  json-c1                  Django's 100 KiB JSON through wsgi-server without and with
                           --compress, Accept-Encoding: gzip, one connection: the
                           latency of one request, so the difference is what gzip adds
  json-c64                 the same at -c64 (throughput, for context)

For context (no target), the static cells also run uWSGI's --static-map (with
--static-gzip-all, so it sends the .gz sibling too) and Granian's
--static-path-mount (its own Rust file server; it does not use the .gz
siblings, so it sends the identity bytes): --no-others leaves them out.
--cells picks a subset of the cells (quick checks). Every run records the
server's RSS (VmRSS summed over its session) after the run; checks.json holds
the commands, the Content-Encoding each static server chose and its
Cache-Control.
"""

import argparse
import gzip
import http.client
import json
import os
import random
import re
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
NCPU = os.cpu_count() or 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def machine_busy_ticks():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle


def session_cpu_ticks(sid):
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
            fields = data[data.rindex(")") + 2:].split()
            if int(fields[3]) == sid:
                total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total


class Server:
    def __init__(self, name, argv, env, log_dir):
        self.name = name
        self.port = free_port()
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.log = open(Path(log_dir) / f"{name}.log", "wb")
        self.proc = subprocess.Popen(self.argv, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log.name}")
            try:
                if fetch(self.port, "/")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {self.log.name}")

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self.log.close()


def fetch(port, path, headers=None):
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def check(cond, what):
    if not cond:
        raise SystemExit(f"static_bench: check failed: {what}")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(out):
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": float(p50.group(1)) * UNITS[p50.group(2)] if p50 else None,
        "p99_ms": float(p99.group(1)) * UNITS[p99.group(2)] if p99 else None,
        "requests": int(total.group(1)) if total else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": [int(x) for x in errors.groups()] if errors else [0, 0, 0, 0],
    }


def wait_quiet(max_wait, pct):
    """Wait (at most max_wait s) until the machine is below pct busy; the last busy %."""
    deadline = time.time() + max_wait
    while True:
        b0, t0 = machine_busy_ticks(), time.time()
        time.sleep(0.5)
        busy = (machine_busy_ticks() - b0) / CLK_TCK / ((time.time() - t0) * NCPU) * 100
        if busy < pct or time.time() >= deadline:
            return busy


def run_wrk(args, server, path, conns, duration):
    cmd = [args.wrk, "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "--timeout", "5s",
           "-H", "Accept-Encoding: gzip", f"http://{HOST}:{server.port}{path}"]
    sid = os.getsid(server.proc.pid)
    busy0, srv0 = machine_busy_ticks(), session_cpu_ticks(sid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    elapsed = time.time() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = (machine_busy_ticks() - busy0) / CLK_TCK
    srv = (session_cpu_ticks(sid) - srv0) / CLK_TCK
    wrk = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    res = parse_wrk(out)
    res["server_cpu_pct"] = round(srv / elapsed * 100, 1)
    res["other_pct"] = round(max(0.0, busy - srv - wrk) / (elapsed * NCPU) * 100, 1)
    res["cmd"] = shlex.join(cmd)
    return res


def session_rss_kib(sid):
    """VmRSS summed over the processes of session `sid` (the server and its workers)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
            if int(data[data.rindex(")") + 2:].split()[3]) != sid:
                continue
            with open(f"/proc/{entry}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError, IndexError):
            pass
    return total


STATIC = "wsgi-server --static-map"
WHITENOISE = "gunicorn + WhiteNoise"
# Other servers' own static file serving, for context (not part of the 5x target): neither
# is told about Django's hashed names, so their cache headers are their defaults.
UWSGI_STATIC = "uwsgi --static-map"
GRANIAN_STATIC = "granian --static-path-mount"
CELLS = ("static-css", "static-js", "json-c1", "json-c64")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wsgi-server", required=True, help="the release wsgi-server binary")
    p.add_argument("--venv", required=True, help="venv with Django, WhiteNoise and Gunicorn")
    p.add_argument("--apps", required=True, help="bench/apps (holds the djstatic package)")
    p.add_argument("--static-root", required=True, help="collectstatic's output (STATIC_ROOT)")
    p.add_argument("--assets", required=True, help="the source files (STATICFILES_DIRS)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quiet-pct", type=float, default=25.0)
    p.add_argument("--quiet-wait", type=float, default=5.0)
    p.add_argument("--max-other-pct", type=float, default=15.0)
    p.add_argument("--cells", default=",".join(CELLS), help="comma list of " + ", ".join(CELLS))
    p.add_argument("--no-others", action="store_true",
                   help="leave out the uWSGI and Granian static rows (context, not a target)")
    p.add_argument("--wrk", default=os.environ.get("WRK", "wrk"))
    p.add_argument("--out", default="/tmp/bench-static")
    args = p.parse_args()
    wanted = [c.strip() for c in args.cells.split(",") if c.strip()]
    for c in wanted:
        if c not in CELLS:
            raise SystemExit(f"static_bench: unknown cell {c} (cells: {', '.join(CELLS)})")

    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    manifest = json.loads((Path(args.static_root) / "staticfiles.json").read_text())["paths"]
    urls = {"css": "/static/" + manifest["css/site.css"], "js": "/static/" + manifest["js/app.js"]}

    env = dict(os.environ, VIRTUAL_ENV=args.venv, PYTHONPATH=args.apps, DJANGO_SETTINGS_MODULE="djstatic.settings",
               BENCH_STATIC_ROOT=args.static_root, BENCH_ASSETS=args.assets)
    env.pop("PYTHONHOME", None)
    app = "djstatic.wsgi:application"
    ws = [args.wsgi_server, "--bind", f"{HOST}:{{port}}", "--workers", "1", "--pythonpath", args.apps,
          "--error-logfile", "-"]
    commands = {
        STATIC: ws + ["--static-map", f"/static={args.static_root}", app],
        WHITENOISE: [f"{args.venv}/bin/gunicorn", "--bind", f"{HOST}:{{port}}", "--workers", "1",
                     "--chdir", args.apps, app],
        UWSGI_STATIC: [f"{args.venv}/bin/uwsgi", "--http", f"{HOST}:{{port}}", "--http-keepalive", "--master",
                       "--processes", "1", "--home", args.venv, "--module", app, "--disable-logging",
                       "--die-on-term", "--need-app", "--static-map", f"/static={args.static_root}",
                       "--static-gzip-all"],
        GRANIAN_STATIC: [f"{args.venv}/bin/granian", "--interface", "wsgi", "--host", HOST, "--port", "{port}",
                         "--workers", "1", "--http", "1", "--no-ws", "--static-path-route", "/static",
                         "--static-path-mount", args.static_root, app],
        "wsgi-server": ws + [app],
        "wsgi-server --compress": ws + ["--compress", app],
    }
    static_servers = [STATIC, WHITENOISE] + ([] if args.no_others else [UWSGI_STATIC, GRANIAN_STATIC])
    cells = []
    for kind in ("css", "js"):
        if f"static-{kind}" in wanted:
            for name in static_servers:
                cells.append((f"static-{kind}", name, urls[kind], args.conns))
    for conns in (1, args.conns):
        if f"json-c{conns}" in wanted or (conns == args.conns and "json-c64" in wanted):
            for name in ("wsgi-server", "wsgi-server --compress"):
                cells.append((f"json-c{conns}", name, "/json", conns))
    needed = list(dict.fromkeys(c[1] for c in cells))

    servers = {}
    checks = {"urls": urls, "encoding": {}, "cache_control": {}, "commands": {}}
    try:
        for name in needed:
            servers[name] = Server(name, commands[name], env, out / "logs")
            checks["commands"][name] = shlex.join(commands[name])
        for s in servers.values():
            s.wait_ready()

        # Correct answers first: the static servers send the same bytes (the collected
        # .gz sibling under Accept-Encoding: gzip where the server uses it).
        for kind, url in urls.items():
            plain = (Path(args.static_root) / url[len("/static/"):]).read_bytes()
            gz = (Path(args.static_root) / (url[len("/static/"):] + ".gz")).read_bytes()
            for name in (n for n in static_servers if n in servers):
                st, h, body = fetch(servers[name].port, url)
                check(st == 200 and body == plain, f"{name} {url}: {st}, {len(body)} bytes")
                st, h, body = fetch(servers[name].port, url, {"Accept-Encoding": "gzip"})
                enc = h.get("content-encoding", "identity")
                checks["encoding"][f"{name} {kind}"] = f"{enc}, {len(body)} bytes"
                checks["cache_control"][f"{name} {kind}"] = h.get("cache-control", "")
                if name in (STATIC, WHITENOISE):
                    check(st == 200 and enc == "gzip" and body == gz,
                          f"{name} {url} gzip: {st} {enc} {len(body)} bytes")
                    check("immutable" in h.get("cache-control", "")
                          or "max-age=315360000" in h.get("cache-control", ""),
                          f"{name} {url}: cache-control {h.get('cache-control')}")
                else:
                    check(st == 200 and body == (gz if enc == "gzip" else plain),
                          f"{name} {url} with Accept-Encoding: gzip: {st} {enc} {len(body)} bytes")
        if "wsgi-server" in servers and "wsgi-server --compress" in servers:
            st, h, plain_json = fetch(servers["wsgi-server"].port, "/json", {"Accept-Encoding": "gzip"})
            check(st == 200 and len(plain_json) == 100 * 1024 and "content-encoding" not in h, "plain /json")
            st, h, body = fetch(servers["wsgi-server --compress"].port, "/json", {"Accept-Encoding": "gzip"})
            check(st == 200 and h.get("content-encoding") == "gzip" and gzip.decompress(body) == plain_json,
                  "--compress /json")
            checks["encoding"]["json --compress"] = f"gzip, {len(plain_json)} -> {len(body)} bytes"
        (out / "checks.json").write_text(json.dumps(checks, indent=2) + "\n")
        print("checked:", "; ".join(f"{k}: {v}" for k, v in checks["encoding"].items()), flush=True)

        rng = random.Random(args.seed)
        runs = []
        with open(out / "runs.jsonl", "w") as log:
            for rnd in range(1, args.rounds + 1):
                order = cells[:]
                rng.shuffle(order)
                for cell, name, path, conns in order:
                    for attempt in (1, 2):
                        busy = wait_quiet(args.quiet_wait, args.quiet_pct)
                        run_wrk(args, servers[name], path, conns, args.warmup)
                        res = run_wrk(args, servers[name], path, conns, args.duration)
                        res["rss_kib"] = session_rss_kib(os.getsid(servers[name].proc.pid))
                        res.update(cell=cell, server=name, round=rnd, attempt=attempt, busy_before=round(busy, 1),
                                   disturbed=res["other_pct"] > args.max_other_pct)
                        log.write(json.dumps(res) + "\n")
                        log.flush()
                        print(f"round {rnd} {cell:10} {name:28} {res['rps']:10.0f} req/s  p50 {res['p50_ms']:.3f} ms"
                              f"  server {res['server_cpu_pct']}%  other {res['other_pct']}%"
                              f"{'  DISTURBED' if res['disturbed'] else ''}", flush=True)
                        if not res["disturbed"] or attempt == 2:
                            runs.append(res)
                            break
    finally:
        for s in servers.values():
            s.stop()

    summarize(runs, urls, out)


def summarize(runs, urls, out):
    def med(cell, server, key):
        vals = [r[key] for r in runs if r["cell"] == cell and r["server"] == server and r[key] is not None]
        return statistics.median(vals) if vals else float("nan"), vals

    lines = ["| cell | server | req/s median | (runs) | p50 latency median | p99 median | errors |",
             "|---|---|---:|---|---:|---:|---:|"]
    for cell in dict.fromkeys(r["cell"] for r in runs):
        for server in dict.fromkeys(r["server"] for r in runs if r["cell"] == cell):
            rps, vals = med(cell, server, "rps")
            p50, _ = med(cell, server, "p50_ms")
            p99, _ = med(cell, server, "p99_ms")
            errs = sum(r["non2xx"] + sum(r["socket_errors"]) for r in runs if r["cell"] == cell and r["server"] == server)
            disturbed = sum(r["disturbed"] for r in runs if r["cell"] == cell and r["server"] == server)
            spread = ", ".join(f"{v:.0f}" for v in vals) + ("; %d disturbed" % disturbed if disturbed else "")
            lines.append(f"| {cell} | {server} | {rps:.0f} | {spread} | {p50:.3f} ms | {p99:.3f} ms | {errs} |")
    lines.append("")
    verdicts = []
    ran = {r["cell"] for r in runs}
    for kind in ("css", "js"):
        if f"static-{kind}" not in ran:
            continue
        ours, _ = med(f"static-{kind}", "wsgi-server --static-map", "rps")
        theirs, _ = med(f"static-{kind}", "gunicorn + WhiteNoise", "rps")
        ratio = ours / theirs if theirs else float("nan")
        verdicts.append(f"static {kind} ({urls[kind]}): wsgi-server --static-map / gunicorn+WhiteNoise = "
                        f"{ratio:.2f}x (target >= 5x: {'PASS' if ratio >= 5 else 'FAIL'})")
    if "json-c1" not in ran:
        return finish(lines, verdicts, out)
    plain, _ = med("json-c1", "wsgi-server", "p50_ms")
    gz, _ = med("json-c1", "wsgi-server --compress", "p50_ms")
    # Paired by round, too: less sensitive to drift over the run.
    pairs = []
    for rnd in sorted({r["round"] for r in runs}):
        a = [r["p50_ms"] for r in runs if r["cell"] == "json-c1" and r["round"] == rnd and r["server"] == "wsgi-server"]
        b = [r["p50_ms"] for r in runs
             if r["cell"] == "json-c1" and r["round"] == rnd and r["server"] == "wsgi-server --compress"]
        if a and b:
            pairs.append(b[0] - a[0])
    paired = statistics.median(pairs) if pairs else float("nan")
    verdicts.append(f"gzip of the 100 KiB JSON (one connection): median p50 {plain:.3f} ms -> {gz:.3f} ms, "
                    f"adds {gz - plain:.3f} ms (per-round paired median {paired:.3f} ms; "
                    f"target < 1 ms: {'PASS' if gz - plain < 1 else 'FAIL'})")
    return finish(lines, verdicts, out)


def finish(lines, verdicts, out):
    text = "\n".join(lines + [f"- {v}" for v in verdicts]) + "\n"
    (out / "summary.md").write_text(text)
    print()
    print(text)
    print(f"runs: {out / 'runs.jsonl'}, summary: {out / 'summary.md'}, server logs: {out / 'logs'}")


if __name__ == "__main__":
    sys.exit(main())
