#!/usr/bin/env python3
"""Python twin of `shmproc bench collections`: Manager().dict() / .list() used from children.

Standard library only. The same workloads as the Rust side, each run by 1 and by 2 forked
processes started together (a Barrier); the rate is all operations over the slowest process's
time. Prints one JSON line per figure:
    {"workload": ..., "procs": N, "system": ..., "unit": "per_sec", "value": ..., "lost": ...}

    python3 benches/python/bench_manager.py [--ops N]
"""

import argparse
import json
import multiprocessing as mp
import sys
import time

FORK = mp.get_context("fork")
KEYS = 1000
HITS = "hits"


def worker(op, d, l, lock, start, times, p, ops):
    keys = [f"key-{i}" for i in range(KEYS)]
    d[HITS], len(l)  # connect to the manager before the clock starts
    start.wait()
    t0 = time.perf_counter()
    for i in range(ops):
        key = keys[(i + p * KEYS // 2) % KEYS]
        if op == "dict get":
            d[key]
        elif op == "dict set":
            d[key] = i
        elif op == "dict update (atomic +1)":
            with lock:  # a Manager dict has no atomic update: hold a lock around get+set
                d[HITS] = d[HITS] + 1
        else:
            l.append(i)
    times[p] = time.perf_counter() - t0


def measure(manager, op, procs, ops):
    d = manager.dict({f"key-{i}": i for i in range(KEYS)})
    d[HITS] = 0
    l = manager.list()
    lock = FORK.Lock()
    start = FORK.Barrier(procs)
    times = FORK.Array("d", procs)
    children = [FORK.Process(target=worker, args=(op, d, l, lock, start, times, p, ops))
                for p in range(procs)]
    for c in children:
        c.start()
    for c in children:
        c.join()
        if c.exitcode != 0:
            raise SystemExit(f"{op} worker failed with {c.exitcode}")
    total = ops * procs
    lost = total - d[HITS] if op == "dict update (atomic +1)" else None
    return total / max(times[:]), lost


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=3000, help="operations per process")
    args = ap.parse_args()
    with FORK.Manager() as manager:
        for procs in (1, 2):
            for op in ("dict get", "dict set", "dict update (atomic +1)", "list append"):
                print(f"  python: {op} x{procs}", file=sys.stderr, flush=True)
                rate, lost = measure(manager, op, procs, args.ops)
                system = "multiprocessing Manager().list()" if op == "list append" \
                    else "multiprocessing Manager().dict()"
                print(json.dumps({"workload": op, "procs": procs, "system": system,
                                  "unit": "per_sec", "value": rate, "lost": lost}), flush=True)


if __name__ == "__main__":
    main()
