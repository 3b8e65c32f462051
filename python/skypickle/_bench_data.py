"""The benchmark's data cases: the objects to pickle, and the strict comparison that checks
what ``pickle.loads`` made of each competitor's payload (equal values *and* equal types).

The code cases (functions and classes that travel by value) are in ``_bench_code``.
"""

from __future__ import annotations

import functools
import importlib
import math
import operator
from typing import Any

# --------------------------------------------------------------------------------------------
# Objects used by the cases
# --------------------------------------------------------------------------------------------


class Point:
    """A plain, importable class: pickled by reference by every competitor."""

    def __init__(self, x, y, label):
        self.x = x
        self.y = y
        self.label = label

    def __repr__(self):
        return f"Point({self.x!r}, {self.y!r}, {self.label!r})"


def importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def have_numpy() -> bool:
    return importable("numpy")


def make_dicts_20k():
    return [
        {"id": i, "name": f"user{i}", "score": i * 0.5, "active": i % 2 == 0} for i in range(20_000)
    ]


def make_instances_10k():
    return [Point(i, i * 0.25, f"p{i}") for i in range(10_000)]


def make_partials_1k():
    return [functools.partial(operator.add, i) for i in range(1_000)]


def make_numpy_8mb():
    import numpy as np

    return np.arange(1_000_000, dtype=np.float64)


def make_bytes_1mb():
    return bytes(range(256)) * 4096


def make_str_list():
    words = ["alpha", "beta", "gamma", "ünïcødé", "日本語", "emoji 🐍", "", "x" * 300]
    return [f"{words[i % len(words)]}-{i}" for i in range(50_000)]


def make_nested():
    shared = ["shared", 1, 2.5, None]

    def node(depth, index):
        if depth == 0:
            return {
                "leaf": index,
                "value": index * 1.5,
                "tags": ("a", "b", index % 7),
                "flags": {True, False} if index % 2 else frozenset({index}),
                "blob": b"\x00\x01" * (index % 5),
                "big": 2**70 + index,
                "neg": -index - 1,
                "nothing": None,
                "shared": shared,
            }
        return {
            "depth": depth,
            "name": f"node-{depth}-{index}",
            "children": [node(depth - 1, index * 4 + k) for k in range(4)],
            "meta": {"weights": [index / 3, -index, 1e300], "ok": index % 3 == 0},
        }

    return {"version": 3, "root": node(6, 0), "shared_again": shared}


def make_ints_floats():
    out = []
    for i in range(100_000):
        kind = i % 5
        if kind == 0:
            out.append(i % 256)  # fits one byte
        elif kind == 1:
            out.append(i * 7)  # two or four bytes
        elif kind == 2:
            out.append(-i * 100_003)  # negative, 32-bit and beyond
        elif kind == 3:
            out.append(i << 33)  # needs more than 32 bits
        else:
            out.append(i / 3)
    return out


# --------------------------------------------------------------------------------------------
# Strict comparison: equal values *and* equal types, recursively
# --------------------------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """True if ``b`` is a faithful copy of ``a``: ``1 == True == 1.0`` does not pass here."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        # Key order is part of a dict's value for a pickle round trip.
        for (ka, va), (kb, vb) in zip(a.items(), b.items()):
            if not same(ka, kb) or not same(va, vb):
                return False
        return True
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, Point):
        return same(a.__dict__, b.__dict__)
    if isinstance(a, functools.partial):
        # Not via ``a.__dict__``: reading it would create an empty dict on the original object,
        # which then changes its pickle.  ``__reduce__`` reports func, args, keywords and dict.
        return a.func is b.func and same(a.__reduce__(), b.__reduce__())
    return a == b


def same_arrays(a, b) -> bool:
    import numpy as np

    return (
        type(a) is type(b)
        and a.dtype == b.dtype
        and a.shape == b.shape
        and bool(np.array_equal(a, b))
    )


def same_nested(a, b) -> bool:
    # The shared list must come back as one object, referenced from everywhere (memo at work).
    if not same(a, b):
        return False
    first = b["shared_again"]

    def leaves(n):
        if "leaf" in n:
            yield n
        else:
            for c in n["children"]:
                yield from leaves(c)

    return all(leaf["shared"] is first for leaf in leaves(b["root"]))


def same_partials(a, b) -> bool:
    return same(a, b) and all(p(1) == i + 1 for i, p in enumerate(b))
