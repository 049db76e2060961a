"""Django settings for bench/static.sh: static files through WhiteNoise.

BENCH_STATIC_ROOT is where `collectstatic` puts the files (hashed names
and .gz siblings, by WhiteNoise's CompressedManifestStaticFilesStorage);
BENCH_ASSETS holds the source files (made by make_assets.py).
"""
import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djstatic.urls"
WSGI_APPLICATION = "djstatic.wsgi.application"
USE_TZ = True
DATABASES = {}

INSTALLED_APPS = ["django.contrib.staticfiles"]
# WhiteNoise answers /static/ before Django's URL routing. Under
# wsgi-server --static-map the same requests never reach Python at all.
MIDDLEWARE = ["whitenoise.middleware.WhiteNoiseMiddleware"]

STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("BENCH_STATIC_ROOT", "/tmp/bench-static/collected")
STATICFILES_DIRS = [os.environ.get("BENCH_ASSETS", "/tmp/bench-static/assets")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
