"""Single-package Django app that renders a template: `djtemplate:application`.

The shared harness's django_app returns a constant HttpResponse; this one runs
Django's template engine on every request, in the shape of TechEmpower's
"fortunes" test: the view builds 13 rows (12 fixed, one added per request),
sorts them, and `page.html` (extending `base.html`) renders them as a table
with `{% cycle %}`, a filter and autoescaping (one row is a <script>, one is
non-ASCII). Settings in code, no database, no context processors (so no CSRF token:
the body is the same on every request, and bench/matrix.py checks it byte for
byte against an in-process render). Middleware as in the shared django_app:
CommonMiddleware only.
"""

import os

from django.conf import settings

HERE = os.path.dirname(os.path.abspath(__file__))

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-only-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
        TEMPLATES=[{
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [os.path.join(HERE, "templates")],
            "OPTIONS": {"context_processors": []},  # cached loader: Django's default
        }],
    )

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.urls import path  # noqa: E402

# The TechEmpower "fortunes" shape: 12 rows, one of them hostile, sorted per request.
FORTUNES = [
    (1, "fortune: No such file or directory"),
    (2, "A computer scientist is someone who fixes things that aren't broken."),
    (3, "After enough decimal places, nobody gives a damn."),
    (4, "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1"),
    (5, "A computer program does what you tell it to do, not what you want it to do."),
    (6, "Emacs is a nice operating system, but I prefer UNIX. \u2014 Tom Christaensen"),
    (7, "Any program that runs right is obsolete."),
    (8, "A list is only as strong as its weakest link. \u2014 Donald Knuth"),
    (9, "Feature: A bug with seniority."),
    (10, "Computers make very fast, very accurate mistakes."),
    (11, "<script>alert(\"This should not be displayed in a browser alert box.\");</script>"),
    (12, "\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1\u30de\u30fc\u30af"),
]


def index(request):
    fortunes = [{"id": i, "message": m} for i, m in FORTUNES]
    fortunes.append({"id": 0, "message": "Additional fortune added at request time."})
    fortunes.sort(key=lambda f: f["message"])
    return render(request, "djtemplate/page.html",
                  {"title": "Fortunes", "fortunes": fortunes, "user": {"name": "bench & co"}})


urlpatterns = [path("", index)]

application = get_wsgi_application()
app = application
