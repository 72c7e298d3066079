#!/usr/bin/env python3
"""Python twins of `shmproc bench all`: the same workloads with `multiprocessing`.

Standard library only. Prints one JSON line per figure:
    {"workload": ..., "system": ..., "unit": "per_sec" | "us", "value": ...}
with the workload names the Rust side uses, so `bench all` puts both in one table.
`per_sec` figures are operations per second (higher is better); `us` figures are the median
microseconds per operation (lower is better).

    python3 benches/python/bench_mp.py [--quick] [--only SUBSTRING]
"""

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

FORK = mp.get_context("fork")
SPAWN = mp.get_context("spawn")


def emit(workload, system, unit, value):
    print(json.dumps({"workload": workload, "system": system, "unit": unit, "value": value}),
          flush=True)


def progress(msg):
    print(f"  python: {msg}", file=sys.stderr, flush=True)


def median_us(samples):
    return statistics.median(samples) * 1e6


# --- counters: 2 processes increment one shared counter, started together ------------------

def _unlocked(v, start, n):
    start.wait()
    for _ in range(n):
        v.value += 1  # get and set, each under the Value's lock: loses updates


def _value_lock(v, start, n):
    start.wait()
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def _separate_lock(v, lock, start, n):
    start.wait()
    for _ in range(n):
        with lock:
            v.value += 1


def counter(workload, system, target, n, procs=2, with_lock=False):
    v = FORK.Value("q", 0)
    start = FORK.Event()
    extra = (FORK.Lock(),) if with_lock else ()
    ps = [FORK.Process(target=target, args=(v, *extra, start, n)) for _ in range(procs)]
    for p in ps:
        p.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    start.set()
    for p in ps:
        p.join()
    elapsed = time.perf_counter() - t0
    return procs * n / elapsed


def counters(q):
    n = 100_000 if q else 500_000
    rounds = 3 if q else 5
    cases = [
        ("counter, Value without lock", "multiprocessing Value, value += 1", _unlocked, False),
        ("counter, Value lock", "multiprocessing Value, with get_lock()", _value_lock, False),
        ("counter, separate Lock", "multiprocessing Lock + Value", _separate_lock, True),
    ]
    for workload, system, target, with_lock in cases:
        rates = [counter(workload, system, target, n, with_lock=with_lock) for _ in range(rounds)]
        emit(workload, system, "per_sec", statistics.median(rates))


# --- Event ping-pong ---------------------------------------------------------------------

def _event_server(ping, pong, n):
    for _ in range(n):
        ping.wait()
        ping.clear()
        pong.set()


def event_pingpong(q):
    n = 1_000 if q else 5_000
    ping, pong = FORK.Event(), FORK.Event()
    p = FORK.Process(target=_event_server, args=(ping, pong, n))
    p.start()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        ping.set()
        pong.wait()
        pong.clear()
        samples.append(time.perf_counter() - t0)
    p.join()
    emit("Event ping-pong", "multiprocessing Event pair", "us", median_us(samples))


# --- Queue throughput: one producer process ------------------------------------------------

def _producer(queue, size, n):
    payload = b"\x07" * size
    for _ in range(n):
        queue.put(payload)


def queue_stream(size, n):
    queue = FORK.Queue()
    p = FORK.Process(target=_producer, args=(queue, size, n))
    t0 = time.perf_counter()
    p.start()
    for _ in range(n):
        queue.get()
    elapsed = time.perf_counter() - t0
    p.join()
    return n / elapsed


def queues(q):
    for size, name, n in [(8, "Queue 8 B", 50_000), (1024, "Queue 1 KiB", 50_000),
                          (65536, "Queue 64 KiB", 5_000)]:
        n = n // 5 if q else n
        rates = [queue_stream(size, n) for _ in range(3)]
        emit(name, "multiprocessing Queue", "per_sec", statistics.median(rates))


# --- Pipe round trip -----------------------------------------------------------------------

def _echo(conn, n):
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def pipe_round_trip(q):
    n = 2_000 if q else 10_000
    a, b = FORK.Pipe()
    p = FORK.Process(target=_echo, args=(b, n))
    p.start()
    msg = b"\x01" * 8
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        a.send_bytes(msg)
        a.recv_bytes()
        samples.append(time.perf_counter() - t0)
    p.join()
    emit("Pipe round trip 8 B", "multiprocessing Pipe", "us", median_us(samples))


# --- process start -------------------------------------------------------------------------

def _noop():
    pass


def starts(q):
    for ctx, workload, n in [(FORK, "fork start + join", 30 if q else 200),
                             (SPAWN, "spawn start + join", 5 if q else 30)]:
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            p = ctx.Process(target=_noop)
            p.start()
            p.join()
            samples.append(time.perf_counter() - t0)
        emit(workload, f"multiprocessing Process ({ctx.get_start_method()})", "us",
             median_us(samples))


# --- pools ---------------------------------------------------------------------------------

def echo(n):
    return n


def square(n):
    return n * n


MAP_ITEMS = 100_000


def emit_map_rate(pool, q):
    rates = []
    for _ in range(3 if q else 9):
        t0 = time.perf_counter()
        got = pool.map(square, range(MAP_ITEMS))
        rates.append(MAP_ITEMS / (time.perf_counter() - t0))
        assert len(got) == MAP_ITEMS and got[-1] == (MAP_ITEMS - 1) ** 2
    emit("Pool.map 100k items", "multiprocessing Pool.map", "per_sec", statistics.median(rates))


def pool_map(q):
    """`bench processes` runs only this: Pool.map of 100,000 trivial items on 2 workers."""
    with FORK.Pool(2) as pool:
        pool.map(square, range(MAP_ITEMS))  # a full-size warm-up, as the Rust side does
        emit_map_rate(pool, q)


def pools(q):
    trips = 1_000 if q else 5_000
    with FORK.Pool(2) as pool:
        for _ in range(100):
            pool.apply(echo, (3,))
        samples = []
        for _ in range(trips):
            t0 = time.perf_counter()
            pool.apply(echo, (3,))
            samples.append(time.perf_counter() - t0)
        emit("Pool task round trip", "multiprocessing Pool.apply", "us", median_us(samples))
        emit_map_rate(pool, q)
    with ProcessPoolExecutor(2, mp_context=FORK) as ex:
        for _ in range(100):
            ex.submit(echo, 3).result()
        samples = []
        for _ in range(trips):
            t0 = time.perf_counter()
            ex.submit(echo, 3).result()
            samples.append(time.perf_counter() - t0)
        emit("Pool task round trip", "ProcessPoolExecutor.submit", "us", median_us(samples))


# --- Manager -------------------------------------------------------------------------------

def manager(q):
    n = 1_000 if q else 5_000
    with FORK.Manager() as m:
        d = m.dict()
        samples = []
        for i in range(n):
            t0 = time.perf_counter()
            d["k"] = i
            d["k"]
            samples.append((time.perf_counter() - t0) / 2)
        emit("Manager dict get/set", "multiprocessing Manager().dict()", "us",
             median_us(samples))


GROUPS = [("counters", counters), ("Event ping-pong", event_pingpong), ("queues", queues),
          ("Pipe round trip", pipe_round_trip), ("process start", starts), ("pools", pools),
          ("Manager dict", manager)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts (seconds, not minutes)")
    ap.add_argument("--only", help="run only the groups whose name contains this")
    args = ap.parse_args()
    # Groups run only when asked for by name (`bench processes` runs "Pool.map only").
    extra = [("Pool.map only", pool_map)]
    for name, group in GROUPS + (extra if args.only else []):
        if args.only and args.only not in name:
            continue
        progress(name)
        group(args.quick)


if __name__ == "__main__":
    main()
