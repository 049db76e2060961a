"""
Load for scripts/nginx-e2e.sh's reload check: N threads, each on its own
keep-alive HTTP/1.1 connection, GET one URL in a loop for D seconds, counting
statuses and connection errors. Prints one JSON object; exits 0 either way.

Usage: python load.py HOST PORT PATH THREADS SECONDS
"""

import http.client
import json
import sys
import threading
import time
from collections import Counter

host, port, path, threads, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
lock = threading.Lock()
statuses = Counter()
errors = Counter()
pids = set()
deadline = time.monotonic() + seconds


def worker():
    conn = None
    while time.monotonic() < deadline:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            with lock:
                statuses[resp.status] += 1
                if resp.status == 200 and body.startswith(b"{"):
                    pid = json.loads(body).get("pid")
                    if pid:
                        pids.add(pid)
            if resp.will_close:
                conn.close()
                conn = None
        except Exception as e:  # noqa: BLE001 - every failure is counted
            with lock:
                errors[type(e).__name__ + ": " + str(e)[:80]] += 1
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)
    if conn is not None:
        conn.close()


ts = [threading.Thread(target=worker) for _ in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps({"statuses": {str(k): v for k, v in sorted(statuses.items())},
                  "errors": dict(errors), "pids": sorted(pids)}))
