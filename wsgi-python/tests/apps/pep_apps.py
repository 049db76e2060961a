"""Small PEP 3333 apps exercising every corner, for the adapter's tests."""
import sys

CLOSED = []


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!\n"]


def environ_dump(environ, start_response):
    lines = []
    for k in sorted(environ):
        v = environ[k]
        if isinstance(v, str):
            lines.append("%s=%s" % (k, v))
        else:
            lines.append("%s:%s" % (k, type(v).__name__))
    body = "\n".join(lines).encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain; charset=latin-1")])
    return [body]


def echo_input(environ, start_response):
    inp = environ["wsgi.input"]
    mode = environ.get("QUERY_STRING", "")
    if mode == "readline":
        parts = []
        while True:
            line = inp.readline()
            if not line:
                break
            parts.append(b"[" + line + b"]")
        body = b"".join(parts)
    elif mode == "readlines":
        body = b"|".join(inp.readlines())
    elif mode == "iter":
        body = b"|".join(list(inp))
    elif mode == "read10":
        body = b"".join(iter(lambda: inp.read(10), b""))
    else:
        body = inp.read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


class Closing:
    def __init__(self, chunks, fail_at=None):
        self.chunks = chunks
        self.fail_at = fail_at

    def __iter__(self):
        for i, c in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("failure in the middle")
            yield c

    def close(self):
        CLOSED.append(True)


def generator_with_close(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing([b"one ", b"two ", b"three"])


def fail_mid_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing([b"partial", b"never"], fail_at=1)


def closed_count(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(len(CLOSED)).encode()]


def lazy(environ, start_response):
    def gen():
        start_response("201 Created Lazily", [("Content-Type", "text/plain")])
        yield b"lazy body"
    return gen()


def writer(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    return [b"returned"]


def exc_before(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("boom")
    except ValueError:
        start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"error page"]


def exc_after(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"already sent")
    try:
        raise ValueError("late boom")
    except ValueError:
        start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"not reached"]


def raises(environ, start_response):
    raise KeyError("no such thing")


def bad_header(environ, start_response):
    start_response("200 OK", [("Connection", "close")])
    return [b"x"]


def bad_status(environ, start_response):
    start_response(200, [])
    return [b"x"]


def returns_str(environ, start_response):
    start_response("200 OK", [])
    return "not bytes"


def errors_stream(environ, start_response):
    err = environ["wsgi.errors"]
    err.write("line one\n")
    err.writelines(["line ", "two\n"])
    err.flush()
    start_response("200 OK", [])
    return [b"ok"]


def file_wrapper(environ, start_response):
    import os
    path = os.path.join(os.path.dirname(__file__), "pep_apps.py")
    f = open(path, "rb")
    f.read(10)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](f, 4096)


def factory(greeting, punct="!"):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [(greeting + punct).encode()]
    return app


class Nested:
    class Inner:
        @staticmethod
        def app(environ, start_response):
            start_response("200 OK", [])
            return [b"nested"]


not_callable = 42


_kept = []


def kept_callables(environ, start_response):
    """The first request keeps its start_response and write; later requests
    report whether they got the same objects and what calling the kept ones
    does now (the server reuses these objects between requests only when the
    application kept no reference)."""
    if not _kept:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        _kept.append((start_response, write))
        return [b"kept"]
    old_sr, old_write = _kept[0]
    out = [b"same" if old_sr is start_response else b"fresh"]
    for name, call in (("write", lambda: old_write(b"x")), ("sr", lambda: old_sr("200 OK", []))):
        try:
            call()
            out.append(b" %s-ok" % name.encode())
        except Exception as e:
            out.append(b" %s-%s" % (name.encode(), type(e).__name__.encode()))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return out


def lazy_generator(environ, start_response):
    """start_response inside the first iteration, body from a generator."""
    yield b""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield environ["PATH_INFO"].encode("latin-1")


def environ_and_input(environ, start_response):
    """environ_dump, then the request body as read from wsgi.input."""
    lines = []
    for k in sorted(environ):
        v = environ[k]
        lines.append("%s=%s" % (k, v) if isinstance(v, str) else "%s:%s" % (k, type(v).__name__))
    lines.append("body=" + environ["wsgi.input"].read().decode("latin-1"))
    start_response("200 OK", [("Content-Type", "text/plain; charset=latin-1")])
    return ["\n".join(lines).encode("latin-1")]
