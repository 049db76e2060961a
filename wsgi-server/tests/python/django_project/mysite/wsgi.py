"""
WSGI config for mysite project (as `django-admin startproject` writes it).

It exposes the WSGI callable as a module-level variable named ``application``;
wsgi-server loads it as `mysite.wsgi:application` (with --chdir at the project).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_wsgi_application()
