"""Views of the test project."""

import hashlib
import os

from django.http import FileResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST


@require_GET
def hello(request):
    return JsonResponse({"hello": "world", "framework": "django", "path": request.path,
                         "multithread": request.META["wsgi.multithread"]})


@csrf_exempt
@require_POST
def form(request):
    return JsonResponse({"form": {k: request.POST.getlist(k) for k in request.POST}})


@csrf_exempt
@require_POST
def upload(request):
    f = request.FILES["file"]
    h = hashlib.sha256()
    size = 0
    for chunk in f.chunks():
        h.update(chunk)
        size += len(chunk)
    return JsonResponse({"filename": f.name, "size": size, "sha256": h.hexdigest(),
                         "on_disk": hasattr(f, "temporary_file_path"),
                         "fields": {k: request.POST[k] for k in request.POST}})


@require_GET
def stream(request):
    count = int(request.GET.get("n", "50"))
    return StreamingHttpResponse(("row %d\n" % i for i in range(count)), content_type="text/plain")


@require_GET
def file(request):
    return FileResponse(open(os.environ["TESTS_DATA_FILE"], "rb"), content_type="application/octet-stream")


def boom(request):
    raise RuntimeError("a Django view failed (tests marker d7a0)")
