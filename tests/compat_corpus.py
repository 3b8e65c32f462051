"""The by-value corpus of tests/test_compat_wire.py, as source text. Never imported.

The dumping child reads this file and executes it as its ``__main__`` (compiled as
``compat_corpus.py``), so every function and class here exists only in that process and must
travel by value, as a script's or a notebook's would. ``CASES`` maps a case name to the object
pickled; tests/compat_exercises.py has the exercise run on each loaded object (and on the
original, in the dumping child). The processes that load the payloads have neither this file
nor skypickle.

Runs on CPython 3.9-3.13: no syntax or runtime annotations newer than 3.9.
"""

import abc
import asyncio
import collections
import dataclasses
import enum
import functools
import importlib
import logging
import math
import os
import os.path
import sys
from typing import ClassVar, Generic, NamedTuple, TypeVar

WORKDIR = os.environ["COMPAT_CORPUS_DIR"]
SCALE = 3
LOOKUP = {"a": 1, "b": 2}


def helper(x):
    return x + LOOKUP["b"]


# --- functions --------------------------------------------------------------------------------


def full(a: int, b: int = 2, *rest, c: int = 3, **extra) -> int:
    """Adds everything, scaled."""
    return (a + b + c + sum(rest) + sum(extra.values())) * SCALE


full.tag = "blue"
full.history = [1, 2]


def hypot_label(x, y):
    # a module global (math), a submodule reached as an attribute (os.path), a global function
    return os.path.join("r", str(math.hypot(x, y))) + "/" + str(helper(x))


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


lam = lambda x, y=2: x * y + SCALE


def make_adder(n):
    def add(x):
        return x + n

    return add


def make_counter():
    count = 0

    def increment():
        nonlocal count
        count += 1
        return count

    def current():
        return count

    return increment, current


counter_pair = make_counter()
counter_pair[0]()  # the shared cell holds 1 when pickled


def make_factorial():
    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    return fact


def make_unbound_reader():
    def read():
        return value  # noqa: F821 - bound below, then deleted: the cell is empty

    value = 1
    del value  # read's cell is empty when pickled
    return read


def traced(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        wrapper.calls += 1
        return fn(*args, **kwargs)

    wrapper.calls = 0
    return wrapper


@traced
def shout(word):
    """Upper-cases a word."""
    return word.upper() + "!"


def countdown(n):
    while n > 0:
        yield n * SCALE
        n -= 1


def chained(n):
    yield from countdown(n)
    yield "done"


async def double_later(x):
    await asyncio.sleep(0)
    return x * 2


async def ticks(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


async def gather_all(n):
    return [await double_later(i) async for i in ticks(n)]


# --- classes ----------------------------------------------------------------------------------


class Shape:
    """A shape with a size."""

    sides = 0
    unit_name = "cm"

    def __init__(self, size):
        self.size = size

    def area(self):
        return self.size * self.size

    @classmethod
    def unit(cls):
        return cls(1)

    @staticmethod
    def describe(n):
        return f"{n} sides"

    @property
    def perimeter(self):
        return self.size * max(self.sides, 1)

    def __repr__(self):
        return f"{type(self).__name__}({self.size})"

    def __eq__(self, other):
        return type(other) is type(self) and other.size == self.size

    def __hash__(self):
        return hash(self.size)


class Square(Shape):
    sides = 4

    def area(self):
        return super().area() + 0

    def __repr__(self):
        return "Sq:" + super().__repr__()


class Outer:
    class Inner:
        def where(self):
            return type(self).__qualname__


class Registry(type):
    def __new__(mcls, name, bases, namespace):
        cls = super().__new__(mcls, name, bases, namespace)
        cls.created_by = mcls.__name__
        return cls

    def describe(cls):
        return f"{cls.__name__} via {type(cls).__name__}"


class Plugin(metaclass=Registry):
    def run(self):
        return "ran"


class AppError(ValueError):
    def __init__(self, code, text):
        super().__init__(f"{code}: {text}")
        self.code = code


class Slotted:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def total(self):
        return self.x + self.y


class Sized(abc.ABC):
    @abc.abstractmethod
    def size(self):
        raise NotImplementedError

    def doubled(self):
        return self.size() * 2


class Crate(Sized):
    def size(self):
        return 7


class Loose:
    def size(self):
        return 1


Sized.register(Loose)
Sized.register(tuple)


class Tally:
    def __init__(self, start):
        self.total = start

    def add(self, n):
        self.total += n
        return self.total


tally = Tally(5)


class Account:
    def __init__(self, owner, entries):
        self.owner = owner
        self.entries = list(entries)
        self.partner = None

    def balance(self):
        return sum(self.entries)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["entries"] = tuple(self.entries)
        return state

    def __setstate__(self, state):
        state = dict(state)
        state["entries"] = list(state["entries"])
        self.__dict__.update(state)


ann = Account("ann", [1, 2])
bob = Account("bob", [10])
ann.partner = bob
bob.partner = ann


class Flavored:
    def __init_subclass__(cls, *, flavor, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.flavor = flavor


class Mint(Flavored, flavor="mint"):
    def taste(self):
        return "fresh " + self.flavor


# --- enums ------------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3

    def describe(self):
        return f"{self.name.lower()}={self.value}"

    @classmethod
    def default(cls):
        return cls.GREEN


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 3


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1
    RW = 6


class Planet(enum.Enum):
    MERCURY = (3.303e23, 2.4397e6)
    EARTH = (5.976e24, 6.37814e6)

    def __init__(self, mass, radius):
        self.mass = mass
        self.radius = radius

    def gravity(self):
        return round(6.673e-11 * self.mass / (self.radius * self.radius), 2)


# --- dataclasses, typing ----------------------------------------------------------------------


@dataclasses.dataclass(order=True)
class Item:
    name: str
    qty: int = 1
    tags: list = dataclasses.field(default_factory=list, compare=False)
    scale: dataclasses.InitVar[int] = 1
    kind: ClassVar[str] = "item"

    def __post_init__(self, scale):
        self.qty *= scale


@dataclasses.dataclass(frozen=True)
class Frozen:
    x: int
    y: int = 0


class Pair(NamedTuple):
    left: int
    right: str = "r"

    def swap(self):
        return (self.right, self.left)


T = TypeVar("T")
N = TypeVar("N", int, float)


class Box(Generic[T]):
    def __init__(self, item):
        self.item = item

    def get(self):
        return self.item


# --- a module registered by value: importable here, not where the payloads load -------------

MODULE_SOURCE = """\
import math

RATE = 4


def scale(x):
    return x * RATE


class Meter:
    def __init__(self, v):
        self.v = v

    def read(self):
        return scale(self.v) + math.floor(0.5)
"""
_module_dir = os.path.join(WORKDIR, "modsrc")
os.makedirs(_module_dir, exist_ok=True)
with open(os.path.join(_module_dir, "compat_byvalue_mod.py"), "w") as _fh:
    _fh.write(MODULE_SOURCE)
sys.path.insert(0, _module_dir)
byvalue_mod = importlib.import_module("compat_byvalue_mod")
BY_VALUE_MODULES = [byvalue_mod]  # the dumping child registers these with every pickler

# --- views, files, loggers, functools ---------------------------------------------------------

plain_dict = {"a": 1, "b": 2}
ordered = collections.OrderedDict([("z", 1), ("y", 2)])

TEXT_PATH = os.path.join(WORKDIR, "notes.txt")
with open(TEXT_PATH, "w") as _fh:
    _fh.write("alpha\nbeta\ngamma\n")
text_file = open(TEXT_PATH)  # noqa: SIM115 - stays open: an open file is the case
text_file.readline()  # pickled mid-file: the position must travel


@functools.lru_cache(maxsize=8)
def squared(x):
    return x * x


@functools.singledispatch
def render(x):
    return f"obj:{x!r}"


@render.register
def _render_int(x: int):
    return f"int:{x}"


@render.register(list)
def _render_list(x):
    return "list:" + ",".join(render(i) for i in x)


class Lazy:
    def __init__(self, n):
        self.n = n
        self.calls = 0

    @functools.cached_property
    def heavy(self):
        self.calls += 1
        return self.n * 10


CASES = {
    "FUNC_FULL": full,
    "GLOBALS_AND_MODULES": hypot_label,
    "GLOBAL_RECURSION": (fib, is_even),
    "LAMBDA": lam,
    "CLOSURE": make_adder(5),
    "SHARED_NONLOCAL": counter_pair,
    "RECURSIVE_CLOSURE": make_factorial(),
    "EMPTY_CELL": make_unbound_reader(),
    "DECORATED": shout,
    "GENERATOR": (countdown, chained),
    "COROUTINE": (double_later, ticks, gather_all),
    "CLASS_FULL": Shape,
    "SUBCLASS": Square,
    "NESTED_CLASS": Outer.Inner,
    "METACLASS": Plugin,
    "EXCEPTION_CLASS": AppError,
    "SLOTS": (Slotted, Slotted(1, 2)),
    "ABC_REGISTERED": (Sized, Crate, Loose),
    "ENUM": (Color, Color.GREEN),
    "INT_ENUM": Level,
    "FLAG": Perm,
    "ENUM_OWN_INIT": Planet,
    "DATACLASS": (Item, Frozen),
    "NAMEDTUPLE": Pair,
    "TYPEVAR_GENERIC": (T, N, Box),
    "MODULE_BY_VALUE": (byvalue_mod, byvalue_mod.scale, byvalue_mod.Meter, byvalue_mod.Meter(2)),
    "DICT_VIEWS": (
        plain_dict.keys(),
        plain_dict.values(),
        plain_dict.items(),
        ordered.keys(),
        ordered.values(),
        ordered.items(),
    ),
    "TEXT_FILE": text_file,
    "LOGGERS": (logging.getLogger("compat.worker"), logging.getLogger()),
    "BOUND_METHOD": tally.add,
    "PARTIAL_LAMBDA": functools.partial(lambda a, b, c=0: a * b + c, 3, c=1),
    "INSTANCES": [ann, bob],
    "LRU_CACHE": squared,
    "SINGLEDISPATCH": render,
    "CACHED_PROPERTY": Lazy,
    "INIT_SUBCLASS_KWARGS": Mint,
}
