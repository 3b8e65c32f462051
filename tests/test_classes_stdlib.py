"""Classes by value: classes made by the standard library's machinery.

Dataclasses, ``collections.namedtuple``, ``typing.NamedTuple``, ``typing.Generic`` with a
by-value TypeVar, self-referencing hints, and the ``functools`` wrappers (``lru_cache``,
``singledispatch``, ``cached_property``) of a script.

Every by-value case is loaded with plain ``pickle`` in a fresh interpreter where the defining
code does not exist (``byvalue_helpers.run_child`` checks that the test modules and
``byvalue_class_corpus`` cannot be imported there) and its behaviour is checked there. Where
skypickle goes beyond cloudpickle 3.1.2, the test's docstring says so and the test asserts
cloudpickle's behaviour too. The shared classes are in ``byvalue_class_corpus``.
"""

import pickle
import sys

import cloudpickle
import pytest
import skypickle
from byvalue_class_corpus import make_data_corpus, make_node_class, make_typing_corpus
from byvalue_helpers import compare_in_child, pack, run_child

# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------


DATA_BODY = """
import dataclasses

D = OBJ
Item, Special, Frozen, Made = D["Item"], D["Special"], D["Frozen"], D["Made"]
count_before = Item.count
item = Item("pen", 2.0, scale=3)
special = Special("ink", 1.5, extra=7)
frozen = Frozen(1)
try:
    frozen.x = 5
    frozen_error = None
except Exception as exc:
    frozen_error = (type(exc).__name__, type(exc) is dataclasses.FrozenInstanceError)
field_types = {
    name: [
        (f.name, f._field_type is dataclasses._FIELD,
         f._field_type is dataclasses._FIELD_CLASSVAR,
         f._field_type is dataclasses._FIELD_INITVAR)
        for f in cls.__dataclass_fields__.values()
    ]
    for name, cls in D.items()
}
result = {
    "repr": (repr(item), repr(special), repr(frozen), repr(Made(1))),
    "post_init": (item.price, Item.count - count_before),
    "label": special.label(),
    "asdict": (dataclasses.asdict(item), dataclasses.asdict(special), dataclasses.astuple(frozen)),
    "fields": {name: [f.name for f in dataclasses.fields(cls)] for name, cls in D.items()},
    "field_types": field_types,
    "is_dataclass": [dataclasses.is_dataclass(cls) for cls in D.values()],
    "default_factory": (Item("a").tags == [], Item("a").tags is not Item("b").tags),
    "order": (Item("a", 1.0) < Item("a", 2.0), sorted([Item("b"), Item("a")])[0].name),
    "eq": (Item("a", tags=[1]) == Item("a", tags=[2]), Frozen(1) == Frozen(1)),
    "frozen": (frozen_error, hash(Frozen(1)) == hash(Frozen(1)), Frozen(1, 3).y),
    "replace": repr(dataclasses.replace(frozen, y=9)),
    "make_dataclass": (Made(4, "z").both(), Made(4).b),
    "classvar_default": Item.count >= 1,
}
"""


def test_dataclasses_in_fresh_interpreter(run_in_subprocess):
    expected, got, _ = compare_in_child(run_in_subprocess, make_data_corpus(), DATA_BODY)
    assert got == expected
    assert got["repr"][0] == "Item(name='pen', price=6.0, tags=[])"
    assert got["post_init"] == (6.0, 1)
    assert got["fields"]["Item"] == ["name", "price", "tags"]
    assert got["fields"]["Made"] == ["a", "b"]
    assert got["field_types"]["Item"] == [
        ("name", True, False, False),
        ("price", True, False, False),
        ("tags", True, False, False),
        ("count", False, True, False),
        ("scale", False, False, True),
    ]
    assert got["frozen"][0] == ("FrozenInstanceError", True)
    assert got["asdict"][0] == {"name": "pen", "price": 6.0, "tags": []}
    assert got["make_dataclass"] == ((4, "z"), "b")


@pytest.mark.parametrize("proto", [0, 1])
def test_dataclasses_need_protocol_2(proto):
    """``dataclasses.Field`` has ``__slots__`` and no ``__getstate__``: protocols 0 and 1 cannot
    pickle it, so a dataclass by value needs protocol 2+. Same error as cloudpickle 3.1.2."""
    item = make_data_corpus()["Item"]
    for lib in (skypickle, cloudpickle):
        with pytest.raises(TypeError, match="__slots__"):
            lib.dumps(item, protocol=proto)


# --------------------------------------------------------------------------------------------
# namedtuple, typing.NamedTuple, Generic with a by-value TypeVar, self-referencing hints
# --------------------------------------------------------------------------------------------


TYPING_BODY = """
import typing

C = OBJ
Point, Pair, Box, IntBox, Node = C["Point"], C["Pair"], C["Box"], C["IntBox"], C["Node"]
T, N = C["T"], C["N"]
hints = Node.__annotations__
result = {
    "namedtuple": (
        repr(Point(1)), Point._fields, Point._field_defaults, Point(1, 2)._asdict(),
        repr(Point._make([3, 4])), isinstance(Point(1), tuple),
    ),
    "NamedTuple": (
        repr(Pair(1)), Pair(1, "x").swap(), Pair._fields, Pair._field_defaults,
        Pair.__annotations__, repr(Pair(2)._replace(right="q")),
    ),
    "typevars": (
        (T.__name__, T.__bound__, T.__constraints__),
        (N.__name__, N.__bound__),
        type(T) is typing.TypeVar,
        Box.__parameters__ == (T,),
        C["Mapping2"].__parameters__ == (T, N),
    ),
    "generic": (
        Box.__orig_bases__ == (typing.Generic[T],),
        typing.get_origin(Box[int]) is Box,
        typing.get_args(Box[int]),
        Box[int](3).get(),
        Box(4).get(),
        typing.get_origin(IntBox.__orig_bases__[0]) is Box,
        typing.get_args(IntBox.__orig_bases__[0]),
        [c.__name__ for c in IntBox.__mro__],
        IntBox(5).get(),
        IntBox.__parameters__,
        C["Mapping2"][int, bool] == C["Mapping2"][int, bool],
    ),
    "self_hints": (
        typing.get_args(hints["children"])[0] is Node,
        typing.get_args(hints["parent"]) == (Node, type(None)),
        typing.get_args(typing.get_args(hints["index"])[1])[0] is Node,
        hints["value"] is int,
        Node(1, [Node(2), Node(3, [Node(4)])]).total(),
    ),
}
"""


def test_typing_constructs_in_fresh_interpreter(run_in_subprocess):
    corpus = make_typing_corpus()
    corpus["Node"] = make_node_class()
    expected, got, _ = compare_in_child(run_in_subprocess, corpus, TYPING_BODY)
    assert got == expected
    assert got["namedtuple"][0] == "Point(x=1, y=0)"
    assert got["NamedTuple"][:2] == ("Pair(left=1, right='r')", ("x", 1))
    assert got["typevars"] == (("T", None, ()), ("N", int), True, True, True)
    assert got["generic"][:5] == (True, True, (int,), 3, 4)
    assert got["generic"][7] == ["IntBox", "Box", "Generic", "object"]
    assert got["self_hints"] == (True, True, True, True, 10)


def test_typevar_is_tracked_in_child(run_in_subprocess):
    corpus = make_typing_corpus()
    got = run_child(
        run_in_subprocess,
        """
        p = pickle.loads(PAYLOAD)
        t1 = pickle.loads(p["T"])
        box = pickle.loads(p["Box"])
        t2 = pickle.loads(p["T"])
        result = (t1 is t2, box.__parameters__[0] is t1)
        """,
        pack(T=skypickle.dumps(corpus["T"]), Box=skypickle.dumps(corpus["Box"])),
    )
    assert got == (True, True)
    assert pickle.loads(skypickle.dumps(corpus["T"])) is corpus["T"]


# --------------------------------------------------------------------------------------------
# functools wrappers of a script (beyond cloudpickle)
# --------------------------------------------------------------------------------------------

FUNCTOOLS_SCRIPT = """
import functools
import pickle
import sys

import cloudpickle
import skypickle


@functools.lru_cache(maxsize=32)
def cached(x):
    return x * 2


cached(3)  # the cache itself does not travel


@functools.singledispatch
def dispatch(x):
    return "default"


@dispatch.register
def _(x: int):
    return "int"


@dispatch.register(list)
def _(x):
    return "list:" + str(len(x))


class Lazy:
    def __init__(self, base):
        self.base = base
        self.calls = 0

    @functools.cached_property
    def value(self):
        self.calls += 1
        return self.base * 10


def attempt(lib, obj):
    try:
        return ("ok", lib.dumps(obj))
    except Exception as exc:
        return ("dump-raise", type(exc).__name__)


objs = {"lru_cache": cached, "singledispatch": dispatch, "cached_property": Lazy}
result = {
    lib.__name__: {name: attempt(lib, obj) for name, obj in objs.items()}
    for lib in (skypickle, cloudpickle)
}
"""


def test_functools_wrappers_defined_in_a_script(run_in_subprocess):
    """BEYOND cloudpickle: ``functools.lru_cache`` and ``functools.singledispatch`` functions
    (with their registered implementations) and a class using ``functools.cached_property``,
    defined in a script's ``__main__``, work in a fresh interpreter. cloudpickle 3.1.2 fails on
    each (asserted): the lru_cache wrapper is pickled by reference to ``__main__`` (fails at
    load), singledispatch's registry holds a weakref (fails at dump), and before Python 3.12
    cached_property holds an RLock (fails at dump)."""
    dumped = run_child(run_in_subprocess, FUNCTOOLS_SCRIPT)
    for name, attempt in dumped["skypickle"].items():
        assert attempt[0] == "ok", (name, attempt)
    got = run_child(
        run_in_subprocess,
        """
        import __main__

        def use(name, obj):
            if name == "lru_cache":
                return (tuple(obj.cache_info()), obj(3), obj(4), obj(3),
                        tuple(obj.cache_info()), obj.__wrapped__(5), obj.__name__)
            if name == "singledispatch":
                return (obj(1), obj("s"), obj([1, 2]), sorted(c.__name__ for c in obj.registry))
            lazy = obj(4)
            return (lazy.value, lazy.value, lazy.calls, type(vars(obj)["value"]).__name__)

        attempts = pickle.loads(PAYLOAD)
        result = {}
        for lib, objs in attempts.items():
            for name, attempt in objs.items():
                if attempt[0] != "ok":
                    result[lib, name] = attempt
                    continue
                loaded = outcome(pickle.loads, attempt[1])
                if loaded[0] != "ok":
                    result[lib, name] = ("load-raise", loaded[1])
                else:
                    result[lib, name] = ("ok", outcome(use, name, loaded[1]))
        result["main_untouched"] = [
            n for n in ("cached", "dispatch", "Lazy") if hasattr(__main__, n)
        ]
        """,
        pickle.dumps(dumped),
    )
    # (hits, misses, maxsize, currsize): the sender's cache entry did not travel.
    assert got["skypickle", "lru_cache"] == (
        "ok",
        ("ok", ((0, 0, 32, 0), 6, 8, 6, (1, 2, 32, 2), 10, "cached")),
    )
    assert got["skypickle", "singledispatch"] == (
        "ok",
        ("ok", ("int", "default", "list:2", ["int", "list", "object"])),
    )
    assert got["skypickle", "cached_property"] == (
        "ok",
        ("ok", (40, 40, 1, "cached_property")),
    )
    assert got["main_untouched"] == []
    # cloudpickle 3.1.2
    assert got["cloudpickle", "lru_cache"] == ("load-raise", "AttributeError")
    assert got["cloudpickle", "singledispatch"] == ("dump-raise", "TypeError")
    if sys.version_info < (3, 12):
        assert got["cloudpickle", "cached_property"] == ("dump-raise", "TypeError")
    else:  # cached_property lost its lock in 3.12: cloudpickle manages it there
        assert got["cloudpickle", "cached_property"] == got["skypickle", "cached_property"]
