"""The golden payload cases: what each payload was made from, and how to check what it loads to.

Shared by ``scripts/make_golden.py`` (which writes the payloads) and ``tests/test_golden.py``
(which loads them in fresh interpreters). This module must not import skypickle: the loading
side proves that ``pickle.loads`` imports skypickle by itself, and the exercises only use what
the payload brought and the standard library.

Each case has

* ``source``: Python text that defines ``OBJ``, the object to pickle. It is compiled under the
  neutral file name ``golden/<case>.py`` and run as a fresh ``__main__`` module without
  ``__file__`` (installed in ``sys.modules`` while it is dumped), so everything in it travels
  by value (as for a script or notebook) and no path of the machine that made the payload ends
  up in it;
* ``exercise(obj)``: run on the loaded object in a fresh interpreter; it raises when the object
  does not behave like the original (it calls functions, instantiates classes, reads enum
  members, ... and compares with values written here);
* ``mode``: how the payload is dumped (``DUMP_MODES``);
* optionally ``module_source`` (a module made from source, registered for pickling by value,
  importable as ``MODULE_NAME`` while dumping and nowhere when loading), ``file_text`` (the
  contents of ``golden_input.txt``, opened by a *relative* name so the file's name holds no
  path), and ``min_version``.

No payload may contain a path of the machine that made it, nor its host name
(``machine_leaks``), without exception. Some objects bring code of the standard library along
by value, as with cloudpickle: the methods ``collections.namedtuple`` and ``dataclasses``
generate, the recursive-repr guard around a dataclass's ``__repr__``, ``enum``'s
``Flag._iter_member_by_def_`` bound in a Flag whose members are not in ascending order. Their
code would carry the sender's path of the standard library (``co_filename``, and the module's
``__file__`` sent with the function's globals). While such a case is dumped, the generator gives
those functions the neutral file name ``golden/<module>.py``, as the cases' own functions have
``golden/<case>.py`` (``neutral_file_names`` in scripts/make_golden.py): the payload is what the
dumper writes for that object, its file names are simply not the machine's.

Cases are never removed, and their sources never changed, once their payloads are committed:
the payloads are the proof that later releases still load what earlier ones wrote. An exercise
may only come to check more. New cases may be added, with new payloads for every CPython
version.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import pickletools
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any, Callable, NamedTuple

#: Pickle protocols every case is dumped with.
PROTOCOLS = (2, 3, 4, 5)

#: How a case is dumped (the mechanics live in scripts/make_golden.py):
#: - ``dumps``: ``skypickle.dumps(obj, protocol)``, the everyday path;
#: - ``override``: a ``skypickle.Pickler`` subclass whose ``reducer_override`` returns
#:   ``super().reducer_override(obj)``: functions and classes go through their reduce values
#:   (``_make_function`` + ``_function_setstate``, the skeleton class + ``_class_setstate``);
#: - ``override_cells_code``: the same, and cells returned as ``(_make_cell, (contents,))`` and
#:   code objects as ``_code_reduce(code)`` (``_make_code(version, args)``, the tuple form):
#:   two reconstructor forms today's dumper never writes by itself;
#: - ``named``: the ``override`` pickler, with code objects through ``_code_reduce`` and cells
#:   through a dispatch-table entry (a reducer other than the default one, so cells go through
#:   their reduce value too), while ``copyreg``'s extension registry is not empty: the dumper
#:   then writes the reconstructors of reduce values by their module attribute names
#:   (``skypickle._skypickle._make_function``) instead of ``_reconstruct(op, ...)``.
DUMP_MODES = ("dumps", "override", "override_cells_code", "named")

#: The module the ``module_by_value`` case sends by value.
MODULE_NAME = "golden_byvalue_mod"

#: The file the ``text_file`` case opens, by this relative name.
INPUT_FILE = "golden_input.txt"

RECONSTRUCTORS_MODULE = "skypickle._skypickle"


class Case(NamedTuple):
    name: str
    source: str
    exercise: Callable[[Any], None]
    mode: str = "dumps"
    module_source: str | None = None
    file_text: str | None = None
    min_version: tuple = (3, 9)

    def applies(self, version_info=None) -> bool:
        return tuple(version_info or sys.version_info)[:2] >= self.min_version


CASES: dict[str, Case] = {}


def case(name: str, source: str, **options):
    """Register the decorated function as the exercise of case ``name``."""

    def register(exercise):
        assert name not in CASES, f"duplicate case {name}"
        assert options.get("mode", "dumps") in DUMP_MODES
        if options.get("module_source"):
            options["module_source"] = _dedent(options["module_source"])
        CASES[name] = Case(name, _dedent(source), exercise, **options)
        return exercise

    return register


def _dedent(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


def raises(exc_type, func, *args, **kwargs):
    """The exception ``func(*args, **kwargs)`` raises, which must be an ``exc_type``."""
    try:
        func(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError(f"{getattr(func, '__name__', func)} did not raise {exc_type.__name__}")


# --------------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------------


@case(
    "fn_lambda",
    """
    OFFSET = 10
    OBJ = lambda x, y=2: x * y + OFFSET
    """,
)
def _fn_lambda(f):
    assert f(3) == 16
    assert f(3, y=5) == 25
    assert f.__name__ == "<lambda>"
    assert f.__module__ == "__main__"
    assert f.__defaults__ == (2,)
    assert f.__globals__["OFFSET"] == 10


@case(
    "fn_attributes",
    '''
    def describe(a, b: int = 1, *args, c: str = "c", d=None, **kw) -> str:
        """Describe the arguments."""
        return f"{a}-{b}-{args}-{c}-{d}-{sorted(kw)}"


    describe.tag = "golden"
    describe.calls = [1, 2]
    describe.__qualname__ = "Namespace.describe"
    OBJ = describe
    ''',
)
def _fn_attributes(f):
    assert f(0) == "0-1-()-c-None-[]"
    assert f(0, 2, 3, c="x", z=1) == "0-2-(3,)-x-None-['z']"
    assert f.__name__ == "describe"
    assert f.__qualname__ == "Namespace.describe"
    assert f.__doc__ == "Describe the arguments."
    assert f.__defaults__ == (1,)
    assert f.__kwdefaults__ == {"c": "c", "d": None}
    assert f.__annotations__ == {"b": int, "c": str, "return": str}
    assert f.tag == "golden"
    assert f.calls == [1, 2]


@case(
    "closure_shared_cell",
    """
    def make_counter(start):
        count = start

        def increment(step=1):
            nonlocal count
            count += step
            return count

        def read():
            return count

        return increment, read


    OBJ = make_counter(10)
    """,
)
def _closure_shared_cell(obj):
    increment, read = obj
    assert read() == 10
    assert increment(5) == 15
    assert read() == 15  # one cell for both closures, as in the sender
    assert increment.__closure__[0] is read.__closure__[0]


@case(
    "closure_empty_cell",
    """
    def make_late():
        value = 1

        def late():
            return value

        del value  # the cell stays, empty
        return late


    OBJ = make_late()
    """,
)
def _closure_empty_cell(f):
    (cell,) = f.__closure__
    raises(ValueError, getattr, cell, "cell_contents")
    raises(NameError, f)
    cell.cell_contents = 3
    assert f() == 3


@case(
    "closure_recursive",
    """
    def make_fib():
        memo = {}

        def fib(n):
            if n < 2:
                return n
            if n not in memo:
                memo[n] = fib(n - 1) + fib(n - 2)
            return memo[n]

        return fib


    OBJ = make_fib()
    """,
)
def _closure_recursive(f):
    assert f(60) == 1548008755920
    cells = dict(zip(f.__code__.co_freevars, f.__closure__))
    assert cells["fib"].cell_contents is f
    assert len(cells["memo"].cell_contents) == 59


@case(
    "fn_globals_modules",
    """
    import os.path
    import xml.dom.minidom

    SEP = "+"


    def join_and_parse(a, b):
        tree = xml.dom.minidom.parseString("<doc><x/></doc>")
        return os.path.join(a, b) + SEP + tree.documentElement.tagName


    OBJ = join_and_parse
    """,
)
def _fn_globals_modules(f):
    # xml.dom.minidom is a submodule the loader has not imported: the payload imports it.
    assert f("a", "b") == "a/b+doc"
    assert f.__globals__["SEP"] == "+"
    assert f.__globals__["os"].__name__ == "os"


@case(
    "fn_generator_coroutine",
    """
    def countdown(n):
        while n > 0:
            yield n
            n -= 1


    async def double(x):
        return x * 2


    OBJ = (countdown, double)
    """,
)
def _fn_generator_coroutine(obj):
    import inspect

    countdown, double = obj
    assert inspect.isgeneratorfunction(countdown)
    assert list(countdown(3)) == [3, 2, 1]
    assert inspect.iscoroutinefunction(double)
    stop = raises(StopIteration, double(21).send, None)
    assert stop.value == 42


# --------------------------------------------------------------------------------------------
# Classes
# --------------------------------------------------------------------------------------------


@case(
    "class_members",
    '''
    class Account:
        """An account."""

        interest = 0.5

        def __init__(self, owner, balance=0):
            self.owner = owner
            self.balance = balance

        def deposit(self, amount):
            self.balance += amount
            return self.balance

        @classmethod
        def empty(cls, owner):
            return cls(owner)

        @staticmethod
        def fee(amount):
            return amount // 10

        @property
        def yearly(self):
            """Interest for a year."""
            return self.balance * self.interest

        @yearly.setter
        def yearly(self, value):
            self.balance = value / self.interest

        def __repr__(self):
            return f"Account({self.owner!r}, {self.balance!r})"


    OBJ = Account
    ''',
)
def _class_members(cls):
    assert (cls.__name__, cls.__qualname__, cls.__module__) == ("Account", "Account", "__main__")
    assert cls.__doc__ == "An account."
    account = cls.empty("ann")
    assert type(account) is cls
    assert account.deposit(10) == 10
    assert cls.fee(55) == 5
    assert account.yearly == 5.0
    account.yearly = 20
    assert account.balance == 40
    assert repr(account) == "Account('ann', 40.0)"
    assert isinstance(cls.__dict__["empty"], classmethod)
    assert isinstance(cls.__dict__["fee"], staticmethod)
    assert cls.__dict__["yearly"].__doc__ == "Interest for a year."


@case(
    "class_slots",
    """
    class Point:
        __slots__ = ("x", "y")

        def __init__(self, x, y):
            self.x = x
            self.y = y

        def norm2(self):
            return self.x * self.x + self.y * self.y


    OBJ = Point
    """,
)
def _class_slots(cls):
    point = cls(3, 4)
    assert point.norm2() == 25
    assert not hasattr(point, "__dict__")
    raises(AttributeError, setattr, point, "z", 1)
    assert cls.__slots__ == ("x", "y")


@case(
    "class_subclass",
    """
    class Shape:
        sides = 0

        def __init__(self, name):
            self.name = name

        def describe(self):
            return f"{self.name} with {self.sides} sides"


    class Square(Shape):
        sides = 4

        def __init__(self, side):
            super().__init__("square")
            self.side = side

        def describe(self):
            return super().describe() + f" of {self.side}"


    OBJ = Square
    """,
)
def _class_subclass(cls):
    base = cls.__mro__[1]
    assert base.__name__ == "Shape"
    square = cls(2)
    assert isinstance(square, base)
    assert square.describe() == "square with 4 sides of 2"  # super() through __class__
    assert base("triangle").describe() == "triangle with 0 sides"


@case(
    "abc_registered",
    """
    import abc


    class Store(abc.ABC):
        @abc.abstractmethod
        def get(self, key): ...

        def get_or(self, key, default):
            try:
                return self.get(key)
            except KeyError:
                return default


    class DictStore(Store):
        def __init__(self, data):
            self.data = data

        def get(self, key):
            return self.data[key]


    class Virtual:
        pass


    Store.register(Virtual)
    OBJ = (Store, DictStore, Virtual)
    """,
)
def _abc_registered(obj):
    store, dict_store, virtual = obj
    raises(TypeError, store)  # still abstract
    assert store.__abstractmethods__ == frozenset({"get"})
    assert dict_store({"a": 1}).get_or("b", 2) == 2
    assert dict_store({"a": 1}).get_or("a", 2) == 1
    assert issubclass(virtual, store)  # the registration travelled
    assert isinstance(virtual(), store)
    assert not issubclass(int, store)


@case(
    "enum_kinds",
    """
    import enum


    class Color(enum.Enum):
        RED = 1
        GREEN = 2
        CRIMSON = 1

        def describe(self):
            return f"{self.name.lower()}={self.value}"


    class Level(enum.IntEnum):
        LOW = 10
        HIGH = 20


    class Perm(enum.Flag):
        X = 1
        W = 2
        R = 4


    OBJ = (Color, Level, Perm, Color.GREEN, Perm.R | Perm.W)
    """,
)
def _enum_kinds(obj):
    color, level, perm, green, read_write = obj
    assert green is color.GREEN
    assert color(2) is green
    assert color.CRIMSON is color.RED  # the alias
    assert [m.name for m in color] == ["RED", "GREEN"]
    assert list(color.__members__) == ["RED", "GREEN", "CRIMSON"]
    assert green.describe() == "green=2"
    assert level.HIGH > level.LOW
    assert level.LOW + 1 == 11
    assert read_write == perm.R | perm.W
    assert read_write.value == 6
    assert perm.R in read_write
    assert perm.X not in read_write


@case(
    "enum_own_init",
    """
    import enum


    class Planet(enum.Enum):
        MERCURY = (3.303e23, 2.4397e6)
        EARTH = (5.976e24, 6.37814e6)

        def __init__(self, mass, radius):
            self.mass = mass
            self.radius = radius

        @property
        def surface_gravity(self):
            return 6.673e-11 * self.mass / (self.radius * self.radius)


    OBJ = Planet
    """,
)
def _enum_own_init(planet):
    assert planet.EARTH.mass == 5.976e24  # set by the enum's own __init__
    assert planet.MERCURY.radius == 2.4397e6
    assert round(planet.EARTH.surface_gravity, 2) == 9.8
    assert planet((3.303e23, 2.4397e6)) is planet.MERCURY


# Members not in ascending value order: from 3.11 a Flag iterates them in definition order through
# enum's own Flag._iter_member_by_def_, bound in its namespace, which travels by value (a
# classmethod's function is not importable under its qualified name).
@case(
    "flag_definition_order",
    """
    import enum


    class Access(enum.Flag):
        READ = 4
        WRITE = 2
        EXECUTE = 1


    OBJ = (Access, Access.READ | Access.EXECUTE)
    """,
)
def _flag_definition_order(obj):
    access, read_execute = obj
    assert [m.name for m in access] == ["READ", "WRITE", "EXECUTE"]
    assert read_execute == access.READ | access.EXECUTE
    assert read_execute.value == 5 and access(5) == read_execute
    assert access.EXECUTE in read_execute and access.WRITE not in read_execute
    assert ~read_execute == access.WRITE
    if sys.version_info >= (3, 11):
        # Definition order, not ascending values: the bound _iter_member_by_def_ travelled.
        assert list(read_execute) == [access.READ, access.EXECUTE]
        assert access.__dict__["_iter_member_"].__func__.__name__ == "_iter_member_by_def_"


# The default repr: the generated __repr__ is wrapped by a closure of the standard library
# (dataclasses' recursive-repr guard, reprlib's from 3.13) that travels by value with it.
@case(
    "dataclass_fields",
    """
    import dataclasses
    from typing import ClassVar


    @dataclasses.dataclass
    class Job:
        priority: int
        name: str = "job"
        tags: list = dataclasses.field(default_factory=list)
        scale: dataclasses.InitVar[int] = 1
        registry: ClassVar[dict] = {}

        def __post_init__(self, scale):
            self.priority *= scale


    OBJ = Job
    """,
)
def _dataclass_fields(job):
    import dataclasses

    assert dataclasses.is_dataclass(job)
    assert [f.name for f in dataclasses.fields(job)] == ["priority", "name", "tags"]
    first = job(2, scale=3)
    assert first.priority == 6
    assert first.tags == [] and job(1).tags is not first.tags  # default_factory
    assert job(1) == job(1) and job(1, "a") != job(1, "b")
    assert job.registry == {}
    kinds = {f.name: f._field_type for f in job.__dataclass_fields__.values()}
    assert kinds["registry"] is dataclasses._FIELD_CLASSVAR
    assert kinds["scale"] is dataclasses._FIELD_INITVAR
    assert repr(job(1)) == "Job(priority=1, name='job', tags=[])"
    loop = job(2, "loop")
    loop.tags.append(loop)
    assert repr(loop) == "Job(priority=2, name='loop', tags=[...])"  # the recursion guard


@case(
    "dataclass_field_sentinels",
    """
    import dataclasses

    OBJ = (dataclasses._FIELD, dataclasses._FIELD_CLASSVAR, dataclasses._FIELD_INITVAR)
    """,
)
def _dataclass_field_sentinels(obj):
    import dataclasses

    expected = (dataclasses._FIELD, dataclasses._FIELD_CLASSVAR, dataclasses._FIELD_INITVAR)
    assert all(a is b for a, b in zip(obj, expected))


# The methods namedtuple() defines (__new__, _make, _replace, __repr__, _asdict, __getnewargs__)
# are not importable by any name: they travel by value.
@case(
    "namedtuple",
    """
    import typing


    class Pair(typing.NamedTuple):
        left: int
        right: int = 0

        def total(self):
            return self.left + self.right


    OBJ = (Pair, Pair(1, 2))
    """,
)
def _namedtuple(obj):
    pair, one_two = obj
    assert type(one_two) is pair
    assert one_two == (1, 2) and one_two.total() == 3
    assert pair(5).total() == 5
    assert pair._fields == ("left", "right")
    assert pair.__annotations__ == {"left": int, "right": int}
    assert pair(1, 2)._asdict() == {"left": 1, "right": 2}
    assert repr(one_two) == "Pair(left=1, right=2)"
    assert one_two._replace(right=5) == (1, 5)
    assert pair._make([7, 8]).total() == 15


@case(
    "typevar_generic",
    """
    import typing

    T = typing.TypeVar("T", bound=int)
    N = typing.TypeVar("N", int, float)
    K = typing.TypeVar("K", covariant=True)


    class Box(typing.Generic[T]):
        def __init__(self, item: T):
            self.item = item

        def get(self) -> T:
            return self.item


    OBJ = (T, N, K, Box)
    """,
)
def _typevar_generic(obj):
    import typing

    t, n, k, box = obj
    assert isinstance(t, typing.TypeVar)
    assert (t.__name__, t.__bound__) == ("T", int)
    assert n.__constraints__ == (int, float)
    assert k.__covariant__ and not k.__contravariant__
    assert box.__parameters__ == (t,)  # the same TypeVar object as the one sent beside it
    assert box[int](3).get() == 3
    assert typing.get_type_hints(box.get)["return"] is t


@case(
    "instances",
    """
    class Item:
        def __init__(self, name, qty):
            self.name = name
            self.qty = qty

        def total(self, price):
            return self.qty * price


    class Stateful:
        def __init__(self, value):
            self.value = value
            self.cache = {"secret": 1}

        def __getstate__(self):
            return {"value": self.value}

        def __setstate__(self, state):
            self.value = state["value"]
            self.cache = {"restored": True}


    A = Item("a", 2)
    OBJ = [A, Item("b", 3), A, Stateful(5)]
    """,
)
def _instances(obj):
    a, b, a_again, stateful = obj
    assert a is a_again
    assert type(a) is type(b) and type(a).__name__ == "Item"
    assert vars(a) == {"name": "a", "qty": 2}
    assert b.total(2) == 6
    assert stateful.value == 5
    assert stateful.cache == {"restored": True}


@case(
    "builtin_types",
    """
    import types

    OBJ = (
        types.FunctionType,
        types.CodeType,
        types.CellType,
        types.MappingProxyType,
        types.GeneratorType,
        types.ModuleType,
        types.MethodType,
    )
    """,
)
def _builtin_types(obj):
    import types

    expected = (
        types.FunctionType,
        types.CodeType,
        types.CellType,
        types.MappingProxyType,
        types.GeneratorType,
        types.ModuleType,
        types.MethodType,
    )
    assert all(a is b for a, b in zip(obj, expected)), obj
    assert obj[0](compile("1", "golden", "eval"), {})() == 1


# --------------------------------------------------------------------------------------------
# Modules, views, files, functools, cells
# --------------------------------------------------------------------------------------------


@case(
    "module_by_value",
    f"""
    import {MODULE_NAME}

    OBJ = {{"func": {MODULE_NAME}.scaled, "module": {MODULE_NAME}}}
    """,
    module_source="""
    import os

    VALUE = 7


    def scaled(x):
        return (x + VALUE) * _factor()


    def _factor():
        return 2


    def separator():
        return os.sep
    """,
)
def _module_by_value(obj):
    assert importlib.util.find_spec(MODULE_NAME) is None  # the loader cannot import it
    assert MODULE_NAME not in sys.modules
    assert obj["func"](1) == 16
    module = obj["module"]
    assert module.__name__ == MODULE_NAME
    assert module.VALUE == 7
    assert module.scaled(0) == 14
    assert module.separator() == "/"


@case(
    "dict_views",
    """
    import collections

    DATA = {"a": 1, "b": 2}
    ORDERED = collections.OrderedDict([("x", 1), ("y", 2)])
    OBJ = (
        DATA.keys(),
        DATA.values(),
        DATA.items(),
        ORDERED.keys(),
        ORDERED.values(),
        ORDERED.items(),
    )
    """,
)
def _dict_views(obj):
    kinds = [type(v).__name__ for v in obj]
    assert kinds[:3] == ["dict_keys", "dict_values", "dict_items"], kinds
    assert kinds[3:] == ["odict_keys", "odict_values", "odict_items"], kinds
    assert [list(v) for v in obj] == [
        ["a", "b"],
        [1, 2],
        [("a", 1), ("b", 2)],
        ["x", "y"],
        [1, 2],
        [("x", 1), ("y", 2)],
    ]


@case(
    "text_file",
    f"""
    OBJ = open({INPUT_FILE!r}, encoding="utf-8")
    OBJ.readline()
    """,
    file_text="first line\nsecond line\nthird line\n",
)
def _text_file(f):
    assert f.name == INPUT_FILE
    assert f.readline() == "second line\n"  # the position travelled
    assert f.read() == "third line\n"
    f.seek(0)
    assert f.read() == "first line\nsecond line\nthird line\n"


@case(
    "functools_lru_cache",
    """
    import functools


    @functools.lru_cache(maxsize=64, typed=True)
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)


    OBJ = fib
    """,
)
def _functools_lru_cache(f):
    assert f.cache_parameters() == {"maxsize": 64, "typed": True}
    assert f(50) == 12586269025
    assert f.cache_info().hits > 0  # the recursion goes through the cache
    assert f.__wrapped__.__name__ == "fib"


@case(
    "functools_singledispatch",
    """
    import functools


    @functools.singledispatch
    def show(x):
        return f"object:{x!r}"


    @show.register
    def _(x: int):
        return f"int:{x}"


    @show.register(list)
    def _show_list(x):
        return "list:" + ",".join(show(i) for i in x)


    OBJ = show
    """,
)
def _functools_singledispatch(show):
    assert show(1) == "int:1"
    assert show("a") == "object:'a'"
    assert show([1, "b"]) == "list:int:1,object:'b'"
    assert set(show.registry) == {object, int, list}


@case(
    "functools_cached_property",
    """
    import functools


    class Report:
        computed = 0

        def __init__(self, rows):
            self.rows = rows

        @functools.cached_property
        def total(self):
            \"\"\"The sum of the rows.\"\"\"
            type(self).computed += 1
            return sum(self.rows)


    OBJ = Report
    """,
)
def _functools_cached_property(report):
    import functools

    assert isinstance(report.__dict__["total"], functools.cached_property)
    assert report.__dict__["total"].__doc__ == "The sum of the rows."
    r = report([1, 2, 3])
    assert r.total == 6 and r.total == 6
    assert report.computed == 1
    assert r.__dict__["total"] == 6


@case(
    "cells",
    """
    def make():
        shared = [1, 2]

        def get():
            return shared

        return get


    def make_empty():
        x = 0

        def f():
            return x

        del x
        return f.__closure__[0]


    GET = make()
    OBJ = (GET.__closure__[0], make_empty(), GET)
    """,
)
def _cells(obj):
    cell, empty, get = obj
    assert type(cell).__name__ == "cell"
    assert cell.cell_contents == [1, 2]
    assert get.__closure__[0] is cell
    assert get() is cell.cell_contents
    raises(ValueError, getattr, empty, "cell_contents")


# --------------------------------------------------------------------------------------------
# The reduce-value and named-attribute forms
# --------------------------------------------------------------------------------------------

_OVERRIDE_SOURCE = """
import enum

RATE = 3


def make_scaler(k):
    def scale(x, *, offset=0):
        \"\"\"Scale x.\"\"\"
        return x * k * RATE + offset

    scale.unit = "m"
    return scale


class Counter:
    step = 2

    def __init__(self):
        self.n = 0

    def bump(self):
        self.n += self.step
        return self.n


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


OBJ = (make_scaler(2), Counter, Mode, lambda: 5)
"""


def _exercise_override(obj):
    scale, counter, mode, five = obj
    assert scale(1) == 6 and scale(1, offset=1) == 7
    assert scale.__doc__ == "Scale x." and scale.unit == "m"
    assert scale.__kwdefaults__ == {"offset": 0}
    c = counter()
    assert c.bump() == 2 and c.bump() == 4
    assert mode("fast") is mode.FAST
    assert [m.value for m in mode] == ["fast", "slow"]
    assert five() == 5


case("override_function_class", _OVERRIDE_SOURCE, mode="override")(_exercise_override)


@case(
    "override_make_cell_code_tuple",
    """
    def make_greeter(greeting, punctuation):
        def greet(name):
            return f"{greeting}, {name}{punctuation}"

        return greet


    OBJ = make_greeter("Hello", "!")
    """,
    mode="override_cells_code",
)
def _override_make_cell_code_tuple(greet):
    assert greet("Ann") == "Hello, Ann!"
    assert [c.cell_contents for c in greet.__closure__] == ["Hello", "!"]


@case(
    "named_reconstructors",
    """
    import collections
    import dataclasses
    import enum
    import functools
    import os
    import types
    import typing

    T = typing.TypeVar("T")


    class Kind(enum.Enum):
        A = 1
        B = 2


    class Lazy:
        @functools.cached_property
        def value(self):
            return 41 + 1


    @functools.lru_cache(maxsize=None)
    def square(n):
        return n * n


    @functools.singledispatch
    def kind_of(x):
        return "other"


    @kind_of.register(int)
    def _(x):
        return "int"


    def make_separator(prefix):
        def separator():
            return prefix + os.sep

        return separator


    DYNAMIC = types.ModuleType("golden_dynamic")  # in no sys.modules: sent by value
    DYNAMIC.answer = 42
    FILE = open("golden_input.txt", encoding="utf-8")
    OBJ = (
        Kind,
        dataclasses._FIELD,
        T,
        square,
        make_separator(">"),
        {"k": 1}.keys(),
        {"k": 1}.values(),
        collections.OrderedDict(a=1).items(),
        types.FunctionType,
        Lazy,
        kind_of,
        DYNAMIC,
        FILE,
    )
    """,
    mode="named",
    file_text="named\n",
)
def _named_reconstructors(obj):
    import dataclasses
    import types
    import typing

    kind, field_sentinel, t, square, separator, keys, values, items, function_type, *rest = obj
    lazy, kind_of, dynamic, file = rest
    assert lazy().value == 42
    assert kind_of(1) == "int" and kind_of("1") == "other"
    assert dynamic.__name__ == "golden_dynamic" and dynamic.answer == 42
    assert file.read() == "named\n"
    assert list(values) == [1]
    assert kind(2) is kind.B
    assert field_sentinel is dataclasses._FIELD
    assert isinstance(t, typing.TypeVar) and t.__name__ == "T"
    assert square(12) == 144 and square.cache_parameters()["maxsize"] is None
    assert separator() == ">/"
    assert type(keys).__name__ == "dict_keys" and list(keys) == ["k"]
    assert type(items).__name__ == "odict_items" and list(items) == [("a", 1)]
    assert function_type is types.FunctionType


# --------------------------------------------------------------------------------------------
# Version-specific syntax
# --------------------------------------------------------------------------------------------


@case(
    "type_params",
    """
    def first[T](items: list[T]) -> T:
        return items[0]


    class Stack[T]:
        def __init__(self):
            self.items = []

        def push(self, item: T):
            self.items.append(item)
            return self


    OBJ = (first, Stack)
    """,
    min_version=(3, 12),
)
def _type_params(obj):
    first, stack = obj
    assert first([4, 5]) == 4
    (t,) = first.__type_params__
    assert t.__name__ == "T"
    assert stack().push(1).push(2).items == [1, 2]
    assert [p.__name__ for p in stack.__type_params__] == ["T"]


# --------------------------------------------------------------------------------------------
# Reading payloads without loading them
# --------------------------------------------------------------------------------------------


class _Global(NamedTuple):
    module: str
    name: str


_STRINGS = {
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "UNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
}
_INTS = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"}
_IN_PLACE = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}


def reconstructor_calls(data: bytes) -> tuple[list[int], list[str]]:
    """The reconstructor calls ``data`` makes, read by a symbolic pickle machine (nothing is
    imported or called): op numbers of ``_reconstruct(op, ...)`` calls, and names of
    reconstructors called by their ``skypickle._skypickle`` attribute name.

    Only what matters here is tracked: strings, ints, globals, tuples and the memo; any other
    value is an opaque placeholder. That is enough to follow ``_reconstruct`` whether it is
    pushed by GLOBAL, STACK_GLOBAL or fetched again from the memo."""
    mark = object()
    opaque = object()
    stack: list = []
    memo: dict = {}
    ops: list[int] = []
    named: list[str] = []

    def pop_to_mark() -> list:
        items = []
        while stack[-1] is not mark:
            items.append(stack.pop())
        stack.pop()
        return items[::-1]

    def called(func, args) -> None:
        if not isinstance(func, _Global) or func.module != RECONSTRUCTORS_MODULE:
            return
        if func.name == "_reconstruct":
            if not (isinstance(args, tuple) and args and type(args[0]) is int):
                raise ValueError(f"_reconstruct called without an int op: {args!r}")
            ops.append(args[0])
        else:
            named.append(func.name)

    for opcode, arg, _pos in pickletools.genops(data):
        name = opcode.name
        if name == "MARK":
            stack.append(mark)
        elif name in _STRINGS:
            stack.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
        elif name in _INTS:
            stack.append(int(arg))
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            stack.append(_Global(module, attr))
        elif name == "STACK_GLOBAL":
            attr = stack.pop()
            module = stack.pop()
            stack.append(_Global(module, attr))
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            size = int(name[-1])
            items = tuple(stack[-size:])
            del stack[-size:]
            stack.append(items)
        elif name == "TUPLE":
            stack.append(tuple(pop_to_mark()))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[int(arg)])
        elif name == "REDUCE":
            args = stack.pop()
            called(stack.pop(), args)
            stack.append(opaque)
        elif name in ("OBJ", "INST"):
            items = pop_to_mark()
            if name == "OBJ":
                called(items[0], tuple(items[1:]))
            stack.append(opaque)
        elif name in ("POP", "POP_MARK"):
            if name == "POP_MARK":
                pop_to_mark()
            else:
                stack.pop()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in _IN_PLACE:
            # The target stays where it is: pop what is added to it.
            if pickletools.markobject in opcode.stack_before:
                pop_to_mark()
            else:
                del stack[-(len(opcode.stack_before) - 1) :]
        else:
            # Anything else (dicts, lists, bytes, floats, NEWOBJ, ...): by its stack effect.
            if pickletools.markobject in opcode.stack_before:
                pop_to_mark()
                fixed = [x for x in opcode.stack_before if x is not pickletools.markobject]
                fixed = [x for x in fixed if x is not pickletools.stackslice]
            else:
                fixed = opcode.stack_before
            if fixed:
                del stack[-len(fixed) :]
            stack.extend(opaque for _ in opcode.stack_after)
    return ops, named


#: Byte strings no golden payload may contain: paths of the machine that made it (home and
#: work directories, scratch files, a Python installation, its library directory
#: ``lib/python3.X``, installed packages).
FORBIDDEN = (b"/root", b"/work", b"/tmp", b"/home", b"/usr", b"site-packages", b"python3.")


def machine_leaks(data: bytes, hostname: str) -> list[str]:
    """What in ``data`` names the machine that made it: the ``FORBIDDEN`` bytes anywhere; a
    Python file name other than a neutral ``golden/...`` one in any string the payload holds;
    and the host name in any of those strings (not in the whole bytes, where a short host name
    would match by chance, inside bytecode)."""
    strings = [
        (arg, pos)
        for opcode, arg, pos in pickletools.genops(data)
        if opcode.name in _STRINGS and isinstance(arg, str)
    ]
    leaks = [repr(word) for word in FORBIDDEN if word in data]
    leaks += [
        f"file name {text!r} at byte {pos}"
        for text, pos in strings
        if text.endswith(".py") and not text.startswith("golden/")
    ]
    if hostname:
        leaks += [
            f"host name in {text!r} at byte {pos}" for text, pos in strings if hostname in text
        ]
    return leaks


# --------------------------------------------------------------------------------------------
# The loading side (run in a fresh interpreter)
# --------------------------------------------------------------------------------------------


def run_exercises(directory: str, files: list) -> dict:
    """Load each golden file of ``directory`` with plain ``pickle.loads`` and run its case's
    exercise. ``files`` are ``[file name, case name]`` pairs. Returns the file name -> "ok" or
    the error, and whether skypickle was imported before the first payload was loaded."""
    results = {"skypickle_preloaded": "skypickle" in sys.modules, "results": {}}
    for file_name, case_name in files:
        try:
            data = (Path(directory) / file_name).read_bytes()
            obj = pickle.loads(data)
            CASES[case_name].exercise(obj)
            outcome = "ok"
        except BaseException as exc:  # report every kind of failure, per file
            outcome = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            outcome += "\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])
        results["results"][file_name] = outcome
    return results


def run_foreign_loads(paths: list) -> dict:
    """Load payloads made by other CPython minor versions: path -> what each raised."""
    raised = {}
    for path in paths:
        try:
            pickle.loads(Path(path).read_bytes())
            raised[path] = {"type": None, "message": ""}
        except BaseException as exc:  # the test checks which exception and its message
            raised[path] = {"type": type(exc).__name__, "message": str(exc)}
    return raised


def loader_command(command: str, *args: str) -> list:
    """The argv that runs :func:`main` in a fresh interpreter (this one's executable) that
    imports nothing but this module before loading."""
    bootstrap = (
        "import sys; sys.path.insert(0, sys.argv[1]); import golden_cases; "
        "sys.exit(golden_cases.main(sys.argv[2:]))"
    )
    return [sys.executable, "-c", bootstrap, str(Path(__file__).parent), command, *args]


def main(argv: list) -> int:
    """``exercise DIR FILES_JSON`` or ``foreign PATH...``: the loading side, printing its
    findings as one JSON line."""
    if argv[0] == "exercise":
        print(json.dumps(run_exercises(argv[1], json.loads(argv[2]))))
    elif argv[0] == "foreign":
        print(json.dumps(run_foreign_loads(argv[1:])))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")
    return 0
