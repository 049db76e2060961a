"""
The app of scripts/nginx-e2e.sh: the Django test project
(tests/python/django_project, `mysite.wsgi:application`) with one extra route,
`/e2e/environ`, that shows what the server put in the environ for the request
(client address, scheme, forwarding headers, worker pid) as JSON.

Kept here, beside the e2e script, so the shared Django project stays untouched.
Load it as `e2e_app:application` with `--chdir tests/python/django_project`
and `--pythonpath tests/e2e`.
"""

import json
import os

from mysite.wsgi import application as django_application

SHOWN = (
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_NAME",
    "SERVER_PORT",
    "HTTP_HOST",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "wsgi.url_scheme",
)


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/e2e/environ":
        shown = {k: environ.get(k) for k in SHOWN}
        shown["pid"] = os.getpid()
        body = json.dumps(shown).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body]
    return django_application(environ, start_response)
