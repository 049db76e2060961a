-- wrk script for the echo app (../shared/bench/apps/echo.py, hyper-hello --app echo):
-- POST a 1 MiB body on every request (the shared lua/post4k.lua posts 4 KiB).
wrk.method = "POST"
wrk.body = string.rep("a", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
