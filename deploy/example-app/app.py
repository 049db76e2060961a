"""The application deploy/Dockerfile serves when no other is given.

Replace it with your project: `docker build -f deploy/Dockerfile
--build-context app=PATH/TO/PROJECT .` and set the command's APP
(`mysite.wsgi:application`) in `docker run` or the Kubernetes manifest.
"""


def application(environ, start_response):
    body = f"Hello from wsgi-server: {environ['PATH_INFO']}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
