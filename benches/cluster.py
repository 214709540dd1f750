"""A cluster of three gatewatch members against one instance holding everything, in one run.

Usage (benches/cluster.sh runs it): python3 benches/cluster.py BIN DAYS ROUNDS

On a tansu broker with a 6-partition topic, fed DAYS of the simulated March 2020 story:
- one instance, no cluster, consuming the topic as a group of its own;
- three members of one cluster (state store in a temporary directory, 1-minute checkpoints,
  session timeout 6 s: tansu answers a JoinGroup after about half of it).

It measures, alternating sides in every round:
- fan-out: each question asked of the single instance and of member 1 (which asks all three),
  median seconds; ratio = single / cluster (>= 1: the cluster is faster);
- bytes moved: what the members' Flight endpoints send (ss's tcp_info) while member 1 answers
  the per-server peak over the whole range and over its first day only (the whole range has
  DAYS times the `concurrency` rows);
- recovery: member 3 killed with -9; seconds until member 1 answers the per-server peak for
  every server again, equal to the answer before the kill.
Every answer of the cluster is checked equal to the single instance's first.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN, DAYS, ROUNDS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 19400 + os.getpid() % 500
BROKER = f"127.0.0.1:{PORT}"
TOPIC = "bench.cluster"

QUESTIONS = {
    "peak per server": "SELECT server, max(sessions) AS peak FROM concurrency GROUP BY server ORDER BY server",
    "p99 setup per server": "SELECT server, hdr_quantile(hdr_merge(hist), 0.99) AS p99 FROM latency WHERE metric = 'setup' GROUP BY server ORDER BY server",
    "events by type": "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY type",
    "08:30-09:15 window": "SELECT server, max(sessions) AS peak, sum(connects) AS connects FROM concurrency WHERE ts >= '2020-03-16T08:30:00Z' AND ts < '2020-03-16T09:15:00Z' GROUP BY server ORDER BY server",
    "sessions per user (top 5)": "SELECT \"user\", count(*) AS n FROM sessions GROUP BY \"user\" ORDER BY n DESC, \"user\" LIMIT 5",
}
PEAK_FIRST_DAY = "SELECT server, max(sessions) AS peak FROM concurrency WHERE ts < '2020-03-17T00:00:00Z' GROUP BY server ORDER BY server"


def sql(url, q, timeout=120):
    req = urllib.request.Request(url + "/api/sql", data=q.encode(), headers={"Accept": "text/csv"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def timed(url, q):
    t = time.perf_counter()
    out = sql(url, q)
    return time.perf_counter() - t, out


def flight_ports(store):
    ports = []
    for name in os.listdir(f"{store}/members"):
        if name.endswith(".json"):
            with open(f"{store}/members/{name}") as f:
                ports.append(json.load(f)["flight"].rsplit(":", 1)[1])
    return ports


def flight_bytes_sent(ports):
    """Bytes the members' Flight endpoints have sent on their open connections (ss's tcp_info)."""
    filt = " or ".join(f"sport = :{p}" for p in ports)
    out = subprocess.run(["ss", "-tinH", "state", "established", f"( {filt} )"], capture_output=True,
                         text=True, check=True).stdout
    total = 0
    for word in out.split():
        if word.startswith("bytes_acked:"):
            total += int(word.split(":")[1])
    return total


def start(config, http, group=None):
    args = [BIN, "run", "--config", config, "--http", f"127.0.0.1:{http}", "--pg", "off"]
    if group:
        args += ["--group", group]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        if "open http" in line:
            break
    return p


def ready(url):
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as r:
            return r.status == 200
    except Exception:
        return False


def wait(what, f, timeout=600):
    t = time.time()
    while not f():
        if time.time() - t > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


def main():
    subprocess.run(["bash", f"{ROOT}/tests/kafka/tansu.sh", "start", str(PORT), str(os.getpid())], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["bash", f"{ROOT}/tests/kafka/tansu.sh", "topic", str(PORT), TOPIC, "6"], check=True,
                   stderr=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="gatewatch-cluster-bench-")
    common = (f'[kafka]\nbrokers = "{BROKER}"\ntopics = ["{TOPIC}"]\n'
              '[kafka.properties]\n"session.timeout.ms" = 6000\n"heartbeat.interval.ms" = 500\n'
              '[checkpoint]\ninterval = "1m"\n[engine]\nretention = "30d"\nsession_timeout = "12h"\n')
    single_cfg, cluster_cfg = f"{work}/single.toml", f"{work}/cluster.toml"
    with open(single_cfg, "w") as f:
        f.write(common)
    with open(cluster_cfg, "w") as f:
        f.write(common + f'[cluster]\nstate_store = "file://{work}/store"\n')
    procs = []
    try:
        single = start(single_cfg, PORT + 1, group="bench-single")
        procs.append(single)
        members = [start(cluster_cfg, PORT + 2 + i, group="bench-cluster") for i in range(3)]
        procs += members
        s_url = f"http://127.0.0.1:{PORT + 1}"
        m_urls = [f"http://127.0.0.1:{PORT + 2 + i}" for i in range(3)]
        wait("the cluster to form", lambda: all(ready(u) for u in m_urls))
        t = time.time()
        subprocess.run([BIN, "simulate", "--start", "2020-03-16", "--days", str(DAYS), "--seed", "1",
                        "--brokers", BROKER, "--topic", TOPIC], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        count = "SELECT count(*) AS n FROM events"

        def settled():
            try:
                a, b = sql(s_url, count), sql(m_urls[0], count)
                time.sleep(3)
                return a == b == sql(s_url, count) == sql(m_urls[0], count) and a != "n\n0\n"
            except Exception:
                return False
        wait("both sides to apply every event", settled)
        events = int(sql(s_url, count).split()[1])
        rows = int(sql(s_url, "SELECT count(*) AS n FROM concurrency").split()[1])
        print(f"{events} events ({DAYS} days), {rows} concurrency rows; produced and applied in {time.time() - t:.0f} s")

        # Fan-out, alternating sides.
        times = {q: ([], []) for q in QUESTIONS}
        for r in range(ROUNDS):
            for name, q in QUESTIONS.items():
                order = [(0, s_url), (1, m_urls[0])] if r % 2 == 0 else [(1, m_urls[0]), (0, s_url)]
                answers = {}
                for side, url in order:
                    dt, out = timed(url, q)
                    times[name][side].append(dt)
                    answers[side] = out
                if answers[0] != answers[1]:
                    raise SystemExit(f"the cluster and the single instance differ on {name}:\n{answers[0]}\n{answers[1]}")
        print(f"\nfan-out over 3 members vs one instance holding everything ({ROUNDS} rounds, medians):")
        ratios = []
        for name in QUESTIONS:
            s, c = statistics.median(times[name][0]), statistics.median(times[name][1])
            ratios.append(s / c)
            print(f"  {name:28s} single {s * 1000:7.1f} ms   cluster {c * 1000:7.1f} ms   ratio {s / c:5.2f}")
        print(f"  median ratio {statistics.median(ratios):.2f}")

        # Bytes the members send the member asked, for the per-server peak (its Flight
        # connections are kept from one query to the next, so the counters are comparable).
        ports = flight_ports(f"{work}/store")
        for label, q, rows_q in (
            ("whole range", QUESTIONS["peak per server"], "SELECT count(*) AS n FROM concurrency"),
            ("first day", PEAK_FIRST_DAY, "SELECT count(*) AS n FROM concurrency WHERE ts < '2020-03-17T00:00:00Z'"),
        ):
            moved = []
            sql(m_urls[0], q)
            for _ in range(5):
                before = flight_bytes_sent(ports)
                sql(m_urls[0], q)
                moved.append(flight_bytes_sent(ports) - before)
            n = int(sql(s_url, rows_q).split()[1])
            print(f"  bytes sent by the members' Flight endpoints, per-server peak over the {label}: median {statistics.median(moved):,.0f} ({n:,} concurrency rows)")

        # Recovery from a kill -9.
        before = sql(m_urls[0], QUESTIONS["peak per server"])
        members[2].send_signal(signal.SIGKILL)
        killed = time.time()

        def answers_again():
            try:
                return sql(m_urls[0], QUESTIONS["peak per server"], timeout=30) == before
            except Exception:
                return False
        def restored():
            n = 0
            for u in m_urls[:2]:
                try:
                    with urllib.request.urlopen(u + "/readyz", timeout=5) as r:
                        n += sum(1 for l in r.read().decode().splitlines() if l.endswith(" restored"))
                except Exception:
                    return False
            return n == 6
        wait("the survivors to hold and restore every partition", restored, timeout=300)
        held = time.time() - killed
        wait("every server to answer again", answers_again, timeout=300)
        print(f"\nkill -9 of member 3: the survivors held and had restored every partition {held:.1f} s later; "
              f"every server answered again (equal to before) {time.time() - killed:.1f} s later "
              f"(session timeout 6 s, checkpoint interval 1 min)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
