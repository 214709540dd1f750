"""The front door's guards with psycopg 3: the connection limit, cancelling a running query,
and a client that hangs up mid-query (the query must stop, not run to the timeout). Run by
tests/it/postgres.rs with a service whose query timeout is 120 s:

    python guards.py PG_HOST PG_PORT HTTP_URL TOKEN MAX_CONNECTIONS
"""
import subprocess
import sys
import threading
import time
import urllib.request

import psycopg

host, port, http, token, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
DSN = dict(host=host, port=port, user="analyst", dbname="gatewatch", password=token)
# A query that runs until stopped: a three-way cross join of events, filtered so that the count
# cannot be answered from the tables' row counts alone.
SLOW = "SELECT count(*) FROM events a, events b, events c WHERE length(a.server) + length(b.server) + length(c.server) > 0"


def running():
    req = urllib.request.Request(http + "/metrics", headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("gatewatch_sql_queries_running "):
                return int(float(line.split()[1]))
    sys.exit("no gatewatch_sql_queries_running in /metrics")


def wait_for(what, check, seconds):
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


# The connection limit: `limit` open connections, the next is turned away with 53300.
held = [psycopg.connect(**DSN) for _ in range(limit)]
try:
    psycopg.connect(**DSN).close()
    sys.exit(f"connection {limit + 1} was let in")
except psycopg.OperationalError as e:
    if "too many clients" not in str(e):
        sys.exit(f"connection {limit + 1} refused for another reason: {e}")
for c in held:
    c.close()
# Closed connections give their places back.
for _ in range(100):
    try:
        psycopg.connect(**DSN).close()
        break
    except psycopg.OperationalError:
        time.sleep(0.05)
else:
    sys.exit("closed connections did not free their places")
print("connection limit: ok")

# Cancel: a CancelRequest stops the running query with 57014.
with psycopg.connect(**DSN, autocommit=True) as conn:
    def cancel_when_running():
        wait_for("the slow query to run", lambda: running() >= 1, 30)
        conn.cancel()

    t = threading.Thread(target=cancel_when_running)
    t.start()
    started = time.monotonic()
    try:
        conn.execute(SLOW)
        sys.exit("the slow query finished instead of being cancelled")
    except psycopg.errors.QueryCanceled:
        pass
    t.join()
    if time.monotonic() - started > 60:
        sys.exit("the cancel took more than a minute")
    wait_for("the cancelled query to stop", lambda: running() == 0, 10)
    # The connection is still usable.
    assert conn.execute("SELECT 1").fetchone()[0] == 1
print("cancel: ok")

# Hang-up: a client killed mid-query; its query stops long before the 120 s timeout.
child = subprocess.Popen(
    [sys.executable, "-c", "import psycopg,sys; c = psycopg.connect(host=sys.argv[1], port=int(sys.argv[2]), user='x', dbname='gatewatch', password=sys.argv[3]); c.execute(sys.argv[4])", host, str(port), token, SLOW],
    stderr=subprocess.PIPE,
)


def child_runs_its_query():
    if child.poll() is not None:
        sys.exit(f"the hanging client ended before it could be killed: {child.stderr.read().decode()}")
    return running() >= 1


wait_for("the hanging client's query to run", child_runs_its_query, 30)
child.kill()
child.wait()
killed = time.monotonic()
wait_for("the query of the client that hung up to stop", lambda: running() == 0, 10)
print(f"hang-up: the query stopped {time.monotonic() - killed:.2f} s after the client died")
print("guards.py: all checks passed")
