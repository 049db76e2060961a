#!/usr/bin/env bash
# End-to-end test with a real nginx (Debian's package) in front of wsgi-server
# over a Unix socket (issue 7). Everything runs from a temporary directory:
# the system nginx configuration is never read or touched (nginx runs as a
# foreground child with -p/-c/-e pointing into the temp dir).
#
# Checks, through nginx:
#   - Django pages (JSON view, streamed view, Django's own 404, form POST);
#   - a 10 MiB multipart upload (size and sha256 as Django's upload view saw them);
#   - static files served by nginx itself (alias) and by wsgi-server's
#     --static-map (bytes, Content-Type, Range, ETag/304);
#   - what the app sees of the client (REMOTE_ADDR, wsgi.url_scheme) through
#     X-Forwarded-*, over the Unix socket and over a TCP upstream, and that a
#     forged first hop of X-Forwarded-For is not believed;
#   - two SIGHUP reloads of the wsgi-server master under load: no 5xx, no
#     connection error, and the workers really replaced.
#
# Usage: bash scripts/nginx-e2e.sh
#   WSGI_SERVER_BIN  the server binary (default target/debug/wsgi-server; built
#                    with `cargo build -p wsgi-server --features python,tls` if missing)
#   WSGI_TEST_VENV   virtualenv with Django (made by scripts/python-venv.sh if unset)
#   KEEP_TMP=1       keep the temporary directory (logs, configs) for debugging
# Exits non-zero on any failure; ends with "nginx e2e: N passed, M failed".
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
started=$SECONDS

say() { printf 'nginx-e2e: %s\n' "$*"; }
die() {
  printf 'nginx-e2e: error: %s\n' "$*" >&2
  exit 1
}

# --------------------------------------------------------------------------
# Dependencies: nginx and curl from apt when missing; the server binary; the venv.
# --------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "need ${missing[*]} and there is no apt-get to install them"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  say "installing ${missing[*]} with apt-get"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
nginx_bin="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"

bin="${WSGI_SERVER_BIN:-$repo/target/debug/wsgi-server}"
if [ ! -x "$bin" ]; then
  [ -z "${WSGI_SERVER_BIN:-}" ] || die "WSGI_SERVER_BIN=$bin is not an executable"
  say "building wsgi-server"
  cargo build -q -p wsgi-server --features python,tls
fi
[ -x "$bin" ] || die "no server binary at $bin"

if [ -z "${WSGI_TEST_VENV:-}" ]; then
  WSGI_TEST_VENV="$(bash scripts/python-venv.sh)"
fi
py="$WSGI_TEST_VENV/bin/python"
[ -x "$py" ] || die "WSGI_TEST_VENV=$WSGI_TEST_VENV is not a virtualenv (run bash scripts/python-venv.sh)"

# --------------------------------------------------------------------------
# Temp dir, processes, cleanup.
# --------------------------------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nginx-e2e.XXXXXX")"
ws_pid=""
nginx_pid=""
load_pid=""

stop_pid() { # PID: TERM, up to 5 s, then KILL; only this PID.
  local pid="$1" i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  stop_pid "$load_pid"
  stop_pid "$nginx_pid"
  stop_pid "$ws_pid"
  if [ "$rc" -ne 0 ]; then
    for log in ws.log nginx-error.log; do
      if [ -s "$tmp/$log" ]; then
        echo "---- last lines of $log ----" >&2
        tail -n 30 "$tmp/$log" >&2
      fi
    done
  fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "nginx-e2e: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --------------------------------------------------------------------------
# Test data: static trees (one for nginx, one for --static-map), an upload.
# --------------------------------------------------------------------------
mkdir -p "$tmp/www-nginx" "$tmp/www-map" "$tmp/logs"
cp wsgi-server/tests/e2e/static/e2e.css "$tmp/www-nginx/e2e.css"
cp wsgi-server/tests/e2e/static/e2e.css "$tmp/www-map/e2e.css"
head -c 300000 /dev/urandom >"$tmp/www-nginx/blob.bin"
head -c 300000 /dev/urandom >"$tmp/www-map/blob.bin"
head -c $((10 * 1024 * 1024)) /dev/urandom >"$tmp/upload.bin"

sock="$tmp/ws.sock"
ws_port="$(free_port)"    # wsgi-server's second listener, for the TCP upstream
nginx_port="$(free_port)" # nginx's listener

# --------------------------------------------------------------------------
# wsgi-server: 2 workers on the Unix socket (and 127.0.0.1 TCP, for comparison).
# --------------------------------------------------------------------------
(
  # The server inherits no stray Python/Django settings from the caller.
  unset DJANGO_SETTINGS_MODULE PYTHONPATH PYTHONHOME
  export VIRTUAL_ENV="$WSGI_TEST_VENV"
  exec "$bin" e2e_app:application \
    --bind "unix:$sock" --bind "127.0.0.1:$ws_port" --workers 2 \
    --chdir "$repo/wsgi-server/tests/python/django_project" \
    --pythonpath "$repo/wsgi-server/tests/e2e" \
    --static-map "/static/=$tmp/www-map" \
    --env "TESTS_TMP_DIR=$tmp" \
    </dev/null >"$tmp/ws.stdout.log" 2>"$tmp/ws.log"
) &
ws_pid=$!

for _ in $(seq 200); do
  kill -0 "$ws_pid" 2>/dev/null || die "wsgi-server exited before listening"
  if [ -S "$sock" ] && curl -fsS -o /dev/null --max-time 2 --unix-socket "$sock" http://localhost/e2e/environ 2>/dev/null; then
    break
  fi
  sleep 0.1
done
curl -fsS -o /dev/null --max-time 5 --unix-socket "$sock" http://localhost/e2e/environ ||
  die "wsgi-server did not answer on $sock within 20 s"

# --------------------------------------------------------------------------
# nginx: a minimal site, like deploy/nginx.conf, all paths in $tmp.
# --------------------------------------------------------------------------
user_line=""
# As root the nginx workers would run as nobody, who cannot reach the socket in
# our 0700 temp dir; keep them as the current user.
[ "$(id -u)" -ne 0 ] || user_line="user $(id -un) $(id -gn);"
cat >"$tmp/nginx.conf" <<EOF
$user_line
worker_processes 1;
error_log $tmp/nginx-error.log warn;
events { worker_connections 256; }
http {
    types {
        text/html html;
        text/css css;
        application/octet-stream bin;
    }
    default_type application/octet-stream;
    access_log $tmp/logs/access.log;
    client_body_temp_path $tmp/client_body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    sendfile on;

    upstream ws_unix {
        server unix:$sock;
        keepalive 8;
    }
    upstream ws_tcp {
        server 127.0.0.1:$ws_port;
        keepalive 8;
    }

    server {
        listen 127.0.0.1:$nginx_port;
        server_name localhost;
        client_max_body_size 20m;

        # Served by nginx itself.
        location /assets/ {
            alias $tmp/www-nginx/;
        }

        # The TCP upstream, only to compare X-Forwarded-* handling with the socket.
        location /tcp/ {
            proxy_pass http://ws_tcp/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }

        # Everything else (Django, and /static/ by wsgi-server's --static-map).
        location / {
            proxy_pass http://ws_unix;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
# Equivalent to the brief's `proxy_pass http://unix:$sock;`, through an
# upstream block so that nginx keeps connections to wsgi-server alive (the
# harder case for a graceful reload).

"$nginx_bin" -t -q -p "$tmp" -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" \
  -g "daemon off; pid $tmp/nginx.pid;" 2>"$tmp/nginx-t.log" || {
  cat "$tmp/nginx-t.log" >&2
  die "nginx -t rejected the configuration"
}
"$nginx_bin" -p "$tmp" -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" \
  -g "daemon off; pid $tmp/nginx.pid;" </dev/null >"$tmp/nginx.stdout.log" 2>&1 &
nginx_pid=$!

base="http://127.0.0.1:$nginx_port"
for _ in $(seq 100); do
  kill -0 "$nginx_pid" 2>/dev/null || die "nginx exited at start: $(cat "$tmp/nginx.stdout.log" "$tmp/nginx-error.log" 2>/dev/null)"
  curl -sS -o /dev/null --max-time 2 "$base/assets/e2e.css" 2>/dev/null && break
  sleep 0.1
done

say "nginx $("$nginx_bin" -v 2>&1 | sed 's/.*: //') on 127.0.0.1:$nginx_port -> wsgi-server (pid $ws_pid) on unix:$sock"

# --------------------------------------------------------------------------
# Checks.
# --------------------------------------------------------------------------
passed=0
failed=0
ok() {
  passed=$((passed + 1))
  printf '  ok    %s\n' "$*"
}
ko() {
  failed=$((failed + 1))
  printf '  FAIL  %s\n' "$*"
}
check() { # NAME ACTUAL EXPECTED
  if [ "$2" = "$3" ]; then ok "$1"; else ko "$1: got '$2', expected '$3'"; fi
}
# curl through nginx: prints the body to $tmp/body, the headers to $tmp/headers,
# the status on stdout ("000" when the connection failed).
get() {
  curl -sS --max-time 30 -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' "$@" 2>"$tmp/curl.err" || true
}
json() { # EXPR over the JSON in $tmp/body as `d`
  "$py" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$tmp/body" "$1" 2>/dev/null ||
    echo "<not JSON: $(head -c 200 "$tmp/body" | tr '\n' ' ')>"
}
header() { # NAME, from $tmp/headers
  grep -i "^$1:" "$tmp/headers" | tail -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//' || true
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

echo "Django through nginx"
check "GET /api/hello: status" "$(get "$base/api/hello")" 200
check "GET /api/hello: JSON" "$(json '(d["hello"], d["framework"], d["path"])')" "('world', 'django', '/api/hello')"
check "GET /api/stream: status" "$(get "$base/api/stream?n=500")" 200
check "GET /api/stream: 500 streamed rows" "$(wc -l <"$tmp/body" | tr -d ' '),$(tail -n 1 "$tmp/body")" "500,row 499"
check "GET /no/such/page: Django's 404" "$(get "$base/no/such/page")" 404
check "POST /api/form: fields" "$(get -d 'a=1' -d 'a=2' -d 'b=x' "$base/api/form" >/dev/null; json 'd["form"]')" "{'a': ['1', '2'], 'b': ['x']}"

echo "10 MiB upload through nginx (client_max_body_size 20m)"
check "POST /api/upload: status" "$(get -F "file=@$tmp/upload.bin;filename=upload.bin" -F note=e2e "$base/api/upload")" 200
check "POST /api/upload: size, sha256, name" \
  "$(json '(d["size"], d["sha256"], d["filename"], d["fields"])')" \
  "($((10 * 1024 * 1024)), '$(sha "$tmp/upload.bin")', 'upload.bin', {'note': 'e2e'})"

echo "static files"
check "nginx alias /assets/blob.bin: status" "$(get "$base/assets/blob.bin")" 200
check "nginx alias /assets/blob.bin: bytes" "$(sha "$tmp/body")" "$(sha "$tmp/www-nginx/blob.bin")"
check "nginx alias /assets/e2e.css: Content-Type" "$(get "$base/assets/e2e.css" >/dev/null; header content-type)" "text/css"
check "--static-map /static/blob.bin: status" "$(get "$base/static/blob.bin")" 200
check "--static-map /static/blob.bin: bytes" "$(sha "$tmp/body")" "$(sha "$tmp/www-map/blob.bin")"
etag="$(header etag)"
check "--static-map /static/blob.bin: ETag present" "$([ -n "$etag" ] && echo yes || echo no)" yes
check "--static-map /static/blob.bin: If-None-Match -> 304" "$(get -H "If-None-Match: $etag" "$base/static/blob.bin")" 304
check "--static-map /static/blob.bin: Range -> 206" "$(get -r 1000-1999 "$base/static/blob.bin")" 206
check "--static-map /static/blob.bin: Range bytes" "$(sha "$tmp/body")" "$(tail -c +1001 "$tmp/www-map/blob.bin" | head -c 1000 | sha256sum | cut -d' ' -f1)"
check "--static-map /static/e2e.css: Content-Type" "$(get "$base/static/e2e.css" >/dev/null; header content-type | cut -d';' -f1)" "text/css"
check "--static-map /static/missing.css: 404" "$(get "$base/static/missing.css")" 404

echo "client address and scheme through X-Forwarded-* (nginx sets X-Forwarded-For: \$proxy_add_x_forwarded_for, X-Forwarded-Proto: \$scheme)"
# The real client is curl. 127.0.0.1 is in the default --forwarded-allow-ips
# (127.0.0.1,::1), so a client *on* 127.0.0.1 may legitimately vouch for
# earlier hops; the forged-header checks therefore connect from 127.0.0.2 (also
# loopback on Linux, but not trusted), which stands for an Internet client.
forged=(-H "X-Forwarded-For: 203.0.113.66" -H "X-Forwarded-Proto: https")
# -- TCP upstream: the peer is nginx at 127.0.0.1, trusted.
check "TCP upstream: status" "$(get "$base/tcp/e2e/environ")" 200
check "TCP upstream: REMOTE_ADDR is the client (127.0.0.1), scheme http" \
  "$(json '(d["REMOTE_ADDR"], d["wsgi.url_scheme"], d["HTTP_X_FORWARDED_FOR"])')" "('127.0.0.1', 'http', '127.0.0.1')"
check "TCP upstream, forged X-Forwarded-For/Proto from 127.0.0.2: status" \
  "$(get --interface 127.0.0.2 "${forged[@]}" "$base/tcp/e2e/environ")" 200
check "TCP upstream, forged first hop not believed: REMOTE_ADDR 127.0.0.2, scheme http (nginx overwrote the forged proto)" \
  "$(json '(d["REMOTE_ADDR"], d["wsgi.url_scheme"], d["HTTP_X_FORWARDED_FOR"])')" "('127.0.0.2', 'http', '203.0.113.66, 127.0.0.2')"

# -- Unix socket upstream (the deployment this script is about).
# A Unix-socket peer has no address (no REMOTE_ADDR of its own). wsgi-server
# trusts such peers, as Gunicorn does for AF_UNIX (gunicorn/http/message.py),
# unless --forwarded-allow-ips is empty (wsgi-server/src/proxy.rs `apply`,
# `unix_peer`). Before that change `apply` returned at once when there was no
# peer address, so behind nginx on a socket the app saw no REMOTE_ADDR and
# never https; UNIX_PEER_TRUSTED=0 expects that old behaviour (for bisecting
# an older binary).
unix_trusted="${UNIX_PEER_TRUSTED:-1}"
check "Unix socket: status" "$(get "$base/e2e/environ")" 200
if [ "$unix_trusted" = 1 ]; then
  check "Unix socket: REMOTE_ADDR is the client (127.0.0.1), scheme http" \
    "$(json '(d["REMOTE_ADDR"], d["wsgi.url_scheme"], d["HTTP_X_FORWARDED_FOR"])')" "('127.0.0.1', 'http', '127.0.0.1')"
else
  check "Unix socket (old behaviour): X-Forwarded-For ignored, no REMOTE_ADDR, scheme http" \
    "$(json '(d["REMOTE_ADDR"], d["wsgi.url_scheme"], d["HTTP_X_FORWARDED_FOR"])')" "(None, 'http', '127.0.0.1')"
fi
check "Unix socket, forged X-Forwarded-For/Proto from 127.0.0.2: status" \
  "$(get --interface 127.0.0.2 "${forged[@]}" "$base/e2e/environ")" 200
if [ "$unix_trusted" = 1 ]; then
  check "Unix socket, forged first hop not believed: REMOTE_ADDR 127.0.0.2, scheme http (nginx overwrote the forged proto)" \
    "$(json '(d["REMOTE_ADDR"], d["wsgi.url_scheme"], d["HTTP_X_FORWARDED_FOR"])')" "('127.0.0.2', 'http', '203.0.113.66, 127.0.0.2')"
else
  check "Unix socket (old behaviour), forged first hop not believed (nothing is): no REMOTE_ADDR, scheme http" \
    "$(json '(d["REMOTE_ADDR"], d["wsgi.url_scheme"], d["HTTP_X_FORWARDED_FOR"])')" "(None, 'http', '203.0.113.66, 127.0.0.2')"
fi
# The same socket without nginx: the scheme a TLS-terminating proxy would pass
# (nginx above always sends its own \$scheme, http here).
check "Unix socket direct, X-Forwarded-Proto https: status" \
  "$(get --unix-socket "$sock" -H "X-Forwarded-Proto: https" -H "X-Forwarded-For: 198.51.100.4" http://localhost/e2e/environ)" 200
if [ "$unix_trusted" = 1 ]; then
  check "Unix socket direct: REMOTE_ADDR 198.51.100.4, scheme https" \
    "$(json '(d["REMOTE_ADDR"], d["wsgi.url_scheme"])')" "('198.51.100.4', 'https')"
else
  check "Unix socket direct (old behaviour): headers ignored" \
    "$(json '(d["REMOTE_ADDR"], d["wsgi.url_scheme"])')" "(None, 'http')"
fi

echo "graceful reload (SIGHUP to the master) under load through nginx"
worker_pids() { # the worker pids that answer 12 requests, sorted, one line
  local pids=""
  for _ in $(seq 12); do
    get "$base/e2e/environ" >/dev/null
    pids="$pids $(json 'd["pid"]')"
  done
  tr ' ' '\n' <<<"$pids" | grep . | sort -u | tr '\n' ' '
}
pids_before="$(worker_pids)"
"$py" wsgi-server/tests/e2e/load.py 127.0.0.1 "$nginx_port" /e2e/environ 4 8 >"$tmp/load.json" 2>"$tmp/load.err" &
load_pid=$!
sleep 2
kill -HUP "$ws_pid"
sleep 3
kill -HUP "$ws_pid"
wait "$load_pid" || true
load_pid=""
cp "$tmp/load.json" "$tmp/body"
say "load: $(cat "$tmp/load.json")"
total="$(json 'sum(d["statuses"].values())')"
check "reload: requests answered (> 200)" "$([ "${total//[^0-9]/}" -gt 200 ] 2>/dev/null && echo yes || echo "no ($total)")" yes
check "reload: every answer 200 (no 5xx)" "$(json 'sorted(d["statuses"])')" "['200']"
check "reload: no connection errors" "$(json 'd["errors"]')" "{}"
pids_after="$(worker_pids)"
check "reload: workers replaced (before: $pids_before; after: $pids_after)" \
  "$(comm -12 <(tr ' ' '\n' <<<"$pids_before" | grep . | sort) <(tr ' ' '\n' <<<"$pids_after" | grep . | sort) | tr '\n' ' ')" ""
check "reload: master still running" "$(kill -0 "$ws_pid" 2>/dev/null && echo yes || echo no)" yes
check "nginx logged no error (upstream refused/reset/timed out...)" \
  "$(grep -c -E '\[(error|crit|alert|emerg)\]' "$tmp/nginx-error.log" 2>/dev/null || true)" 0

echo "nginx e2e: $passed passed, $failed failed ($((SECONDS - started)) s)"
[ "$failed" -eq 0 ]
