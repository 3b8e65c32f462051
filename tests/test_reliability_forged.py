"""Forged pickles: skypickle's load side must answer garbage with a Python exception, never a
crash. Each campaign runs in a child interpreter (a crash there fails the test with its signal
instead of taking pytest down) with a fixed seed, so a failure can be replayed.

``SKYPICKLE_SOAK=1`` (``make soak``) runs the campaigns 20 times longer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SOAK = os.environ.get("SKYPICKLE_SOAK") == "1"
SCALE = 20 if SOAK else 1

CHILD_PRELUDE = """
import json
import pickle
import random
import sys
import types

import skypickle
from skypickle import _skypickle as core

rng = random.Random(SEED)
outcomes = {}


def record(kind):
    outcomes[kind] = outcomes.get(kind, 0) + 1
"""


def _cap_address_space():
    """Forged length fields make the stdlib unpickler try huge allocations (a memo index of
    2**32 resizes its memo): cap the child at 2 GiB so they fail at once with MemoryError."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = 2 << 30
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def run_campaign(body: str, seed: int, iterations: int, timeout: int = 600) -> dict:
    code = CHILD_PRELUDE.replace("SEED", str(seed)) + textwrap.dedent(body)
    code += "\nprint('OUTCOMES ' + json.dumps(outcomes))\n"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(iterations)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_cap_address_space,
    )
    assert proc.returncode == 0, (
        f"child exited with {proc.returncode} (negative: killed by that signal)\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("OUTCOMES ")][-1]
    return json.loads(line[len("OUTCOMES ") :])


RECONSTRUCTOR_FUZZ = """
iterations = int(sys.argv[1])
names = core._WIRE_NAMES


def sample_code():
    return (lambda x, y=2: x + y).__code__


def closure_code():
    k = 1
    return (lambda x: x + k).__code__


pool = [
    None, True, 0, 1, -1, 2**70, -(2**63), 3.5, float("nan"), "", "x", "3.11", "__main__",
    "_abc_impl", b"", b"\\x00\\x01", (), (1,), ("a", "b"), [], [1, 2], {}, {"a": 1}, {0: 1},
    {1: "x"}, {"__name__": "n"}, set(), frozenset({1}), sample_code(), closure_code(),
    types.CellType(), types.CellType(5), (types.CellType(),), len, print, object, type, int,
    dict, types.ModuleType("m"), lambda: 1, pickle.PickleBuffer(b"ab"), Ellipsis,
    NotImplemented, sys, type("C", (), {}), ValueError("x"),
]


def random_value(depth=0):
    r = rng.random()
    if depth < 2 and r < 0.15:
        return tuple(random_value(depth + 1) for _ in range(rng.randint(0, 4)))
    if depth < 2 and r < 0.25:
        keys = ["a", "b", 0, 1, 5, None, "__name__", "__qualname__", "_abc_impl"]
        return {rng.choice(keys): random_value(depth + 1) for _ in range(rng.randint(0, 3))}
    return rng.choice(pool)


for i in range(iterations):
    op = rng.randrange(-2, len(names) + 2) if rng.random() < 0.95 else rng.choice(pool)
    args = [random_value() for _ in range(rng.randint(0, 9))]
    try:
        core._reconstruct(op, *args)
        record("returned")
    except Exception as exc:
        record(type(exc).__name__)
    # The named entry points too (what older or cloudpickle-style payloads call).
    name = rng.choice(names)
    try:
        getattr(core, name)(*args)
        record("named returned")
    except Exception as exc:
        record("named " + type(exc).__name__)
"""


def test_every_reconstructor_answers_garbage_with_an_exception():
    outcomes = run_campaign(RECONSTRUCTOR_FUZZ, seed=20261126, iterations=4000 * SCALE)
    total = sum(v for k, v in outcomes.items() if not k.startswith("named"))
    assert total == 4000 * SCALE
    # Nearly everything is refused, with the types pickle's users expect.
    refused = sum(v for k, v in outcomes.items() if k in ("TypeError", "ValueError"))
    assert refused > total * 0.8, outcomes


MUTATED_PAYLOADS = """
iterations = int(sys.argv[1])
import dataclasses
import enum

namespace = {"__name__": "__main__"}
exec('''
import enum
import math

RATE = 2


def helper(x):
    return math.sqrt(x) * RATE


def make(k):
    cache = {}

    def f(x, *, flag=True):
        cache[x] = helper(x) + k
        return cache[x]

    return f


class Base:
    def run(self):
        return "base"


class Thing(Base):
    __slots__ = ("a",)
    label = "thing"

    def __init__(self, a):
        self.a = a

    def run(self):
        return super().run() + str(self.a)


class Colour(enum.Enum):
    RED = 1
    GREEN = 2
''', namespace)
objects = [
    namespace["make"](3),
    namespace["Thing"],
    namespace["Colour"],
    [namespace["Thing"](1), namespace["Colour"].RED, {"k": (1, 2.5, "s", b"b")}],
    {"data": list(range(50)), "text": "x" * 300},
]
payloads = [skypickle.dumps(o, protocol=p) for o in objects for p in (2, 5)]
payloads += [skypickle.dumps(objects[i], protocol=p) for i in (0, 4) for p in (0, 1)]
for i in range(iterations):
    data = bytearray(rng.choice(payloads))
    for _ in range(rng.randint(1, 6)):
        kind = rng.random()
        pos = rng.randrange(len(data))
        if kind < 0.6:
            data[pos] = rng.randrange(256)
        elif kind < 0.8:
            del data[pos : pos + rng.randint(1, 8)]
        else:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        if not data:
            data = bytearray(b"\\x80")
    try:
        pickle.loads(bytes(data))
        record("loaded")
    except Exception as exc:
        record(type(exc).__name__)
"""


def test_mutated_payloads_never_crash_the_loader():
    outcomes = run_campaign(MUTATED_PAYLOADS, seed=7, iterations=3000 * SCALE)
    assert sum(outcomes.values()) == 3000 * SCALE
    assert len(outcomes) > 3, outcomes  # many different failures, and no crash


TRUNCATED_AND_SPLICED = """
iterations = int(sys.argv[1])
source = {"__name__": "__main__"}
exec("def f(a, b=1):\\n    return a + b\\nclass C:\\n    def m(self):\\n        return f(1)\\n",
     source)
payloads = [skypickle.dumps(x) for x in (source["f"], source["C"], source["C"]())]
for i in range(iterations):
    a, b = rng.choice(payloads), rng.choice(payloads)
    cut_a, cut_b = rng.randrange(len(a)), rng.randrange(len(b))
    data = a[:cut_a] + b[cut_b:] if rng.random() < 0.7 else a[:cut_a]
    try:
        pickle.loads(data)
        record("loaded")
    except Exception as exc:
        record(type(exc).__name__)
"""


def test_truncated_and_spliced_payloads():
    outcomes = run_campaign(TRUNCATED_AND_SPLICED, seed=99, iterations=3000 * SCALE)
    assert sum(outcomes.values()) == 3000 * SCALE
