"""Code cases for the benchmark: functions and classes that must travel **by value**.

The objects are compiled from source into a fresh namespace whose ``__name__`` is
``"__main__"``, so both cloudpickle and skypickle see what a script or notebook defines: code the
loader cannot import.  Stdlib ``pickle`` cannot pickle them at all, so these cases compare
skypickle with cloudpickle only.

Each builder returns the object to pickle; each checker receives the original and what
``pickle.loads`` made of the payload, and exercises it (calls it, instantiates it, compares
results) rather than comparing identities.
"""

from __future__ import annotations

import textwrap
import types
from typing import Any

_SOURCE = textwrap.dedent(
    '''
    import dataclasses
    import enum
    import math
    import os.path

    SCALE = 2.5
    OFFSET = 7
    LABELS = {"low": 0, "high": 1}


    def helper(x):
        return math.sqrt(abs(x)) * SCALE


    def make_closure(factor, names):
        cache = {}

        def transform(x, *, clip=None):
            """Scale, shift and label x."""
            key = (x, clip)
            if key not in cache:
                y = helper(x) * factor + OFFSET
                if clip is not None:
                    y = min(y, clip)
                cache[key] = (y, LABELS["high" if y > 10 else "low"], os.path.join(*names))
            return cache[key]

        return transform


    class Account:
        """A class with the usual kinds of members."""

        interest = 0.02

        def __init__(self, owner, balance=0.0):
            self.owner = owner
            self.balance = balance

        def deposit(self, amount):
            if amount <= 0:
                raise ValueError("amount must be positive")
            self.balance += amount
            return self.balance

        def withdraw(self, amount):
            if amount > self.balance:
                raise ValueError("insufficient funds")
            self.balance -= amount
            return self.balance

        @property
        def yearly_interest(self):
            return self.balance * self.interest

        @classmethod
        def empty(cls, owner):
            return cls(owner)

        @staticmethod
        def fee(amount):
            return round(amount * 0.01, 2)

        def __repr__(self):
            return f"Account({self.owner!r}, {self.balance!r})"


    class Colour(enum.Enum):
        RED = 1
        GREEN = 2
        BLUE = 3


    @dataclasses.dataclass
    class Pixel:
        x: int
        y: int
        colour: Colour = Colour.RED
        tags: list = dataclasses.field(default_factory=list)

        def moved(self, dx, dy):
            return Pixel(self.x + dx, self.y + dy, self.colour, list(self.tags))


    class Row:
        def __init__(self, i):
            self.i = i
            self.name = f"row{i}"
            self.value = i * 0.5

        def total(self):
            return self.i + self.value
    '''
)


def _namespace() -> dict[str, Any]:
    """A fresh ``__main__``-like namespace holding the definitions above."""
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    exec(compile(_SOURCE, "<skypickle-bench>", "exec"), namespace)
    return namespace


def make_lambda():
    ns = _namespace()
    return eval("lambda x, y=3: x * y + OFFSET", ns)


def check_lambda(a, b) -> bool:
    return b(4) == a(4) and b(2, y=5) == a(2, y=5)


def make_closure():
    return _namespace()["make_closure"](3, ("data", "part-0"))


def check_closure(a, b) -> bool:
    return b(16.0) == a(16.0) and b(2.0, clip=1.0) == a(2.0, clip=1.0)


def make_class():
    return _namespace()["Account"]


def check_class(a, b) -> bool:
    x, y = a("ann", 100.0), b("ann", 100.0)
    return (
        b.__name__ == a.__name__
        and y.deposit(5) == x.deposit(5)
        and y.yearly_interest == x.yearly_interest
        and b.empty("bob").balance == 0.0
        and b.fee(250) == a.fee(250)
    )


def make_dataclass_enum():
    ns = _namespace()
    return (ns["Pixel"], ns["Colour"])


def check_dataclass_enum(a, b) -> bool:
    pixel, colour = b
    p = pixel(1, 2, colour.GREEN, ["x"])
    return (
        p.moved(1, 1).x == 2
        and p.colour is colour.GREEN
        and [m.value for m in colour] == [m.value for m in a[1]]
        and repr(p) == "Pixel(x=1, y=2, colour=<Colour.GREEN: 2>, tags=['x'])"
    )


# Closures of one shape over three kinds of module globals: a package with many submodules
# imported (numpy, pandas), through which the code reaches a submodule by attribute, and plain
# modules (sys, os.path). Pickling by value looks for the submodules the code reaches among those
# imported, so the first two pay for that search; the last is the baseline it should approach.
_MODULE_CLOSURES = {
    "numpy": (
        "import numpy as np",
        "float(np.linalg.norm(np.asarray(v, dtype=float) * scale))",
    ),
    "pandas": (
        "import pandas as pd",
        "float(pd.Series(v, dtype=float).sum() * scale) + pd.api.types.is_float_dtype(float)",
    ),
    "sys": (
        "import os.path\nimport sys",
        "float(sum(v) * scale) + len(os.path.join(sys.platform, 'x'))",
    ),
}


def make_module_closure(module: str):
    imports, expression = _MODULE_CLOSURES[module]
    source = "\n".join(
        [imports, "def make(scale):", "    def score(v):", f"        return {expression}"]
        + ["    return score", ""]
    )
    namespace = types.ModuleType("__main__").__dict__
    exec(compile(source, f"<skypickle-bench-{module}>", "exec"), namespace)
    return namespace["make"](1.5)


def check_module_closure(a, b) -> bool:
    return b([3.0, 4.0]) == a([3.0, 4.0]) and b([]) == a([])


def make_task_graph():
    """A Dask-style graph of 2,000 tasks: each holds its own lambda (a distinct function object
    made in a loop, with its own default), plus its argument and a dependency key."""
    ns = _namespace()
    graph = {}
    for i in range(2_000):
        fn = eval(f"lambda x, k={i}: helper(x) + k * SCALE", ns)
        graph[("task", i)] = (fn, i, ("task", i - 1) if i else None)
    return graph


def check_task_graph(a, b) -> bool:
    if len(a) != len(b):
        return False
    for key in (("task", 0), ("task", 999), ("task", 1_999)):
        fa, xa, da = a[key]
        fb, xb, db = b[key]
        if fb(xb) != fa(xa) or db != da:
            return False
    return True


def make_dynamic_instances():
    row = _namespace()["Row"]
    return [row(i) for i in range(10_000)]


def check_dynamic_instances(a, b) -> bool:
    return (
        len(b) == len(a)
        and all(y.__dict__ == x.__dict__ for x, y in zip(a, b))
        and b[-1].total() == a[-1].total()
        and type(b[0]) is type(b[-1])
    )
