"""Module-level (hence importable, hence picklable by reference) classes used by the tests.

Every class here must be reachable as ``objects.<qualname>`` so that both the standard library
pickler and skypickle can save it as a global.
"""

from __future__ import annotations

import copyreg
import enum
import functools

# --------------------------------------------------------------------------------------------
# Subclasses of builtins
# --------------------------------------------------------------------------------------------


class MyList(list):
    pass


class MyDict(dict):
    pass


class MyTuple(tuple):
    pass


class MySet(set):
    pass


class MyFrozenSet(frozenset):
    pass


class MyStr(str):
    pass


class MyBytes(bytes):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyBytearray(bytearray):
    pass


# --------------------------------------------------------------------------------------------
# Plain classes, one per reduce hook
# --------------------------------------------------------------------------------------------


class Plain:
    """Default ``object.__reduce_ex__``: NEWOBJ (protocol 2+) or copyreg (0, 1) plus __dict__."""

    def __init__(self, value=None):
        self.value = value

    def __repr__(self):
        return f"Plain({self.__dict__!r})"


class Empty:
    """An instance with an empty ``__dict__`` (no state is saved)."""


class WithGetState:
    def __init__(self, value=None):
        self.value = value
        self.cache = "not pickled"

    def __getstate__(self):
        return {"value": self.value, "extra": [self.value]}

    def __setstate__(self, state):
        self.value = state["value"]
        self.extra = state["extra"]
        self.cache = "restored"


class WithNonDictState:
    """``__getstate__`` returning a tuple, consumed by ``__setstate__``."""

    def __init__(self, a=None, b=None):
        self.a = a
        self.b = b

    def __getstate__(self):
        return (self.a, self.b)

    def __setstate__(self, state):
        self.a, self.b = state


class FalsyState:
    """A false-y (but not None) state: protocols 0/1 (copyreg) drop it, 2+ still BUILD it."""

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.setstate_called_with = state


class WithGetNewArgs:
    """``__new__`` needs its argument: only works through ``__getnewargs__`` (protocol 2+)."""

    def __new__(cls, value):
        self = super().__new__(cls)
        self.value = value
        return self

    def __getnewargs__(self):
        return (self.value,)

    def __reduce_ex__(self, protocol):
        if protocol < 2:
            # protocols 0/1 cannot use NEWOBJ: fall back to a plain reduce.
            return (WithGetNewArgs, (self.value,), None)
        return super().__reduce_ex__(protocol)


class WithGetNewArgsEx:
    """``__getnewargs_ex__`` with keyword arguments: NEWOBJ_EX (4+) or functools.partial (2, 3)."""

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        self.args = args
        self.kwargs = kwargs
        return self

    def __getnewargs_ex__(self):
        return (self.args, self.kwargs)

    def __reduce_ex__(self, protocol):
        if protocol < 2:
            return (_make_newargs_ex, (self.args, self.kwargs), None)
        return super().__reduce_ex__(protocol)


def _make_newargs_ex(args, kwargs):
    return WithGetNewArgsEx(*args, **kwargs)


class WithSlots:
    __slots__ = ("x", "y")

    def __init__(self, x=None, y=None):
        self.x = x
        if y is not None:
            self.y = y  # leave 'y' unset sometimes: an unset slot is skipped


class WithSlotsAndDict:
    __slots__ = ("x", "__dict__")

    def __init__(self, x=None, **kw):
        self.x = x
        self.__dict__.update(kw)


class SlotsChild(WithSlots):
    __slots__ = ("z",)

    def __init__(self, x=None, y=None, z=None):
        super().__init__(x, y)
        self.z = z


class WithReduce:
    def __init__(self, value=None):
        self.value = value

    def __reduce__(self):
        return (WithReduce, (self.value,))


class WithReduceEx:
    """``__reduce_ex__`` wins over ``__reduce__``; the protocol is passed through."""

    def __init__(self, value=None, protocol_seen=None):
        self.value = value
        self.protocol_seen = protocol_seen

    def __reduce_ex__(self, protocol):
        return (WithReduceEx, (self.value, protocol))

    def __reduce__(self):  # pragma: no cover - must not be used
        raise AssertionError("__reduce__ called although __reduce_ex__ exists")


class ReduceWithState:
    """A 3-tuple reduce: state is applied with ``__setstate__``."""

    def __init__(self, value=None):
        self.value = value

    def __reduce__(self):
        return (ReduceWithState, (), {"value": self.value})

    def __setstate__(self, state):
        self.value = state["value"]


class ReduceStateNoSetstate:
    """A 3-tuple reduce without ``__setstate__``: the unpickler updates ``__dict__``."""

    def __init__(self, value=None):
        self.value = value

    def __reduce__(self):
        return (ReduceStateNoSetstate, (), {"value": self.value})


class ReduceSlotState:
    """State as the ``(dict_state, slot_state)`` pair."""

    __slots__ = ("s", "__dict__")

    def __init__(self, s=None, d=None):
        self.s = s
        self.d = d

    def __reduce__(self):
        return (ReduceSlotState, (), ({"d": self.d}, {"s": self.s}))


def set_state_with(obj, state):
    obj.set_by_setter = state
    return obj


class WithStateSetter:
    """A 6-tuple reduce whose last element is a state setter (honoured by protocol-5 picklers)."""

    def __init__(self, value=None):
        self.value = value

    def __reduce__(self):
        return (WithStateSetter, (self.value,), {"state": self.value}, None, None, set_state_with)


class ListItemsReduce:
    """A reduce with ``listitems``: APPENDS onto whatever the callable returns."""

    def __init__(self, items=()):
        self.items = list(items)

    def __reduce__(self):
        return (MyList, (), None, iter(self.items))


class DictItemsReduce:
    """A reduce with ``dictitems``: SETITEMS onto whatever the callable returns."""

    def __init__(self, items=None):
        self.items = dict(items or {})

    def __reduce__(self):
        return (MyDict, (), None, None, iter(self.items.items()))


class ListItemsNoneIter:
    """A 5-tuple whose listitems and dictitems are both None (they must be ignored)."""

    def __reduce__(self):
        return (Plain, (1,), None, None, None)


class SelfReferentialReduce:
    """The object's own reduce args contain the object (through a list).

    The pickler must notice, after REDUCE, that the object got memoised while its arguments
    were being saved, and replace its freshly built copy with a memo GET.
    """

    def __init__(self, box=None):
        self.box = box if box is not None else []

    def __reduce__(self):
        return (_rebuild_self_ref, (self.box,))


def _rebuild_self_ref(box):
    obj = SelfReferentialReduce.__new__(SelfReferentialReduce)
    obj.box = box
    return obj


def make_self_referential():
    obj = SelfReferentialReduce()
    obj.box.append(obj)
    return obj


class Singleton:
    """``__reduce__`` returns a string: the object is saved as the global of that name."""

    def __reduce__(self):
        return "SINGLETON"


SINGLETON = Singleton()


class Outer:
    class Inner:
        class Deeper:
            pass

        def method(self):
            return "inner"

    def method(self):
        return "outer"

    @staticmethod
    def static():
        return "static"

    @classmethod
    def klass(cls):
        return cls


class Color(enum.Enum):
    RED = 1
    GREEN = "green"
    BLUE = (3, 4)


class Perm(enum.IntFlag):
    R = 4
    W = 2
    X = 1


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def module_function(x):
    return x + 1


partial_of_module_function = functools.partial(module_function, 41)


class Point:
    """A plain class used for dispatch_table / reducer_override / copyreg tests."""

    def __init__(self, x=0, y=0):
        self.x = x
        self.y = y

    def __eq__(self, other):
        return type(other) is type(self) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self):
        return hash((self.x, self.y))

    def __repr__(self):
        return f"Point({self.x!r}, {self.y!r})"


def make_point(x, y):
    return Point(x, y)


def reduce_point(p):
    return (make_point, (p.x, p.y))


class Vec(Point):
    """Another class for registrations (kept separate so tests do not step on each other)."""


def make_vec(x, y):
    return Vec(x, y)


def reduce_vec(v):
    return (make_vec, (v.x, v.y))


# --------------------------------------------------------------------------------------------
# Broken objects for the error tests
# --------------------------------------------------------------------------------------------


class ReduceReturnsInt:
    def __reduce__(self):
        return 42


class ReduceReturnsNone:
    def __reduce__(self):
        return None


class ReduceTooShort:
    def __reduce__(self):
        return (list,)


class ReduceTooLong:
    def __reduce__(self):
        return (list, (), None, None, None, None, None)


class ReduceNotCallable:
    def __reduce__(self):
        return (42, ())


class ReduceArgsNotTuple:
    def __reduce__(self):
        return (list, [1, 2])


class ReduceBadListItems:
    def __reduce__(self):
        return (list, (), None, 42)


class ReduceBadDictItems:
    def __reduce__(self):
        return (dict, (), None, None, 42)


class ReduceBadStateSetter:
    def __reduce__(self):
        return (Plain, (), {"a": 1}, None, None, 42)


class ReduceExRaises:
    def __reduce_ex__(self, protocol):
        raise KeyError("user error from __reduce_ex__")


class ReduceRaises:
    def __reduce__(self):
        raise ZeroDivisionError("user error from __reduce__")


class GetStateRaises:
    def __getstate__(self):
        raise RuntimeError("user error from __getstate__")


class BadGetNewArgs:
    def __getnewargs__(self):
        return [1, 2]


class BadGetNewArgsEx:
    def __getnewargs_ex__(self):
        return ((), [])


class ReduceUnknownGlobalString:
    def __reduce__(self):
        return "NO_SUCH_NAME_IN_OBJECTS"


class NewobjWrongClass:
    """``copyreg.__newobj__`` with args[0] not the object's class (protocol 2+ checks it)."""

    def __reduce__(self):
        return (copyreg.__newobj__, (Plain,))


class NewobjNoArgs:
    """``copyreg.__newobj__`` with an empty argument tuple."""

    def __reduce__(self):
        return (copyreg.__newobj__, ())


class NewobjArgNotClass:
    """``copyreg.__newobj__`` whose first argument is not a class."""

    def __reduce__(self):
        return (copyreg.__newobj__, (42,))


def not_the_same():
    return "original"


def _impostor():
    return "impostor"


# A function whose __module__/__qualname__ claim to be ``objects.not_the_same`` but which is
# a different object: saving it by reference must fail with PicklingError.
impostor = _impostor
impostor.__qualname__ = "not_the_same"
impostor.__name__ = "not_the_same"


def _ghost():
    return "ghost"


# A function that claims a name that does not exist in this module.
ghost = _ghost
ghost.__qualname__ = "no_such_function_here"
ghost.__name__ = "no_such_function_here"


class Job:
    def __init__(self, handler):
        self.handler = handler


class Handler:
    def __init__(self, lock):
        self.lock = lock


class EndlessReduce:
    """Every reduce creates a new object to save as state: unbounded recursion."""

    def __reduce__(self):
        return (EndlessReduce, (), {"next": EndlessReduce()})


class Patchable:
    """A plain class whose hooks the tests patch at run time (and restore)."""

    def __init__(self, value=None):
        self.value = value


class GrowsParentList:
    """Its reduce appends to the list being pickled (the pickler re-reads the list's length)."""

    def __init__(self, parent):
        self.parent = parent

    def __reduce__(self):
        if len(self.parent) < 6:
            self.parent.append("appended during pickling")
        return (str, ("grower",))


class ClearsParent:
    """Its reduce clears the container being pickled."""

    def __init__(self, parent):
        self.parent = parent

    def __reduce__(self):
        self.parent.clear()
        return (str, ("clearer",))


class AddsToParentMapping:
    """Its reduce inserts into the dict or set being pickled."""

    def __init__(self, parent):
        self.parent = parent

    def __hash__(self):
        return 12345

    def __reduce__(self):
        if isinstance(self.parent, dict):
            self.parent[len(self.parent) + 1000] = "inserted"
        else:
            self.parent.add(len(self.parent) + 1000)
        return (str, ("adder",))


class NestedSky:
    """Its reduce pickles something else with skypickle (re-entrant use of the pickler)."""

    def __reduce__(self):
        import pickle

        import skypickle

        inner = skypickle.dumps([1, "nested", Plain(2)], protocol=2)
        return (pickle.loads, (inner,))


class NestedStd:
    """The stdlib twin of NestedSky: same reduce, made with pickle.dumps."""

    def __reduce__(self):
        import pickle

        inner = pickle.dumps([1, "nested", Plain(2)], protocol=2)
        return (pickle.loads, (inner,))
