"""A small but real Flask app for wsgi-server/tests/python_apps.rs.

Loaded as `flask_app:app`. TESTS_DATA_FILE names the file /file sends.
"""
import hashlib
import os

from flask import Flask, Response, abort, jsonify, request, send_file, session, stream_with_context

app = Flask(__name__)
app.secret_key = "tests-only-secret-key"


@app.get("/api/hello")
def hello():
    return jsonify(hello="world", framework="flask", multithread=request.environ["wsgi.multithread"])


@app.post("/api/echo")
def echo():
    data = request.get_json()
    return jsonify(received=data), 201


@app.post("/form")
def form():
    return jsonify(form=request.form.to_dict(flat=False), content_type=request.content_type)


@app.post("/upload")
def upload():
    f = request.files["file"]
    h = hashlib.sha256()
    size = 0
    while True:
        chunk = f.stream.read(1 << 16)
        if not chunk:
            break
        h.update(chunk)
        size += len(chunk)
    return jsonify(filename=f.filename, size=size, sha256=h.hexdigest(), fields=request.form.to_dict())


@app.get("/session/set")
def session_set():
    session["user"] = request.args["user"]
    session["visits"] = 1
    resp = jsonify(stored=session["user"])
    resp.set_cookie("plain", "cookie-value", httponly=True)
    return resp


@app.get("/session/get")
def session_get():
    if "user" in session:
        session["visits"] = session.get("visits", 0) + 1
    return jsonify(user=session.get("user"), visits=session.get("visits"), plain=request.cookies.get("plain"))


@app.get("/stream_plain")
def stream_plain():
    count = int(request.args.get("n", "50"))
    prefix = request.args.get("prefix", "line")

    def generate():
        for i in range(count):
            yield "%s %d\n" % (prefix, i)

    return Response(generate(), mimetype="text/plain")


@app.get("/stream")
def stream():
    count = int(request.args.get("n", "50"))

    def generate():
        # request is only reachable here through stream_with_context.
        prefix = request.args.get("prefix", "line")
        for i in range(count):
            yield "%s %d\n" % (prefix, i)

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/file")
def file():
    return send_file(os.environ["TESTS_DATA_FILE"], mimetype="application/octet-stream")


@app.get("/boom")
def boom():
    raise RuntimeError("a Flask view failed (tests marker f1a5)")


@app.get("/forbidden")
def forbidden():
    abort(403)
