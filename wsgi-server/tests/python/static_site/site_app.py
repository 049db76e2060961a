"""The Flask app behind wsgi-server/tests/middleware.rs (loaded as `site_app:app`).

The static files themselves are made by the test in a temporary directory
(it needs a symlink and a file outside the served root); this app is what
`--static-map`, `--compress`, `--request-id`, `--health-path`,
`--metrics-path` and the trusted-proxy handling wrap.
"""
import gzip
import json
import threading
import time

from flask import Flask, Response, request

# No Flask static route: /static belongs to --static-map.
app = Flask(__name__, static_folder=None)

# Requests this process's app has seen (the health check must not count).
_lock = threading.Lock()
_count = 0


@app.before_request
def _count_request():
    global _count
    with _lock:
        _count += 1


@app.get("/count")
def count():
    with _lock:
        return {"count": _count}


def _environ():
    env = request.environ
    return {
        "remote_addr": env.get("REMOTE_ADDR"),
        "scheme": env.get("wsgi.url_scheme"),
        "host": env.get("HTTP_HOST"),
        "server_name": env.get("SERVER_NAME"),
        "server_port": env.get("SERVER_PORT"),
        "request_id": env.get("HTTP_X_REQUEST_ID"),
        "path_info": env.get("PATH_INFO"),
    }


@app.get("/environ")
def environ():
    return _environ()


def _rows(n):
    # Deterministic, so two requests give the same bytes.
    return [{"id": i, "name": "item-%04d" % i, "tags": ["alpha", "beta", "gamma"], "score": i * 7 % 101}
            for i in range(n)]


@app.get("/json")
def big_json():
    """More than 1 KiB of JSON; with ?env=1 also what the app saw."""
    body = {"rows": _rows(int(request.args.get("n", "60")))}
    if request.args.get("env"):
        body["environ"] = _environ()
    return Response(json.dumps(body, sort_keys=True), mimetype="application/json")


@app.get("/small")
def small():
    return Response(json.dumps({"small": True}), mimetype="application/json")


@app.get("/encoded")
def encoded():
    """The app compressed its own body: it must not be compressed twice."""
    raw = json.dumps({"rows": _rows(60)}, sort_keys=True).encode()
    return Response(gzip.compress(raw, mtime=0), mimetype="application/json",
                    headers={"Content-Encoding": "gzip"})


@app.get("/partial")
def partial():
    """A 206 of its own: never compressed."""
    raw = json.dumps({"rows": _rows(60)}, sort_keys=True).encode()
    return Response(raw, status=206, mimetype="application/json",
                    headers={"Content-Range": "bytes 0-%d/%d" % (len(raw) - 1, len(raw) * 2)})


@app.get("/slow")
def slow():
    time.sleep(float(request.args.get("s", "1")))
    return "slow done\n"


@app.get("/status/<int:code>")
def status(code):
    return Response("status %d\n" % code, status=code, mimetype="text/plain")


@app.route("/", defaults={"path": ""})
@app.route("/<path:path>")
def catch_all(path):
    return Response("app saw /%s\n" % path, mimetype="text/plain")
