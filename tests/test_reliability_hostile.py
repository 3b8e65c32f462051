"""Hostile objects on the dump side: hooks that raise or return garbage, objects whose
attribute access or hashing raises, subclasses of builtins with their own reduce hooks,
containers (a function's ``__dict__``, a class namespace, its globals) changed while they are
being pickled, giant values. Each gets what ``pickle`` gives (same bytes, or the same exception
type), and the interpreter stays healthy afterwards.

The error paths of ``__reduce__``/``__reduce_ex__``/``__getstate__``/``__getnewargs_ex__`` and
container mutation are in test_errors.py; 10**6-deep nesting in test_errors.py as well.
"""

from __future__ import annotations

import io
import pickle

import pytest
import skypickle
from byvalue_helpers import make_namespace

P = range(pickle.HIGHEST_PROTOCOL + 1)


def outcome(dumps, obj, proto, **kwargs):
    try:
        return ("ok", dumps(obj, protocol=proto, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - the type is the outcome
        return ("raise", type(exc))


def assert_healthy():
    data = {"k": [1, 2.5, "three", (None, True)]}
    assert skypickle.dumps(data) == pickle.dumps(data, protocol=5)
    assert pickle.loads(skypickle.dumps(lambda x: x + 1))(1) == 2


# --------------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------------


class GetattributeRaises:
    def __getattribute__(self, name):
        raise RuntimeError(f"no attribute {name} for you")


class GetattrRaises:
    def __getattr__(self, name):
        raise RuntimeError(f"__getattr__({name})")


class HashRaises:
    def __hash__(self):
        raise RuntimeError("no hash")

    def __eq__(self, other):
        raise RuntimeError("no eq")


class StrWithReduce(str):
    def __reduce__(self):
        return (str, ("replaced",))


class IntReduceExGarbage(int):
    def __reduce_ex__(self, proto):
        return 42


class DictReduceRaises(dict):
    def __reduce__(self):
        raise ValueError("dict subclass refuses")

    __reduce_ex__ = None  # so that __reduce__ is used


class TupleGetnewargs(tuple):
    def __getnewargs__(self):
        return ("a", "b")


class ReduceReturnsItself:
    def __reduce__(self):
        return (ReduceReturnsItself, (self,))


class ReduceEndless:
    """Every reduce makes a new object that reduces again."""

    def __init__(self, n=0):
        self.n = n

    def __reduce__(self):
        return (ReduceEndless, (ReduceEndless(self.n + 1),))


HOSTILE = {
    "getattribute_raises": GetattributeRaises,
    "getattr_raises": GetattrRaises,
    "hash_raises_in_set": lambda: [HashRaises(), {1, 2}],
    "hash_raises_as_value": lambda: {"k": HashRaises()},
    "str_subclass_reduce": lambda: StrWithReduce("original"),
    "int_subclass_reduce_ex_garbage": lambda: IntReduceExGarbage(5),
    "dict_subclass_reduce_raises": lambda: DictReduceRaises(a=1),
    "tuple_subclass_getnewargs": lambda: TupleGetnewargs((1, 2)),
    "reduce_returns_itself": ReduceReturnsItself,
    "reduce_endless": ReduceEndless,
    "giant_int": lambda: 7**200_000,
    "giant_negative_int": lambda: -(3**150_000),
    "giant_str": lambda: "ü" * (2 << 20),
    "giant_bytes": lambda: b"\x00" * (8 << 20),
}


@pytest.mark.parametrize("proto", P)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_objects_get_what_pickle_gives(case, proto):
    obj = HOSTILE[case]()
    expected = outcome(pickle.dumps, obj, proto)
    got = outcome(skypickle.dumps, obj, proto)
    if expected[0] == "raise" and expected[1] is RecursionError:
        # cloudpickle's contract: deep recursion becomes a PicklingError.
        assert got == ("raise", pickle.PicklingError)
    else:
        assert got == expected
    assert_healthy()


# --------------------------------------------------------------------------------------------
# Hooks that raise or return garbage
# --------------------------------------------------------------------------------------------


def _pickler_pair(**methods):
    """The same hooks on a stdlib Pickler subclass and on a skypickle one."""
    std = type("StdHooked", (pickle.Pickler,), dict(methods))
    sky = type("SkyHooked", (skypickle.Pickler,), dict(methods))
    return std, sky


def _dump_with(cls, obj, proto, **kw):
    f = io.BytesIO()
    try:
        cls(f, protocol=proto, **kw).dump(obj)
        return ("ok", f.getvalue())
    except BaseException as exc:  # noqa: BLE001
        return ("raise", type(exc))


HOOKS = {
    "reducer_override_raises": {"reducer_override": lambda self, o: 1 / 0},
    "reducer_override_returns_int": {"reducer_override": lambda self, o: 42},
    "reducer_override_returns_short_tuple": {"reducer_override": lambda self, o: (len,)},
    "reducer_override_returns_bad_callable": {
        "reducer_override": lambda self, o: (
            ("not callable", ()) if isinstance(o, list) else NotImplemented
        )
    },
    "persistent_id_raises": {"persistent_id": lambda self, o: [][1]},
    "persistent_id_unpicklable": {
        "persistent_id": lambda self, o: (lambda: 1) if isinstance(o, int) else None
    },
    "persistent_id_returns_itself": {"persistent_id": lambda self, o: o if o == 3 else None},
}


@pytest.mark.parametrize("proto", P)
@pytest.mark.parametrize("case", sorted(HOOKS))
def test_hooks_that_misbehave(case, proto):
    std, sky = _pickler_pair(**HOOKS[case])
    obj = [1, 2, 3, {"k": (4, 5)}]
    expected = _dump_with(std, obj, proto)
    got = _dump_with(sky, obj, proto)
    assert got[0] == expected[0]
    if got[0] == "raise":
        assert got[1] is expected[1] or issubclass(got[1], pickle.PicklingError), (got, expected)
    assert_healthy()


@pytest.mark.parametrize("behaviour", ["raises", "returns_garbage", "returns_true"])
def test_buffer_callback_that_misbehaves(behaviour):
    calls = []

    def callback(buf):
        calls.append(buf)
        if behaviour == "raises":
            raise OSError("disk full")
        return object() if behaviour == "returns_garbage" else True

    obj = [pickle.PickleBuffer(b"abc"), pickle.PickleBuffer(bytearray(b"def"))]
    expected = outcome(pickle.dumps, obj, 5, buffer_callback=callback)
    got = outcome(skypickle.dumps, obj, 5, buffer_callback=callback)
    assert got == expected
    assert_healthy()


# --------------------------------------------------------------------------------------------
# By-value containers changed while they are pickled
# --------------------------------------------------------------------------------------------

MUTATING_SOURCE = """
import pickle


class Grows:
    '''Adds an entry to a dict of its owner's while it is being reduced.'''

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        for i in range(50):
            self.target[f"added{i}"] = i
        return (int, (1,))


class Shrinks:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        self.target.clear()
        return (int, (2,))


def f(x):
    return VALUE, OTHER, x


VALUE = 1
OTHER = 2


class Owner:
    a = 1

    def method(self):
        return self.a
"""


@pytest.mark.parametrize("proto", [2, 5])
@pytest.mark.parametrize(
    "case", ["function_dict_grows", "function_dict_cleared", "globals_cleared", "class_grows"]
)
def test_by_value_containers_changed_while_pickled(case, proto):
    ns = make_namespace(MUTATING_SOURCE)
    f, owner = ns["f"], ns["Owner"]
    if case == "function_dict_grows":
        f.__dict__.update(first=1, grows=ns["Grows"](f.__dict__), last=3)
        obj = f
    elif case == "function_dict_cleared":
        f.__dict__.update(first=1, shrinks=ns["Shrinks"](f.__dict__), last=3)
        obj = f
    elif case == "globals_cleared":
        ns["VALUE"] = ns["Shrinks"](ns)
        obj = f
    else:
        owner.b = ns["Grows"](vars(ns["f"]))  # mutates another namespace mid-pickle
        obj = owner
    try:
        data = skypickle.dumps(obj, protocol=proto)
    except RuntimeError as exc:  # "dictionary changed size during iteration"
        assert "changed size" in str(exc)
    else:
        assert pickle.loads(data) is not None
    assert_healthy()


class _SetChanger:
    """A set item whose reducer changes the set being pickled: skypickle reads a set's hash
    table directly (ffi::set_entries), so a table that is grown, emptied or rebuilt under it
    must end in CPython's RuntimeError or in a payload that loads, never a crash."""

    def __init__(self, how):
        self.how = how
        self.target = None

    def __reduce__(self):
        target, self.target = self.target, None
        if target is not None:
            if self.how == "grow":
                target.update(f"grown{i}" for i in range(5000))
            elif self.how == "clear":
                target.clear()
            elif self.how == "swap":  # same size, rebuilt table
                removed = [x for x in target if isinstance(x, int)][:100]
                target.difference_update(removed)
                target.update(-1 - i for i in range(len(removed)))
        return (str, ("changer",))


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("proto", [2, 5])
@pytest.mark.parametrize("how", ["grow", "clear", "swap"])
def test_set_changed_by_an_item_reducer(how, proto, deterministic):
    for size in (3, 2500):
        changer = _SetChanger(how)
        target = set(range(size))
        target.add(changer)
        changer.target = target
        try:
            data = skypickle.dumps(target, protocol=proto, deterministic=deterministic)
        except RuntimeError as exc:
            assert "changed size" in str(exc)
        else:
            assert isinstance(pickle.loads(data), set)
    assert_healthy()
