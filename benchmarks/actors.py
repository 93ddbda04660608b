"""Benchmark of the actor runtime, against baselines measured in the same run.

    PYTHONPATH=. python benchmarks/actors.py [--actors 1000] [--no-ray]

Prints: activating 1,000 actors (target <= 0.2 s; baseline: one SQLite file
per key), a durable state write (target <= 0.1 ms median; synchronous=NORMAL
and FULL; baseline: an fsync'ed atomic file write), journaled messages per
second through 1,000 actors (baseline: a thread pool calling the same handler
with no durability), recovery after a SIGKILL with 1,000 actors' state, and
the same figures on the Ray engine when Ray is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from forkman.actors.embedded import EmbeddedEngine  # noqa: E402
from forkman.actors.interface import (  # noqa: E402
    STATE_QUERY,
    Actor,
    ActorContext,
    Message,
)
from forkman.core.fs import atomic_write_text  # noqa: E402


class Counter(Actor):
    """A minimal actor: one durable counter per key."""

    def handle(self, ctx: ActorContext, message: Message) -> Mapping[str, Any]:
        if message.args.get("sleep"):
            time.sleep(float(message.args["sleep"]))
        return {"n": message.args.get("n", 0)}


def counter_factory(key: str) -> Actor:
    return Counter(key)


def _row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<52} {value:>14}  {note}")


def bench_activation(tmp: Path, actors: int) -> float:
    keys = [f"fork:pkg{i}" for i in range(actors)]
    state = tmp / "act"
    with EmbeddedEngine(state, counter_factory) as engine:
        engine.ask_many({k: Message("init") for k in keys})  # durable state for every key
    engine = EmbeddedEngine(state, counter_factory)
    start = time.perf_counter()
    engine.ask_many({k: Message(STATE_QUERY) for k in keys})
    ours = time.perf_counter() - start
    engine.shutdown()

    # baseline: one SQLite file per key (open, WAL, schema, read the state row)
    per_key = tmp / "per-key"
    per_key.mkdir()
    start = time.perf_counter()
    for key in keys:
        db = sqlite3.connect(per_key / f"{key.replace(':', '_')}.sqlite")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v TEXT)")
        db.execute("SELECT v FROM state WHERE k='state'").fetchall()
        db.close()
    base = time.perf_counter() - start
    _row(f"activate {actors} actors (state query)", f"{ours:.3f} s", "target <= 0.2 s")
    _row("  baseline: one SQLite file per key", f"{base:.3f} s", f"x{base / ours:.1f} slower")
    return ours


def bench_writes(tmp: Path, n: int = 2000) -> None:
    from forkman.actors._store import StateStore

    results = {}
    for durability in ("normal", "full"):
        store = StateStore(tmp / f"w-{durability}.sqlite", durability=durability)
        storage = store.storage("fork:attrs")
        times = []
        for i in range(n):
            t = time.perf_counter()
            storage.put("progress", {"step": i})
            times.append(time.perf_counter() - t)
        store.close()
        results[durability] = statistics.median(times) * 1000
    times = []
    for i in range(n // 10):
        t = time.perf_counter()
        atomic_write_text(tmp / "state.json", json.dumps({"step": i}))
        times.append(time.perf_counter() - t)
    base = statistics.median(times) * 1000
    _row(
        "durable state write, synchronous=NORMAL (median)",
        f"{results['normal']:.4f} ms",
        "target <= 0.1 ms; survives kill -9",
    )
    _row(
        "durable state write, synchronous=FULL (median)",
        f"{results['full']:.4f} ms",
        "also survives power loss",
    )
    _row(
        "  baseline: fsync'ed atomic JSON file",
        f"{base:.4f} ms",
        f"x{base / results['normal']:.0f} (NORMAL) x{base / results['full']:.1f} (FULL)",
    )


def bench_throughput(tmp: Path, actors: int, per_actor: int) -> float:
    keys = [f"fork:pkg{i}" for i in range(actors)]
    total = actors * per_actor
    with EmbeddedEngine(tmp / "tp", counter_factory) as engine:
        start = time.perf_counter()
        futures = [
            engine.send(k, Message("work", {"n": i})) for i in range(per_actor) for k in keys
        ]
        for f in futures:
            f.result()
        ours = total / (time.perf_counter() - start)
    ctx: Any = None
    actor = Counter("x")
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        start = time.perf_counter()
        list(pool.map(lambda i: actor.handle(ctx, Message("work", {"n": i})), range(total)))
        base = total / (time.perf_counter() - start)
    _row(
        f"journaled messages/s through {actors} actors ({total} msgs)",
        f"{ours:,.0f}/s",
        "intent + outcome durable per message",
    )
    _row(
        "  baseline: thread pool, no durability",
        f"{base:,.0f}/s",
        f"x{base / ours:.1f} faster (the price of durability)",
    )
    return ours


_CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from benchmarks.actors import counter_factory
from forkman.actors.embedded import EmbeddedEngine
from forkman.actors.interface import Message
engine = EmbeddedEngine(Path(sys.argv[1]), counter_factory)
keys = [f"fork:pkg{i}" for i in range(int(sys.argv[3]))]
print("ready", flush=True)
while True:
    engine.ask_many({k: Message("work", {"sleep": 0.005}) for k in keys})
"""


def bench_recovery(tmp: Path, actors: int) -> None:
    state = tmp / "rec"
    with EmbeddedEngine(state, counter_factory) as engine:
        engine.ask_many({f"fork:pkg{i}": Message("init") for i in range(actors)})
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(state), str(ROOT), str(actors)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from forkman.actors._store import StateStore

    probe = StateStore(state / "actors.sqlite")
    interrupted = sum(1 for s in probe.statuses().values() if s.intent is not None)
    probe.close()
    start = time.perf_counter()
    engine = EmbeddedEngine(state, counter_factory)
    engine.recover_all()
    statuses = engine.statuses()
    elapsed = time.perf_counter() - start
    engine.shutdown()
    assert not any(s.intent for s in statuses.values())
    _row(
        f"recover after SIGKILL ({len(statuses)} actors' state)",
        f"{elapsed * 1000:.1f} ms",
        f"{interrupted} interrupted operations resumed",
    )


def bench_ray(tmp: Path, actors: int) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        print("ray: not installed (pip install 'forkman[ray]'); skipped")
        return
    from forkman.actors.ray_engine import RayEngine

    start = time.perf_counter()
    engine = RayEngine(tmp / "ray", counter_factory)
    init = time.perf_counter() - start
    keys = [f"fork:pkg{i}" for i in range(actors)]
    try:
        print(f"ray engine ({engine.shards} shard actors, ray.init + shards {init:.1f} s):")
        engine.ask_many({k: Message("init") for k in keys})
        start = time.perf_counter()
        engine.ask_many({k: Message(STATE_QUERY) for k in keys})
        _row(f"activate {actors} actors (state query)", f"{time.perf_counter() - start:.3f} s")
        per_actor = 3
        start = time.perf_counter()
        futures = [
            engine.send(k, Message("work", {"n": i})) for i in range(per_actor) for k in keys
        ]
        for f in futures:
            f.result()
        rate = actors * per_actor / (time.perf_counter() - start)
        _row(f"journaled messages/s through {actors} actors", f"{rate:,.0f}/s")
        import ray as ray_mod

        ray_mod.kill(engine._shards[0], no_restart=False)
        start = time.perf_counter()
        engine.ask_many({k: Message("work") for k in keys[:50]})
        _row(
            "first replies after losing a shard actor (50 keys)",
            f"{(time.perf_counter() - start) * 1000:.0f} ms",
            "shard restarted, state from store",
        )
    finally:
        engine.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--actors", type=int, default=1000)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    print(f"forkman actors benchmark ({os.cpu_count()} cores, {args.actors} actors)")
    print("embedded engine (SQLite WAL):")
    with tempfile.TemporaryDirectory() as tmp:
        bench_activation(Path(tmp), args.actors)
        bench_writes(Path(tmp))
        bench_throughput(Path(tmp), args.actors, 10)
        bench_recovery(Path(tmp), args.actors)
        if not args.no_ray:
            bench_ray(Path(tmp), args.actors)


if __name__ == "__main__":
    main()
