"""A plain PEP 3333 app, wrapped in wsgiref.validate.validator, for
wsgi-server/tests/python_apps.rs: the real `wsgi-server` binary serves it over
real sockets.

Every validator complaint is recorded, not only raised: an AssertionError from
the validator (on the call, an iteration step or close()), a warning (e.g.
WSGIWarning from check_environ) and an "unraisable" exception (the validator's
IteratorWrapper.__del__ asserting that close() was called) all land in
PROBLEMS, which GET /problems reports. The tests assert it stays empty, and
that the server's error log holds no AssertionError or Traceback for the good
paths.

The routes under /err/ are outside the validator: they fail on purpose.
"""
import contextvars
import json
import os
import sys
import threading
import traceback
import warnings
from wsgiref.validate import validator

_lock = threading.Lock()
PROBLEMS = []
COUNTS = {"requests": 0, "closed": 0, "app_closed": 0, "file_closed": 0}


def _problem(kind, text):
    with _lock:
        PROBLEMS.append("%s: %s" % (kind, text))


def _count(key):
    with _lock:
        COUNTS[key] += 1


_default_unraisablehook = sys.unraisablehook


def _unraisable(unraisable):
    # The validator asserts in IteratorWrapper.__del__ when close() was never
    # called; Python reports that through sys.unraisablehook.
    _problem("unraisable", "%r in %r" % (unraisable.exc_value, unraisable.object))
    _default_unraisablehook(unraisable)


sys.unraisablehook = _unraisable


def _phase(name, fn, *args):
    """Run one phase of the validated app (call, next, close), recording the
    validator's assertion failures and warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn(*args)
        except AssertionError as exc:
            _problem("assertion in %s" % name, "%r\n%s" % (exc, traceback.format_exc()))
            raise
        finally:
            for w in caught:
                _problem("warning in %s" % name, "%s: %s" % (w.category.__name__, w.message))


class _Recorded:
    """The validated app's result, with each step recorded; counts close()."""

    def __init__(self, result):
        self.result = result
        self.it = None

    def __iter__(self):
        return self

    def __next__(self):
        if self.it is None:
            self.it = _phase("iter", iter, self.result)
        return _phase("next", next, self.it)

    def close(self):
        try:
            if hasattr(self.result, "close"):
                _phase("close", self.result.close)
        finally:
            _count("closed")


def recording(app):
    checked = validator(app)

    def outer(environ, start_response):
        _count("requests")
        # read() without an argument is legal PEP 3333 but the validator
        # refuses it: keep the server's own input object reachable.
        environ["tests.raw_input"] = environ["wsgi.input"]
        result = _phase("call", checked, environ, start_response)
        return _Recorded(result)

    return outer


# --- helpers -----------------------------------------------------------------

def _json(start_response, obj, status="200 OK"):
    body = json.dumps(obj, sort_keys=True).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _latin(chunks):
    return [c.decode("latin-1") for c in chunks]


def _data_file():
    return os.environ["TESTS_DATA_FILE"]


class _CountingFile:
    """A file whose close() is counted; fileno() makes the server send the
    file itself when the wrapper is the (unwrapped) result."""

    def __init__(self, path):
        self.f = open(path, "rb")

    def read(self, n=-1):
        return self.f.read(n)

    def fileno(self):
        return self.f.fileno()

    def tell(self):
        return self.f.tell()

    def seek(self, pos):
        return self.f.seek(pos)

    def close(self):
        if not self.f.closed:
            _count("file_closed")
        self.f.close()


class _AppIterable:
    """A result with close(), like a framework's."""

    def __init__(self, chunks):
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        _count("app_closed")


# --- validated routes ----------------------------------------------------------

def environ_route(environ, start_response):
    out = {}
    for key, value in environ.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = value
        elif key == "wsgi.version":
            out[key] = list(value)
        else:
            out[key] = "<%s>" % type(value).__name__
    # What PEP 3333 requires of the objects, checked here.
    inp, err = environ["wsgi.input"], environ["wsgi.errors"]
    out["tests.checks"] = {
        "input_methods": all(hasattr(inp, m) for m in ("read", "readline", "readlines", "__iter__")),
        "errors_methods": all(hasattr(err, m) for m in ("write", "writelines", "flush")),
        "file_wrapper_callable": callable(environ["wsgi.file_wrapper"]),
        "version_is_tuple": type(environ["wsgi.version"]) is tuple,
        "str_keys_are_str": all(type(k) is str for k in environ),
    }
    return _json(start_response, out)


def input_route(environ, start_response):
    inp = environ["wsgi.input"]
    raw = environ["tests.raw_input"]
    mode = environ.get("QUERY_STRING", "")
    parts = []
    if mode == "read_n":
        while True:
            chunk = inp.read(7)
            if not chunk:
                break
            parts.append(chunk)
    elif mode == "read_all":
        parts.append(raw.read())
        parts.append(raw.read())  # at the end: b""
    elif mode == "read_neg":
        parts.append(raw.read(-1))
    elif mode == "readline":
        while True:
            line = inp.readline()
            if not line:
                break
            parts.append(line)
    elif mode == "readline_size":
        while True:
            line = inp.readline(5)
            if not line:
                break
            parts.append(line)
    elif mode == "readlines":
        parts = inp.readlines()
    elif mode == "iter":
        parts = list(inp)
    elif mode == "iter_raw":
        parts = list(raw)
    elif mode == "mixed":
        parts.append(inp.read(3))
        parts.append(inp.readline())
        parts.append(inp.readline(4))
        parts.extend(inp.readlines())
        parts.append(inp.read(1))
    else:
        return _json(start_response, {"error": "unknown mode %r" % mode}, "400 Bad Request")
    return _json(start_response, {
        "parts": _latin(parts),
        "content_length": environ.get("CONTENT_LENGTH"),
        "input_terminated": environ.get("wsgi.input_terminated"),
    })


def errors_route(environ, start_response):
    err = environ["wsgi.errors"]
    marker = environ.get("QUERY_STRING", "marker")
    err.write("%s write\n" % marker)
    err.writelines(["%s writelines one\n" % marker, "%s writelines two\n" % marker])
    err.flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged"]


def exc_info_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "yes")])
    try:
        raise ValueError("replaced before any output")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/html"), ("X-Second", "yes")],
                       sys.exc_info())
    return [b"<p>the error page</p>"]


def lazy_route(environ, start_response):
    def gen():
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Lazy", "yes")])
        yield b"lazy "
        yield b""
        yield b"body"
    return gen()


def write_route(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written-1 ")
    write(b"written-2 ")
    return _AppIterable([b"returned-1 ", b"returned-2"])


def file_wrapper_route(environ, start_response):
    f = _CountingFile(_data_file())
    f.seek(int(environ.get("QUERY_STRING") or 0))
    size = os.path.getsize(_data_file()) - f.tell()
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](f, 4096)


def close_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _AppIterable([b"one ", b"two ", b"three"])


def counts_route(environ, start_response):
    with _lock:
        counts = dict(COUNTS)
    return _json(start_response, counts)


def problems_route(environ, start_response):
    with _lock:
        problems = list(PROBLEMS)
    return _json(start_response, problems)


def latin_route(environ, start_response):
    value = environ["HTTP_X_LATIN"].encode("latin-1")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [value]


def headers_route(environ, start_response):
    """Every environ key and str value naming a request header."""
    return _json(start_response, {k: v for k, v in environ.items() if isinstance(v, str)})


VALIDATED = {
    "/environ": environ_route,
    "/input": input_route,
    "/errors": errors_route,
    "/exc_info": exc_info_route,
    "/lazy": lazy_route,
    "/write": write_route,
    "/file_wrapper": file_wrapper_route,
    "/close": close_route,
    "/counts": counts_route,
    "/problems": problems_route,
    "/latin": latin_route,
    "/headers": headers_route,
}


def _validated_dispatch(environ, start_response):
    route = VALIDATED.get(environ["PATH_INFO"])
    if route is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such route"]
    return route(environ, start_response)


validated = recording(_validated_dispatch)


# --- unvalidated routes: failures on purpose ----------------------------------

def raise_before(environ, start_response):
    raise RuntimeError("raised before the head (tests marker 7f3a)")


def raise_after_chunked(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"partial-"
        yield b"body-"
        raise RuntimeError("raised after the head (tests marker 9c1b)")
    return gen()


def raise_after_length(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1000")])

    def gen():
        yield b"only-these-bytes"
        raise RuntimeError("raised after the head with a Content-Length (tests marker 2d8e)")
    return gen()


def exc_info_after_head(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"head and some body sent")
    try:
        raise ValueError("too late to replace the head (tests marker 5e60)")
    except ValueError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"never sent"]


def raw_file_wrapper(environ, start_response):
    """The wrapper as the result itself (no validator in between), so the
    server can send the file's descriptor."""
    return file_wrapper_route(environ, start_response)


REQUEST_VAR = contextvars.ContextVar("tests_request_var")
THREAD_LOCAL = threading.local()


def contextvars_route(environ, start_response):
    """A contextvars.ContextVar set by the call, read back (and reset) while
    the body is iterated and in close(): what Flask's stream_with_context and
    any contextvars-based request state rely on. Under a pure-Python server
    (gunicorn, wsgiref) the call, the iteration and close() run in one
    context."""
    token = REQUEST_VAR.set("set-in-call")
    seen = {}

    class Body:
        def __iter__(self):
            seen["next"] = REQUEST_VAR.get("<missing>")
            yield ("next=%s" % seen["next"]).encode()

        def close(self):
            seen["close"] = REQUEST_VAR.get("<missing>")
            try:
                REQUEST_VAR.reset(token)
            except Exception as exc:  # ValueError: created in a different Context
                sys.stderr.write("tests contextvars reset failed: %r\n" % (exc,))

    start_response("200 OK", [("Content-Type", "text/plain")])
    return Body()


def thread_local_route(environ, start_response):
    """threading.local data set by the call, read while the body is iterated
    (same OS thread in inline mode)."""
    THREAD_LOCAL.value = "set-in-call"
    ident = threading.get_ident()

    def body():
        same = threading.get_ident() == ident
        yield ("local=%s same_thread=%s" % (getattr(THREAD_LOCAL, "value", "<missing>"), same)).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return body()



BACKGROUND = {"ticks": 0, "thread": None}


def _background_loop():
    import time
    while True:
        time.sleep(0.001)
        BACKGROUND["ticks"] += 1


def background_route(environ, start_response):
    """How many times a background Python thread (started by the first
    request) has woken up: it needs the GIL each time, so it stalls if the
    server's thread keeps the GIL while it waits for requests."""
    if BACKGROUND["thread"] is None:
        BACKGROUND["thread"] = threading.Thread(target=_background_loop, daemon=True)
        BACKGROUND["thread"].start()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(BACKGROUND["ticks"]).encode()]

UNVALIDATED = {
    "/err/before": raise_before,
    "/err/after_chunked": raise_after_chunked,
    "/err/after_length": raise_after_length,
    "/err/exc_info_after_head": exc_info_after_head,
    "/raw/file_wrapper": raw_file_wrapper,
    "/ctx/contextvars": contextvars_route,
    "/ctx/thread_local": thread_local_route,
    "/ctx/background": background_route,
}


def application(environ, start_response):
    route = UNVALIDATED.get(environ.get("PATH_INFO", ""))
    if route is not None:
        return route(environ, start_response)
    return validated(environ, start_response)
