#!/usr/bin/env python3
"""Instructions per request of `users.setStatus` and `GET /api/info`, under callgrind.

    cargo build --profile profiling -p statusd
    bench/callgrind_write.py [--server target/profiling/statusd] [--requests 3000]

Wall-clock figures drift by 20-30 % on this shared VM (BENCHMARKS.md); instruction
counts do not. The server runs under `valgrind --tool=callgrind` on a fresh SQLite
database (the admin, 64 users made through users.create before valgrind starts); the
script warms both routes up, then for each phase zeroes the counters
(`callgrind_control -z`), sends the requests from CLIENTS keep-alive connections
(the admin changing other users' statuses with distinct messages, as phase 1 of the
suite), and dumps (`callgrind_control -d`). An idle phase of the same length measures
what the server's timers cost meanwhile. Output: total instructions per request of
each phase and the inclusive share of the functions that matter, from
`callgrind_annotate --inclusive=yes`, into target/bench-work-callgrind/.

valgrind runs one thread at a time, so batching in the writer is whatever the queue
holds when the writer thread gets its turn: the report prints jobs per commit from
/metrics so the two sides can be compared with the native run.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

ADMIN_USER, ADMIN_PASS = "benchadmin", "bench-admin-pass"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def env_for(port, db):
    e = dict(os.environ)
    e.update({
        "PORT": str(port), "BIND_IP": "127.0.0.1", "ROOT_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": f"sqlite://{db}", "ADMIN_USERNAME": ADMIN_USER,
        "ADMIN_PASS": ADMIN_PASS, "ADMIN_EMAIL": "benchadmin@bench.local",
        "OVERWRITE_SETTING_API_Enable_Rate_Limiter": "false", "MAX_CONNECTIONS_PER_IP": "0",
        "RUST_LOG": "warn",
    })
    return e


def call(port, method, path, body=None, auth=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    h = {"Content-Type": "application/json"} if body is not None else {}
    if auth:
        h["X-User-Id"], h["X-Auth-Token"] = auth
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    return r.status, data


def wait_up(port, proc, limit=600):
    t = time.time()
    while time.time() - t < limit:
        if proc.poll() is not None:
            sys.exit(f"the server exited ({proc.returncode})")
        try:
            st, _ = call(port, "GET", "/api/info")
            if st == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("the server did not come up")


def login(port):
    st, data = call(port, "POST", "/api/v1/login", {"user": ADMIN_USER, "password": ADMIN_PASS})
    assert st == 200, data
    d = json.loads(data)["data"]
    return d["userId"], d["authToken"]


def load(port, n, clients, make):
    """n requests from `clients` keep-alive connections; make(worker, i) -> (method, path, body)."""
    errors = []

    def worker(w):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for i in range(w, n, clients):
            m, p, b, a = make(w, i)
            st, data = call(port, m, p, b, a, conn=c)
            if st != 200:
                errors.append((st, data[:200]))

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        sys.exit(f"{len(errors)} errors, e.g. {errors[0]}")


def metric(port, name):
    _, data = call(port, "GET", "/metrics")
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="target/profiling/statusd")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--work", default="target/bench-work-callgrind")
    ap.add_argument("--top", type=int, default=45)
    a = ap.parse_args()
    server = os.path.abspath(a.server)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    work = os.path.abspath(a.work)
    db = os.path.join(work, "statusd.db")

    # 1. natively: schema, admin, 64 users
    port = free_port()
    p = subprocess.Popen([server], env=env_for(port, db), stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(work, "native.log"), "w"))
    wait_up(port, p)
    admin = login(port)
    users = []
    for i in range(64):
        st, data = call(port, "POST", "/api/v1/users.create",
                        {"username": f"cg{i:03}", "name": f"CG {i}", "email": f"cg{i}@bench.local",
                         "password": "bench-user-pass"}, admin)
        assert st == 200, data
        users.append(json.loads(data)["user"]["_id"])
    p.send_signal(signal.SIGTERM)
    p.wait()

    # 2. under callgrind
    port = free_port()
    out = os.path.join(work, "callgrind.out")
    p = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", server],
        env=env_for(port, db), stdout=subprocess.DEVNULL, cwd=work,
        stderr=open(os.path.join(work, "valgrind.log"), "w"))
    wait_up(port, p)
    admin = login(port)
    statuses = ["away", "busy", "online"]

    def info(w, i):
        return "GET", "/api/info", None, None

    def set_status(tag):
        def make(w, i):
            return ("POST", "/api/v1/users.setStatus",
                    {"userId": users[i % len(users)], "status": statuses[i % 3],
                     "message": f"{tag}{i}"}, admin)
        return make

    load(port, 300, 16, info)
    load(port, 300, 16, set_status("warm"))
    results = {}

    def phase(name, fn):
        subprocess.run(["callgrind_control", "-z", str(p.pid)], check=True, capture_output=True)
        c0, j0 = metric(port, "statusd_commit_batch_size_count"), metric(port, "statusd_commit_batch_size_sum")
        t = time.time()
        fn()
        took = time.time() - t
        c1, j1 = metric(port, "statusd_commit_batch_size_count"), metric(port, "statusd_commit_batch_size_sum")
        subprocess.run(["callgrind_control", "-d", name, str(p.pid)], check=True, capture_output=True)
        results[name] = {"secs": took, "commits": c1 - c0, "jobs": j1 - j0}
        return took

    n = a.requests
    took = phase("info", lambda: load(port, n, a.clients, info))
    phase("setstatus", lambda: load(port, n, a.clients, set_status("m")))
    phase("idle", lambda: time.sleep(took))
    p.send_signal(signal.SIGTERM)
    p.wait()

    dumps = sorted(f for f in os.listdir(work) if f.startswith("callgrind.out."))
    report = []
    for name in ("info", "setstatus", "idle"):
        f = next((d for d in dumps if open(os.path.join(work, d), errors="replace").read(4000).find(f"desc: Trigger: dump {name}") >= 0), None)
        if f is None:
            report.append(f"## {name}: no dump found")
            continue
        ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", os.path.join(work, f)],
                             capture_output=True, text=True).stdout
        open(os.path.join(work, f"{name}.annotate.txt"), "w").write(ann)
        m = re.search(r"([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", ann)
        total = int(m.group(1).replace(",", "")) if m else 0
        results[name]["instructions"] = total
        per = total / n if name != "idle" else total
        r = results[name]
        report.append(f"## {name}: {total:,} instructions"
                      + (f" = {per:,.0f} per request" if name != "idle" else f" in {r['secs']:.1f} s idle")
                      + f"; {r['commits']:.0f} commits, {r['jobs']:.0f} jobs; wall {r['secs']:.1f} s")
        lines = [l for l in ann.splitlines() if re.match(r"\s*[\d,]+ \(", l)]
        report.extend(lines[: a.top])
    text = "\n".join(report)
    open(os.path.join(work, "report.txt"), "w").write(text + "\n")
    json.dump(results, open(os.path.join(work, "results.json"), "w"), indent=1)
    print(text)
    i, s, idle = (results.get(k, {}).get("instructions", 0) for k in ("info", "setstatus", "idle"))
    if i and s:
        print(f"\nper request: info {i / n:,.0f}, setStatus {s / n:,.0f} instructions "
              f"(idle timers over the same time: {idle / n:,.0f} per request); ratio {s / i:.2f}")


if __name__ == "__main__":
    main()
