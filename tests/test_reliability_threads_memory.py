"""Threads and memory: many threads dumping and loading at once, the by-value registry edited
while others dump, one dynamic class loaded from several threads, and long dump/load loops that
must keep the process's memory and the inputs' reference counts flat.

Each case runs in a child interpreter. ``SKYPICKLE_SOAK=1`` (``make soak``) makes the loops
100,000 iterations long (the CI run does 10,000).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SOAK = os.environ.get("SKYPICKLE_SOAK") == "1"

SOURCE = """
import dataclasses
import enum
import math

SCALE = 3


def helper(x):
    return math.floor(x * SCALE)


def make(k):
    def f(x):
        return helper(x) + k

    return f


class Shape:
    sides = 0

    def __init__(self, size):
        self.size = size

    def area(self):
        return self.size * self.sides


class Square(Shape):
    sides = 4


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


@dataclasses.dataclass
class Job:
    name: str
    colour: Colour = Colour.RED
"""


def run_child(body: str, timeout: int = 900) -> dict:
    code = (
        "import json, pickle, sys, threading, gc\n"
        "import skypickle\n"
        f"SOURCE = {SOURCE!r}\n"
        "ns = {'__name__': '__main__'}\n"
        "exec(SOURCE, ns)\n" + textwrap.dedent(body)
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def test_many_threads_dump_and_load_at_once():
    got = run_child(
        """
        objects = [
            ns["make"](2), ns["Square"], ns["Square"](3), ns["Job"]("x"), ns["Colour"].BLUE,
            {"data": list(range(200)), "nested": [{"k": (i, str(i))} for i in range(50)]},
        ]
        expected = [skypickle.dumps(o) for o in objects]
        errors = []
        counts = []

        def worker(seed):
            n = 0
            try:
                for i in range(300):
                    j = (seed + i) % len(objects)
                    data = skypickle.dumps(objects[j])
                    if data != expected[j]:
                        errors.append(f"different bytes for object {j}")
                    back = pickle.loads(data)
                    if j == 0 and back(2) != objects[0](2):
                        errors.append("function result differs")
                    if j == 2 and back.area() != 12:
                        errors.append("instance differs")
                    n += 1
            except Exception as exc:
                errors.append(repr(exc))
            counts.append(n)

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("RESULT " + json.dumps({"errors": errors[:5], "counts": counts}))
        """
    )
    assert got["errors"] == []
    assert got["counts"] == [300] * 8


def test_registry_edited_while_other_threads_dump(tmp_path):
    pkg = tmp_path / "regpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def f(x):\n    return x + 1\n")
    got = run_child(
        f"""
        sys.path.insert(0, {str(tmp_path)!r})
        import regpkg
        stop = threading.Event()
        kinds = {{"value": 0, "reference": 0}}
        errors = []

        def dumper():
            try:
                while not stop.is_set():
                    data = skypickle.dumps(regpkg.f)
                    kind = "value" if b"regpkg" not in data or len(data) > 120 else "reference"
                    kinds[kind] += 1
                    if pickle.loads(data)(1) != 2:
                        errors.append("wrong function")
            except Exception as exc:
                errors.append(repr(exc))

        def toggler():
            for _ in range(2000):
                skypickle.register_pickle_by_value(regpkg)
                skypickle.unregister_pickle_by_value(regpkg)
            stop.set()

        threads = [threading.Thread(target=dumper) for _ in range(3)]
        threads.append(threading.Thread(target=toggler))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        registry = sorted(skypickle.list_registry_pickle_by_value())
        result = {{"errors": errors[:5], "kinds": kinds, "registry": registry}}
        print("RESULT " + json.dumps(result))
        """
    )
    assert got["errors"] == []
    assert got["registry"] == []
    assert got["kinds"]["reference"] > 0


def test_one_class_when_loaded_from_several_threads():
    """A fresh process (no tracker entry yet) loads the same class payload from 8 threads at
    once: every thread gets the same class."""
    got = run_child(
        """
        payload = skypickle.dumps(ns["Square"])
        del ns  # nothing of the original remains; only the payload
        gc.collect()
        code = (
            "import json, pickle, sys, threading\\n"
            "data = sys.stdin.buffer.read()\\n"
            "barrier = threading.Barrier(8)\\n"
            "got = [None] * 8\\n"
            "def load(i):\\n"
            "    barrier.wait()\\n"
            "    got[i] = pickle.loads(data)\\n"
            "ts = [threading.Thread(target=load, args=(i,)) for i in range(8)]\\n"
            "[t.start() for t in ts]\\n"
            "[t.join() for t in ts]\\n"
            "print(json.dumps([len({id(c) for c in got}), got[0](2).area()]))\\n"
        )
        import subprocess
        proc = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True)
        print("RESULT " + proc.stdout.decode().strip() if proc.returncode == 0
              else "RESULT " + json.dumps(proc.stderr.decode()[-500:]))
        """
    )
    assert got == [1, 8]


def test_memory_and_refcounts_stay_flat():
    iterations = 100_000 if SOAK else 10_000
    got = run_child(
        f"""
        import psutil
        proc = psutil.Process()
        objects = [ns["make"](2), ns["Square"], ns["Square"](3), ns["Job"]("x"),
                   {{"data": list(range(100)), "s": "text" * 10}}]
        refs_before = [sys.getrefcount(o) for o in objects]

        def cycle(n):
            for i in range(n):
                o = objects[i % len(objects)]
                pickle.loads(skypickle.dumps(o))

        cycle(2000)  # warm up caches and allocator pools
        gc.collect()
        rss_before = proc.memory_info().rss
        cycle({iterations})
        gc.collect()
        rss_after = proc.memory_info().rss
        refs_after = [sys.getrefcount(o) for o in objects]
        print("RESULT " + json.dumps({{"growth": rss_after - rss_before,
                                       "refs": [refs_before, refs_after]}}))
        """
    )
    before, after = got["refs"]
    assert before == after
    # A leak of even one small object per iteration would show as megabytes here.
    assert got["growth"] < 4 * 1024 * 1024, got


def test_pickled_objects_are_freed_when_dumps_returns():
    got = run_child(
        """
        import weakref
        refs = []
        for name in ("make", "Square", "Job"):
            space = {"__name__": "__main__"}
            exec(SOURCE, space)
            obj = space[name](1) if name == "make" else space[name]
            skypickle.dumps(obj)
            refs.append(weakref.ref(obj))
            del obj, space
        gc.collect()
        print("RESULT " + json.dumps([r() is None for r in refs]))
        """
    )
    assert got == [True, True, True]


def test_receiving_a_class_again_resets_nothing_that_did_not_change():
    """In a worker, instances change class-level state; the same class arrives again (same
    payload, from another thread while an instance runs; then a payload where the sender
    changed one attribute). Only the sender's change is applied: the instances' counter and
    registry keep their values and the methods stay the same objects. (cloudpickle sets the
    whole state again each time, resetting both.)"""
    got = run_child(
        """
        src = (
            "class Counter:\\n"
            "    count = 0\\n"
            "    seen = []\\n"
            "    label = 'v1'\\n"
            "    def bump(self, x):\\n"
            "        Counter.count += 1\\n"
            "        Counter.seen.append(x)\\n"
            "        return Counter.count\\n"
        )
        space = {"__name__": "__main__"}
        exec(src, space)
        cls = space["Counter"]
        first = skypickle.dumps(cls)
        cls.label = "v2"
        changed = skypickle.dumps(cls)
        code = (
            "import json, pickle, sys, threading\\n"
            "first, changed = pickle.loads(sys.stdin.buffer.read())\\n"
            "C = pickle.loads(first)\\n"
            "bump = C.bump\\n"
            "c = C()\\n"
            "c.bump('a'); c.bump('b')\\n"
            "t = threading.Thread(target=pickle.loads, args=(first,))\\n"
            "t.start(); c.bump('c'); t.join()\\n"
            "same = pickle.loads(first) is C\\n"
            "after_same = [C.count, list(C.seen), C.label, C.bump is bump]\\n"
            "pickle.loads(changed)\\n"
            "after_changed = [C.count, list(C.seen), C.label, C.bump is bump]\\n"
            "print(json.dumps([same, after_same, after_changed]))\\n"
        )
        import subprocess
        proc = subprocess.run(
            [sys.executable, "-c", code], input=pickle.dumps((first, changed)), capture_output=True
        )
        out = proc.stdout.decode().strip() or json.dumps(proc.stderr.decode()[-800:])
        print("RESULT " + out)
        """
    )
    assert got == [True, [3, ["a", "b", "c"], "v1", True], [3, ["a", "b", "c"], "v2", True]]
