"""The corpus of ``test_deterministic.py``, run as a script: ``python deterministic_corpus.py OUT``.

Run as ``__main__`` from a temporary directory (next to a copy of ``deterministic_registered.py``,
which it registers by value), so every function and class here travels by value. It writes to
OUT, pickled by the standard library, a dict of plain data:

* ``"payloads"``: ``{(case, protocol, normalize_paths): bytes}``, deterministic dumps (or the
  error's text, where the object cannot be pickled at that protocol);
* ``"fingerprints"``: the same keys, ``skypickle.fingerprint`` of each case that pickles;
* ``"compat"``: ``{case: bytes}``, deterministic dumps with ``compat="cloudpickle"``;
* ``"same_by_dump"``: whether ``dump`` and ``Pickler(...).dump`` wrote the bytes ``dumps`` did;
* ``"exercised"``: ``{case: result}``, ``deterministic_exercise.exercise`` run on the originals
  after every dump (when ``--exercise`` is given).

The test runs it under several hash seeds, working directories and file locations, and
compares what the runs wrote; it loads the payloads in another interpreter that has neither
this file nor the registered module and exercises them there.
"""

import abc
import dataclasses
import enum
import functools
import io
import pickle
import sys
import typing

import deterministic_registered as registered
import skypickle

skypickle.register_pickle_by_value(registered)

# --------------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------------

FACTOR = 3


def plain(x, y=2, *, z=("k", 1.5)):
    """A plain function: a default, a keyword-only default, a global, a builtin."""
    return x * y * FACTOR + len(z)


shout = lambda text, end="!": text.upper() + end


def make_counter(start):
    count = start

    def increment(step=1):
        nonlocal count
        count += step

        def peek():
            return count

        return count, peek()

    return increment


def outer(a):
    def middle(b):
        def inner(c):
            return (a, b, c, a + b + c)

        return inner

    return middle


def factorial(n):
    return 1 if n <= 1 else n * factorial(n - 1)


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def squares(n):
    for i in range(n):
        yield i * i
    return "squares done"


def running_total():
    total = 0
    while True:
        received = yield total
        if received is None:
            return total
        total += received


# --------------------------------------------------------------------------------------------
# Classes
# --------------------------------------------------------------------------------------------


class Base:
    kind = "base"
    ALLOWED = {"alpha", "beta", "gamma", "delta"}

    def __init__(self, value):
        self.value = value
        self.tags = {"t1", "t2", "t3"}

    def describe(self):
        return f"{self.kind}:{self.value}"

    @property
    def doubled(self):
        return self.value * 2

    @classmethod
    def make(cls, value):
        return cls(value)

    @staticmethod
    def helper(x):
        return x + FACTOR


class Child(Base):
    kind = "child"
    FLAGS = frozenset({"read", "write", "exec", 3, 4.5, None})

    def describe(self):
        return "child/" + super().describe()

    @property
    def doubled(self):
        return super().doubled + 1


class Shape(abc.ABC):
    @abc.abstractmethod
    def area(self): ...

    def describe(self):
        return f"{type(self).__name__} of area {self.area()}"


class Square(Shape):
    def __init__(self, side):
        self.side = side

    def area(self):
        return self.side * self.side


class Circleish:
    def area(self):
        return 3


class Blob:
    def area(self):
        return 0


Shape.register(Circleish)
Shape.register(Blob)
Shape.register(tuple)


@dataclasses.dataclass(frozen=True)
class Point:
    """A point. (Without a docstring, dataclass makes one from the signature, which shows the
    frozenset default in its hash-seed dependent iteration order: the class would differ.)"""

    x: int
    y: int = 0
    labels: frozenset = frozenset({"p", "q", "r"})

    def norm1(self):
        return abs(self.x) + abs(self.y)


@dataclasses.dataclass(order=True)
class Inventory:
    owner: str
    items: list = dataclasses.field(default_factory=list)
    kinds: set = dataclasses.field(default_factory=lambda: {"a", "b", "c"}, compare=False)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"

    def describe(self):
        return f"{self.name.lower()}={self.value}"


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1

    def readable(self):
        return Perm.R in self


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 10


class Pair(typing.NamedTuple):
    a: int
    b: str = "b"

    def swapped(self):
        return (self.b, self.a)


T = typing.TypeVar("T")
N = typing.TypeVar("N", int, float)


class Box(typing.Generic[T]):
    def __init__(self, item: T):
        self.item = item

    def get(self) -> T:
        return self.item


class Token:
    """Hashable by content: instances of a by-value class as set items."""

    def __init__(self, name):
        self.name = name

    def __eq__(self, other):
        return type(other) is Token and other.name == self.name

    def __hash__(self):
        return hash(("Token", self.name))

    def __repr__(self):
        return f"Token({self.name!r})"


class Outer:
    class Inner:
        def where(self):
            return type(self).__qualname__

    def make_inner(self):
        return self.Inner()


def make_local_class(greeting):
    class Local:
        def greet(self, name):
            return f"{greeting}, {name}"

    return Local


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def total(self):
        return self.a + self.b


@typing.runtime_checkable
class SupportsArea(typing.Protocol):
    def area(self) -> float: ...

    def describe(self) -> str: ...


class Registered(enum.Enum):
    """Members with set and tuple values."""

    SMALL = frozenset({"xs", "s"})
    LARGE = frozenset({"l", "xl", "xxl"})


# --------------------------------------------------------------------------------------------
# Globals holding sets
# --------------------------------------------------------------------------------------------

TAGS = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"}
FROZEN = frozenset({"north", "south", "east", "west", b"up", b"down", 10, -2, 3.25})
NESTED = {
    (1, "a"),
    (2, ("b", frozenset({"x", "y", "z"}))),
    (3, frozenset({(4, "c"), (5, "d"), frozenset({"deep", "deeper"})})),
    frozenset({frozenset({1, 2}), frozenset({"s", "t"}), frozenset()}),
}
DICT_OF_SETS = {
    "letters": {"q", "w", "e", "r", "t", "y"},
    "numbers": {10, 20, 30, 2**70, -1},
    "frozen": frozenset({"one", "two", "three"}),
    "empty": set(),
}
MIXED = {
    "text",
    "other text",
    17,
    -(2**65),
    2.5,
    float("inf"),
    b"raw",
    b"",
    None,
    (1, "tuple", None),
    frozenset({"f", 1, (2, "g")}),
    Token("first"),
    Token("second"),
    Point(3, 4),
}


def uses_sets(word):
    """A by-value function whose globals hold the sets."""
    return (
        word in TAGS,
        word in FROZEN,
        sorted(DICT_OF_SETS["letters"]),
        len(NESTED),
        sum(isinstance(item, Token) for item in MIXED),
    )


def with_set_default(word, allowed={"yes", "no", "maybe"}, *, extra=frozenset({"x", "y"})):  # noqa: B006
    return word in allowed or word in extra


def make_set_closure():
    seen = {"one", "two", "three", "four"}

    def check(word):
        return word in seen

    return check


@functools.cache
def cached_square(n):
    return n * n


def cases():
    """Each case's object, by name (built once, at import, identically in every run)."""
    everything = {}
    corpus = {
        "function": plain,
        "lambda": shout,
        "closure": make_counter(10),
        "nested_closure": outer(1)(20),
        "recursive": factorial,
        "mutually_recursive": is_even,
        "generator": squares,
        "generator_send": running_total,
        "classes": (Base, Child, Child(3)),
        "abc": (Shape, Square, Square(4), Circleish),
        "dataclasses": (Point, Point(1, 2), Inventory, Inventory("ann", [3, 1])),
        "enum": (Color, Color.GREEN, Level, Level.HIGH),
        "flag": (Perm, Perm.R | Perm.W),
        "namedtuple": (Pair, Pair(1, "x")),
        "typevar_generic": (T, N, Box, Box(5)),
        "registered_function": registered.total,
        "registered_class": (registered.Length, registered.Axis, registered.Length(2, "cm")),
        "registered_module": registered,
        "set_global": TAGS,
        "frozenset_global": FROZEN,
        "nested_sets": NESTED,
        "dict_of_sets": DICT_OF_SETS,
        "mixed_set": MIXED,
        "uses_sets": uses_sets,
        "more_classes": (
            Outer,
            Outer().make_inner(),
            make_local_class("hello"),
            Slotted(1, 2),
            SupportsArea,
            Square(3),
            Registered,
        ),
        "function_sets": (
            with_set_default,
            make_set_closure(),
            {plain, shout, factorial, is_even, is_odd},
            frozenset({Color.RED, Color.BLUE, Perm.R}),
        ),
        "functools": (functools.partial(plain, 2, z=()), cached_square),
    }
    everything.update(corpus)
    corpus["everything"] = everything
    return corpus


# Cases made of data only: no source location in their bytes.
DATA_CASES = ("set_global", "frozenset_global", "nested_sets", "dict_of_sets")

# Cases pickled with compat="cloudpickle" too.
COMPAT_CASES = (
    "function",
    "closure",
    "mutually_recursive",
    "classes",
    "dataclasses",
    "enum",
    "typevar_generic",
    "mixed_set",
    "registered_function",
    "more_classes",
    "function_sets",
)

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def main(argv):
    out_path = argv[1]
    corpus = cases()
    payloads, fingerprints, compat, same_by_dump = {}, {}, {}, {}
    for name, obj in corpus.items():
        for proto in PROTOCOLS:
            for normalize in (False, True):
                key = (name, proto, normalize)
                options = {"deterministic": True, "normalize_paths": normalize}
                try:
                    data = skypickle.dumps(obj, proto, **options)
                except Exception as exc:
                    # Below protocol 2 some objects cannot be pickled at all (dataclass fields
                    # have __slots__): the test checks which, and that every run agrees.
                    payloads[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                    continue
                payloads[key] = data
                fingerprints[key] = skypickle.fingerprint(
                    obj, protocol=proto, normalize_paths=normalize
                )
                if proto == pickle.HIGHEST_PROTOCOL:
                    by_dump, by_pickler = io.BytesIO(), io.BytesIO()
                    skypickle.dump(obj, by_dump, proto, **options)
                    skypickle.Pickler(by_pickler, proto, **options).dump(obj)
                    again = skypickle.dumps(obj, proto, **options)
                    same_by_dump[key] = (
                        by_dump.getvalue() == data,
                        by_pickler.getvalue() == data,
                        again == data,
                    )
        if name in COMPAT_CASES:
            compat[name] = skypickle.dumps(obj, compat="cloudpickle", deterministic=True)
    result = {
        "payloads": payloads,
        "fingerprints": fingerprints,
        "compat": compat,
        "same_by_dump": same_by_dump,
        "script": __file__,
    }
    if "--exercise" in argv:
        import deterministic_exercise

        result["exercised"] = {
            name: deterministic_exercise.exercise(name, obj) for name, obj in cases().items()
        }
    with open(out_path, "wb") as f:
        pickle.dump(result, f, protocol=2)


if __name__ == "__main__":
    main(sys.argv)
