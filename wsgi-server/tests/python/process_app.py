"""A small WSGI app for wsgi-server/tests/process.rs: the tests drive the real
`wsgi-server` master and its worker processes with real signals, and tell the
workers apart by the pid each response names.

Routes:
  /            200 "pid=<worker pid>"
  /sleep?S     sleeps S seconds (a float), then 200 "slept=S pid=<worker pid>";
               the sleep happens in `sleep_in_handler`, the function whose
               frame the faulthandler stack dump must show on a timeout.
  anything else 404
"""
import os
import time


def sleep_in_handler(seconds):
    time.sleep(seconds)


def _reply(start_response, status, text):
    body = text.encode("ascii")
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = environ.get("QUERY_STRING", "")
    if path == "/":
        return _reply(start_response, "200 OK", "pid=%d" % os.getpid())
    if path == "/sleep":
        seconds = float(query or "1")
        sleep_in_handler(seconds)
        return _reply(start_response, "200 OK", "slept=%s pid=%d" % (query, os.getpid()))
    return _reply(start_response, "404 Not Found", "not found")
