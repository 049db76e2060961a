"""`/`: a hello page; `/json`: exactly 100 KiB of JSON (the gzip overhead route)."""
import json

from django.http import HttpResponse
from django.urls import path

SIZE = 100 * 1024


def _payload():
    rows = []
    while True:
        row = {"id": len(rows), "name": "item-%05d" % len(rows), "tags": ["alpha", "beta", "gamma"],
               "score": len(rows) * 7 % 101, "active": len(rows) % 3 == 0}
        if len(json.dumps({"rows": rows + [row], "pad": ""})) > SIZE:
            break
        rows.append(row)
    short = SIZE - len(json.dumps({"rows": rows, "pad": ""}))
    data = json.dumps({"rows": rows, "pad": "x" * short}).encode()
    assert len(data) == SIZE, len(data)
    return data


# Built once: the route costs the same with and without --compress.
JSON = _payload()


def hello(request):
    return HttpResponse(b"Hello, World!\n", content_type="text/plain")


def big_json(request):
    return HttpResponse(JSON, content_type="application/json")


urlpatterns = [path("", hello), path("json", big_json)]
