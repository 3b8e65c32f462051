"""Classes by value: what skypickle does for classes the loader cannot import by name.

Classes of a script (``__main__``-like namespace), local classes and classes whose
``__qualname__``/``__module__`` do not lead back to them are pickled BY VALUE: a skeleton made
with their metaclass, name and bases, then their namespace (methods, properties, class
attributes, ...). A tracker id makes one class of all the copies loaded in a process, and sends a
class loaded elsewhere back to the original. Enums travel with their members.

Every by-value case is loaded with plain ``pickle`` in a fresh interpreter where the defining code
does not exist (``byvalue_helpers.run_child`` checks that the test modules cannot be imported
there, and so does ``child`` below for this module) and its behaviour is checked there.
Where skypickle goes beyond cloudpickle 3.1.2, the test's docstring says so and the test asserts
cloudpickle's behaviour too.
"""

import abc
import enum
import pickle
import re
import sys
import textwrap
import threading

import cloudpickle
import pytest
import skypickle
from byvalue_helpers import CHILD_TOOLS, make_namespace, run_child
from helpers import reconstructors

PROTOCOLS = (2, 3, 4, 5)
ALL_PROTOCOLS = tuple(range(pickle.HIGHEST_PROTOCOL + 1))
THIS_MODULE = __name__

SKELETONS = ("_make_skeleton_class", "_make_skeleton_enum")


def count_skeletons(payload):
    calls = reconstructors(payload)
    return sum(calls[name] for name in SKELETONS)


def is_class_by_value(payload):
    return count_skeletons(payload) > 0


CHILD_GUARD = f"""
import importlib.util as _importlib_util

assert _importlib_util.find_spec({THIS_MODULE!r}) is None, "the test module is importable"
"""

CHILD_GUARD_END = f"""
assert {THIS_MODULE!r} not in sys.modules, "the test module was imported by loading"
"""


def child(run_in_subprocess, body, payload=None):
    """``run_child`` with this module's own guard: it must not be importable in the child."""
    return run_child(
        run_in_subprocess,
        CHILD_GUARD + textwrap.dedent(body) + CHILD_GUARD_END,
        payload,
    )


def compare(run_in_subprocess, obj, body, *, protocol=None):
    """Run ``body`` on ``obj`` here and on its skypickle copy in a fresh interpreter (like
    ``byvalue_helpers.compare_in_child``, with this module's guard in the child only).

    ``body`` sees the object as ``OBJ`` and must set ``result`` (plain data). The payload is made
    first, so whatever ``body`` does to the originals here cannot leak into the child. Returns
    ``(expected, got, payload)``.
    """
    body = textwrap.dedent(body)
    payload = skypickle.dumps(obj, protocol=protocol)
    got = child(run_in_subprocess, "OBJ = pickle.loads(PAYLOAD)\n" + body, payload)
    namespace = {"OBJ": obj}
    exec(CHILD_TOOLS, namespace)
    exec(body, namespace)
    return namespace["result"], got, payload


def pack(**payloads):
    """Several payloads in one file for a child (a dict of bytes, pickled by the stdlib)."""
    return pickle.dumps(payloads)


def plain_call(fn, *args, **kwargs):
    """("ok", value) or ("raise", exception type name): like the child's ``outcome``."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:
        return ("raise", type(exc).__name__)


# --------------------------------------------------------------------------------------------
# The classes. Each source runs in a namespace named after no module (a script or notebook):
# its classes cannot be imported by the loader, so they travel by value.
# --------------------------------------------------------------------------------------------

CLASS_SOURCE = '''
import collections

GREETING = "hello"


class Base:
    """A base class."""

    kind = "base"
    limit: int = 10
    tags = ("a", "b")
    label: str

    def __init__(self, value):
        self.value = value
        self._secret = None

    def __repr__(self):
        return f"{type(self).__name__}({self.value!r})"

    def __eq__(self, other):
        return type(self) is type(other) and self.value == other.value

    def __hash__(self):
        return hash(self.value)

    def double(self):
        return self.value * 2

    def greet(self):
        return f"{GREETING}, {self.value}"

    @property
    def doubled(self):
        """Read-only."""
        return self.double()

    @property
    def secret(self):
        return self._secret

    @secret.setter
    def secret(self, new):
        self._secret = new * 2

    @secret.deleter
    def secret(self):
        self._secret = "deleted"

    @classmethod
    def make(cls, value):
        return cls(value)

    @staticmethod
    def helper(x):
        return x + 1


class Sub(Base):
    kind = "sub"

    def __init__(self, value, extra):
        super().__init__(value)
        self.extra = extra

    def double(self):
        return ("sub", super().double())

    def __repr__(self):
        return f"Sub({self.value!r}, {self.extra!r})"


class Outer:
    class Inner:
        """Nested."""

        def where(self):
            return "inner"


class Registered:
    created = []

    def __init_subclass__(cls, tag="default", **kwargs):
        super().__init_subclass__(**kwargs)
        cls.tag = tag
        Registered.created.append((cls.__name__, tag, sorted(kwargs)))


class Tagged(Registered, tag="custom"):
    pass


class Meta(type):
    made = []

    def __new__(mcs, name, bases, namespace, **kwargs):
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        mcs.made.append(name)
        return cls

    def __call__(cls, *args, **kwargs):
        instance = super().__call__(*args, **kwargs)
        instance.via_meta = cls.__name__
        return instance

    def describe(cls):
        return "meta:" + cls.__name__


class WithMeta(metaclass=Meta):
    def __init__(self, a):
        self.a = a


class Words(collections.OrderedDict):
    def first(self):
        return next(iter(self))


class Tally(collections.Counter):
    def top(self):
        return self.most_common(1)[0]


class AppError(ValueError):
    def __init__(self, code):
        super().__init__(f"code {code}")
        self.code = code
'''

CLASS_NAMES = ("Base", "Sub", "Outer", "Registered", "Tagged", "Meta", "WithMeta", "Words")
CLASS_NAMES += ("Tally", "AppError")


def make_class_corpus():
    ns = make_namespace(CLASS_SOURCE)
    return {name: ns[name] for name in CLASS_NAMES}


def make_local_classes():
    class Point:
        """A local class."""

        dims = 2

        def __init__(self, x, y):
            self.x, self.y = x, y

        def norm2(self):
            return self.x**2 + self.y**2

    class Point3(Point):
        dims = 3

        def __init__(self, x, y, z):
            super().__init__(x, y)
            self.z = z

        def norm2(self):
            return super().norm2() + self.z**2

    return Point, Point3


class ImportableClass:
    """Importable by its module and qualname: travels by reference."""

    def hello(self):
        return "importable"


class _Renamed:
    def hello(self):
        return "renamed"


_Renamed.__qualname__ = "NoSuchClassHere"


class _InMain:
    def hello(self):
        return "main"


_InMain.__module__ = "__main__"  # the test runner's __main__ has no such class

# Kept under other names only: neither the classes' nor their methods' qualnames resolve (a
# method whose ``Class.method`` qualname still resolves here would go by reference).
RenamedClass, MainModuleClass = _Renamed, _InMain
del _Renamed, _InMain


# --------------------------------------------------------------------------------------------
# By reference or by value
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", ALL_PROTOCOLS)
def test_importable_classes_go_by_reference(proto):
    for cls in (ImportableClass, enum.Enum, threading.Thread, abc.ABC):
        payload = skypickle.dumps(cls, protocol=proto)
        assert not is_class_by_value(payload), cls
        assert pickle.loads(payload) is cls
        assert skypickle._should_pickle_by_reference(cls) is True


def test_non_importable_classes_go_by_value():
    point, point3 = make_local_classes()
    corpus = make_class_corpus()
    cases = [point, point3, RenamedClass, MainModuleClass, *corpus.values()]
    for cls in cases:
        assert skypickle._should_pickle_by_reference(cls) is False, cls
        payload = skypickle.dumps(cls)
        assert is_class_by_value(payload), cls
        # In the defining process, tracking gives the original class back.
        assert pickle.loads(payload) is cls


def test_local_and_renamed_classes_work_in_fresh_interpreter(run_in_subprocess):
    point, point3 = make_local_classes()
    expected, got, _ = compare(
        run_in_subprocess,
        {"point": point, "point3": point3, "renamed": RenamedClass, "main": MainModuleClass},
        """
        P, P3 = OBJ["point"], OBJ["point3"]
        p3 = P3(1, 2, 3)
        result = {
            "norm": (P(3, 4).norm2(), p3.norm2()),
            "dims": (P.dims, P3.dims, p3.dims),
            "mro": [c.__name__ for c in P3.__mro__],
            "base_is_loaded": P3.__bases__ == (P,),
            "isinstance": isinstance(p3, P),
            "doc": (P.__doc__, P3.__doc__),
            "module": (P.__module__, OBJ["renamed"].__module__, OBJ["main"].__module__),
            "hello": (OBJ["renamed"]().hello(), OBJ["main"]().hello()),
        }
        """,
    )
    assert got == expected
    assert got["norm"] == (25, 14)
    assert got["module"] == (THIS_MODULE, THIS_MODULE, "__main__")


# --------------------------------------------------------------------------------------------
# Class features in a fresh interpreter, every protocol
# --------------------------------------------------------------------------------------------

FEATURES_BODY = """
C = OBJ
Base, Sub = C["Base"], C["Sub"]
b = Base(3)
b.secret = 4
secret_set = b.secret
del b.secret
s = Sub(5, "x")
try:
    raise C["AppError"](404)
except ValueError as exc:
    error = (type(exc).__name__, str(exc), exc.code, isinstance(exc, ValueError))
result = {
    "repr": (repr(b), repr(s), repr(Base.make(7))),
    "methods": (b.double(), b.greet(), s.double(), s.greet()),
    "read_only_property": (b.doubled, s.doubled, outcome(setattr, b, "doubled", 1)[:2]),
    "read_write_property": (secret_set, b.secret),
    "property_doc": Base.doubled.__doc__,
    "classmethod": (repr(Base.make(2)), outcome(Sub.make, 2)[:2]),
    "staticmethod": (Base.helper(1), b.helper(2), Sub.helper(3)),
    "class_attrs": (Base.kind, Sub.kind, Base.limit, Base.tags, s.limit),
    "eq_hash": (Base(1) == Base(1), Base(1) == Base(2), b == s, hash(Base(9)) == hash(9)),
    "subclass": (isinstance(s, Base), issubclass(Sub, Base), Sub.__mro__ == (Sub, Base, object)),
    "super_init": (s.value, s.extra, s._secret),
    "doc": (Base.__doc__, Sub.__doc__, C["Outer"].Inner.__doc__),
    "module": {name: cls.__module__ for name, cls in C.items()},
    "names": {name: cls.__name__ for name, cls in C.items()},
    "annotations": (Base.__annotations__, Sub.__dict__.get("__annotations__")),
    "inner": C["Outer"].Inner().where(),
    "tagged": (C["Tagged"].tag, C["Tagged"].__mro__[1] is C["Registered"]),
    "meta": (
        type(C["WithMeta"]) is C["Meta"],
        C["WithMeta"](1).via_meta,
        C["WithMeta"](2).a,
        C["WithMeta"].describe(),
    ),
    "importable_bases": (
        C["Words"]([("b", 1), ("a", 2)]).first(),
        [c.__name__ for c in C["Words"].__mro__],
        C["Tally"]("abracadabra").top(),
    ),
    "error": error,
    # What loading did: __init_subclass__ and the metaclass ran again (see the test).
    "load_effects": (list(C["Registered"].created), list(C["Meta"].made)),
}
"""


@pytest.mark.parametrize("proto", ALL_PROTOCOLS)
def test_class_features_in_fresh_interpreter(run_in_subprocess, proto):
    corpus = make_class_corpus()
    expected, got, payload = compare(run_in_subprocess, corpus, FEATURES_BODY, protocol=proto)
    assert is_class_by_value(payload)
    here_effects, there_effects = expected.pop("load_effects"), got.pop("load_effects")
    assert got == expected
    assert got["methods"] == (6, "hello, 3", ("sub", 10), "hello, 5")
    assert got["read_only_property"][2] == ("raise", "AttributeError")
    assert got["read_write_property"] == (8, "deleted")
    assert got["classmethod"] == ("Base(2)", ("raise", "TypeError"))
    assert got["super_init"] == (5, "x", None)
    assert got["doc"] == ("A base class.", None, "Nested.")
    assert set(got["module"].values()) == {corpus["Base"].__module__}
    assert got["annotations"] == ({"limit": int, "label": str}, None)
    assert got["tagged"] == ("custom", True)
    assert got["meta"] == (True, "WithMeta", 2, "meta:WithMeta")
    # Loading rebuilds the skeleton through the metaclass and the bases' __init_subclass__,
    # called WITHOUT the class keywords (they are kept nowhere); the namespace state then puts
    # the class's own attributes back (``Tagged.tag`` is "custom" again).
    created, made = here_effects
    assert created == [("Tagged", "custom", [])]
    assert made == ["WithMeta"]
    assert there_effects == (created + [("Tagged", "default", [])], made + ["WithMeta"])


def test_metadata_matches_cloudpickle(run_in_subprocess):
    """``__qualname__`` is not in a class's ``__dict__``: it is not transmitted and becomes the
    class's name (an enum keeps it). ``__name__``, ``__module__`` and ``__doc__`` travel. This is
    cloudpickle 3.1.2's behaviour, and skypickle's payload gives the same in the child."""
    corpus = make_class_corpus()
    point, _ = make_local_classes()
    enums = make_enum_corpus()
    nested_enum = make_namespace(
        """
        import enum

        class Holder:
            class Mode(enum.Enum):
                ON = 1
        """
    )["Holder"].Mode
    objs = {
        "Base": corpus["Base"],
        "Inner": corpus["Outer"].Inner,
        "local": point,
        "renamed": RenamedClass,
        "Color": enums["Color"],
        "nested_enum": nested_enum,
    }
    assert objs["Inner"].__qualname__ == "Outer.Inner"
    assert objs["local"].__qualname__ == "make_local_classes.<locals>.Point"
    got = child(
        run_in_subprocess,
        """
        def describe(objs):
            return {
                name: (cls.__name__, cls.__qualname__, cls.__module__, cls.__doc__)
                for name, cls in objs.items()
            }

        payloads = pickle.loads(PAYLOAD)
        result = {lib: describe(pickle.loads(data)) for lib, data in payloads.items()}
        """,
        pack(sky=skypickle.dumps(objs), cp=cloudpickle.dumps(objs)),
    )
    assert got["sky"] == got["cp"]
    assert got["sky"]["Inner"][:3] == ("Inner", "Inner", corpus["Base"].__module__)
    assert got["sky"]["local"][:3] == ("Point", "Point", THIS_MODULE)
    assert got["sky"]["renamed"][:2] == ("_Renamed", "_Renamed")
    assert got["sky"]["Base"] == ("Base", "Base", corpus["Base"].__module__, "A base class.")
    assert got["sky"]["nested_enum"][:2] == ("Mode", "Holder.Mode")


# --------------------------------------------------------------------------------------------
# Class tracking
# --------------------------------------------------------------------------------------------

TRACKING_SOURCE = """
class Thing:
    def __init__(self, n):
        self.n = n

    def version(self):
        return "v1"
"""

TRACKING_SOURCE_REDEFINED = TRACKING_SOURCE.replace('"v1"', '"v2"')


def test_loading_twice_gives_one_class_in_process():
    corpus = make_class_corpus()
    for proto in ALL_PROTOCOLS:
        for cls in corpus.values():
            assert pickle.loads(skypickle.dumps(cls, protocol=proto)) is cls
        instance = pickle.loads(skypickle.dumps(corpus["Sub"](1, 2), protocol=proto))
        assert type(instance) is corpus["Sub"]


def test_loading_twice_gives_one_class_in_child(run_in_subprocess):
    corpus = make_class_corpus()
    base, sub = corpus["Base"], corpus["Sub"]
    got = child(
        run_in_subprocess,
        """
        p = pickle.loads(PAYLOAD)
        a = pickle.loads(p["class"])
        b = pickle.loads(p["class"])
        instances = pickle.loads(p["instances"])
        sub_cls = pickle.loads(p["sub"])
        result = (
            a is b,
            type(instances[0]) is a,
            type(instances[1]) is sub_cls,
            sub_cls.__bases__[0] is a,
            isinstance(instances[1], a),
        )
        """,
        pack(
            **{
                "class": skypickle.dumps(base),
                "instances": skypickle.dumps([base(1), sub(2, 3)], protocol=2),
                "sub": skypickle.dumps(sub, protocol=4),
            }
        ),
    )
    assert got == (True, True, True, True, True)


def test_class_sent_back_is_the_original(run_in_subprocess):
    """A class loaded in a worker and sent back (with instances) is the original class."""
    corpus = make_class_corpus()
    enums = make_enum_corpus()
    data = make_data_corpus()
    typed = make_typing_corpus()
    sent = {
        "base": corpus["Base"](1),
        "sub": corpus["Sub"](2, "y"),
        "meta": corpus["WithMeta"](3),
        "color": enums["Color"].GREEN,
        "perm": enums["Perm"].R | enums["Perm"].W,
        "letter": enums["Letter"].B,
        "item": data["Item"]("pen", 2.0),
        "frozen": data["Frozen"](1),
        "pair": typed["Pair"](1, "x"),
        "box": typed["Box"](5),
        "classes": (corpus["Tagged"], typed["Box"], typed["T"]),
    }
    returned = child(
        run_in_subprocess,
        """
        import skypickle

        received = pickle.loads(PAYLOAD)
        received["base"].value += 100
        received["item"].tags.append("from-child")

        class ChildOnly:  # defined in the child: goes back by value, a new class there
            def where(self):
                return "child"

        received["child_only"] = ChildOnly()
        result = skypickle.dumps(received)
        """,
        skypickle.dumps(sent),
    )
    back = pickle.loads(returned)
    assert type(back["base"]) is corpus["Base"] and back["base"].value == 101
    assert type(back["sub"]) is corpus["Sub"] and isinstance(back["sub"], corpus["Base"])
    assert type(back["meta"]) is corpus["WithMeta"] and back["meta"].via_meta == "WithMeta"
    assert back["color"] is enums["Color"].GREEN
    assert back["perm"] == enums["Perm"].R | enums["Perm"].W
    assert type(back["perm"]) is enums["Perm"]
    assert back["letter"] is enums["Letter"].B
    assert type(back["item"]) is data["Item"] and back["item"].tags == ["from-child"]
    assert type(back["frozen"]) is data["Frozen"] and back["frozen"] == data["Frozen"](1)
    assert type(back["pair"]) is typed["Pair"] and back["pair"] == typed["Pair"](1, "x")
    assert type(back["box"]) is typed["Box"] and back["box"].get() == 5
    assert back["classes"][0] is corpus["Tagged"]
    assert back["classes"][1] is typed["Box"]
    assert back["classes"][2] is typed["T"]
    child_only = type(back["child_only"])
    assert child_only.__name__ == "ChildOnly" and child_only.__module__ == "__main__"
    assert back["child_only"].where() == "child"


def test_redefined_class_is_a_new_class(run_in_subprocess):
    """Redefining a class in the sender gives it a new identity: instances the worker received
    before are not instances of the new class, and each goes back to its own class."""
    old_ns = make_namespace(TRACKING_SOURCE, "byvalue_tracking_main")
    new_ns = make_namespace(TRACKING_SOURCE_REDEFINED, "byvalue_tracking_main")
    old, new = old_ns["Thing"](1), new_ns["Thing"](2)
    returned = child(
        run_in_subprocess,
        """
        import skypickle

        p = pickle.loads(PAYLOAD)
        old = pickle.loads(p["old"])
        new = pickle.loads(p["new"])
        again = pickle.loads(p["old_again"])
        checks = (
            type(old) is type(new),
            isinstance(old, type(new)),
            type(again) is type(old),
            old.version(),
            new.version(),
            type(old).__name__ == type(new).__name__,
        )
        result = (checks, skypickle.dumps((old, new)))
        """,
        pack(
            old=skypickle.dumps(old),
            new=skypickle.dumps(new),
            old_again=skypickle.dumps(old_ns["Thing"](3)),
        ),
    )
    checks, data = returned
    assert checks == (False, False, True, "v1", "v2", True)
    back_old, back_new = pickle.loads(data)
    assert type(back_old) is old_ns["Thing"] and type(back_new) is new_ns["Thing"]


def test_changes_in_the_sender_reach_the_tracked_class(run_in_subprocess):
    """Sending a class again updates the copy the worker already has (cloudpickle's tracking:
    the state is set on the class found by its tracker id)."""
    ns = make_namespace(TRACKING_SOURCE)
    cls = ns["Thing"]
    first = skypickle.dumps(cls(1))
    cls.added = "patched"
    cls.version = lambda self: "patched-v"
    second = skypickle.dumps(cls(2))
    got = child(
        run_in_subprocess,
        """
        p = pickle.loads(PAYLOAD)
        one = pickle.loads(p["first"])
        before = (one.version(), hasattr(type(one), "added"))
        two = pickle.loads(p["second"])
        result = (before, type(one) is type(two), one.version(), type(one).added)
        """,
        pack(first=first, second=second),
    )
    assert got == (("v1", False), True, "patched-v", "patched")


# --------------------------------------------------------------------------------------------
# Determinism (cloudpickle §5.1): chained pickling gives the original bytes
# --------------------------------------------------------------------------------------------

DETERMINISM_SOURCE = '''
import abc
import enum
import typing


class Interned:
    """Docstring placed first."""

    arg = "a class attribute named like an argument"
    label = "label"
    shared = ((1, 2), ("x", "y"))

    def __init__(self, arg):
        """Explicit __init__ docstring."""
        # Not ``self.stored = arg``: from Python 3.13 that breaks chained pickling when the worker
        # already knows the name (see CHAINED_GAPS["static_attributes"]).
        vars(self).update(stored=arg)

    def method(self, arg, flag=True):
        return (self.stored, arg, flag)

    def shares_a(self):
        return ((1, 2), ("x", "y"))

    def shares_b(self):
        return ((1, 2), ("x", "y"), 3)

    @property
    def prop(self):
        return self.arg

    @classmethod
    def make(cls, arg="some default text"):
        return cls(arg)


Interned.zz_late = "late attribute"
Interned.aa_late = 2
Interned.method.arg = "a function attribute named like a class attribute"


class Derived(Interned):
    arg = "overridden"

    def method(self, arg, flag=False):
        return ("derived", super().method(arg, flag))


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"

    def painted(self):
        return "color " + self.value


class Shape(abc.ABC):
    @abc.abstractmethod
    def area(self): ...


T = typing.TypeVar("T")


class Box(typing.Generic[T]):
    item: T
'''


def make_determinism_corpus():
    ns = make_namespace(DETERMINISM_SOURCE)
    return {name: ns[name] for name in ("Interned", "Derived", "Color", "Shape", "Box")}


REDUMP_BODY = """
import skypickle

payloads = pickle.loads(PAYLOAD)
result = {}
for (name, proto), data in payloads.items():
    obj = pickle.loads(data)
    result[name, proto] = skypickle.dumps(obj, protocol=proto)
"""


def test_chained_pickling_gives_the_original_bytes(run_in_subprocess):
    """Pickled here, loaded in a worker and pickled again there: the same bytes (same tracker
    ids, sorted class dicts, fresh copies of names, so interning on either side never shows).
    Then once more, from the worker's bytes, in a third interpreter.

    Each payload is made from its own definition of the classes (so its own tracker ids): the
    worker receives each class once (see test_chained_pickling_of_a_class_received_twice).
    """
    payloads = {}
    for proto in ALL_PROTOCOLS:
        for name in ("Interned", "Derived", "Color", "Shape", "Box", "all"):
            corpus = make_determinism_corpus()
            obj = tuple(corpus.values()) if name == "all" else corpus[name]
            payloads[name, proto] = skypickle.dumps(obj, protocol=proto)
    got = child(run_in_subprocess, REDUMP_BODY, pickle.dumps(payloads))
    differ = sorted(key for key, data in payloads.items() if got[key] != data)
    assert not differ, f"re-pickled in the worker, these differ: {differ}"
    third = child(run_in_subprocess, REDUMP_BODY, pickle.dumps(got))
    assert third == payloads


CHAINED_GAPS = {
    # A string VALUE equal to a NAME in the class's code: the compiler interns both, so here
    # they are one object (the second is a memo GET); in the worker, building the code object
    # interns the names again and the value is left a separate object, so it is written out.
    "value_equal_to_a_name": """
class C:
    def f(self, value="value"):
        return value
""",
    # A keyword-only argument with a default: the ``__kwdefaults__`` key and the code's
    # ``co_varnames`` entry are one interned object here, two in the worker.
    "keyword_only_default": """
class C:
    def f(self, *, flag=True):
        return flag
""",
    # Python 3.13+: __static_attributes__ holds the same interned name as the method's co_names
    # (closed: names are written by their text).
    "static_attributes": """
class C:
    def __init__(self):
        self.name = 1
""",
    # The simplest dataclass: each ``Field``'s slot state ``{"name": "name", ...}`` has the
    # slot name and the field's name as one interned object here, two objects in the worker.
    "dataclass": """
import dataclasses

@dataclasses.dataclass
class C:
    name: str
""",
}


CHAINED_GAP_REASON = (
    "Chained pickling is not byte-stable when equal strings are one (interned) object in the "
    "sender and two in the worker (see CHAINED_GAPS): skypickle writes the names of code objects, "
    "functions' attribute and global names and class-dict keys by their text, but the keys of a "
    "slot-state dict (dataclass fields) by identity. cloudpickle 3.1.2 gives different bytes too."
)
# Gaps that writing names by their text closed (cloudpickle 3.1.2 still has them). On 3.13,
# __static_attributes__ kept the payload's string while co_names was interned again.
CHAINED_GAPS_CLOSED = {"value_equal_to_a_name", "keyword_only_default", "static_attributes"}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=CHAINED_GAP_REASON))
        for case in CHAINED_GAPS
        if case not in CHAINED_GAPS_CLOSED
    ]
    + sorted(CHAINED_GAPS_CLOSED),
)
def test_chained_pickling_with_shared_strings(run_in_subprocess, case):
    cls = make_namespace(CHAINED_GAPS[case])["C"]
    payloads = {(case, proto): skypickle.dumps(cls, protocol=proto) for proto in (2, 5)}
    got = child(run_in_subprocess, REDUMP_BODY, pickle.dumps(payloads))
    assert got == payloads


def test_chained_pickling_of_a_class_received_twice(run_in_subprocess):
    """A worker that receives a class twice re-pickles it (and its subclass) with the original
    bytes: the second payload sets only what changed, so the tracked base keeps the first
    payload's objects. (cloudpickle 3.1.2 sets the whole state again: the base's __module__
    becomes the new payload's string while the subclass keeps the first one's, and the bytes
    differ.)"""
    corpus = make_determinism_corpus()
    payloads = {("Derived", 2): skypickle.dumps(corpus["Derived"], protocol=2)}
    payloads["Derived", 3] = skypickle.dumps(corpus["Derived"], protocol=3)
    got = child(run_in_subprocess, REDUMP_BODY, pickle.dumps(payloads))
    assert got[("Derived", 2)] == payloads[("Derived", 2)]  # the first one is fine
    assert got == payloads


ORDERING_SOURCE = """
class Ordered:
    def method(self):
        return "method"
"""


def test_class_dict_order_does_not_show():
    """Attributes set in a different order give the same bytes (the class dict is sorted); only
    the tracker ids (random, as in cloudpickle) differ."""
    first = make_namespace(ORDERING_SOURCE, "byvalue_ordering")["Ordered"]
    second = make_namespace(ORDERING_SOURCE, "byvalue_ordering")["Ordered"]
    first.zeta, first.alpha, first.mid = 1, "two", (3,)
    second.mid, second.alpha, second.zeta = (3,), "two", 1
    assert list(vars(first)) != list(vars(second))
    for proto in ALL_PROTOCOLS:
        a = skypickle.dumps(first, protocol=proto)
        b = skypickle.dumps(second, protocol=proto)
        ids_a = set(re.findall(rb"[0-9a-f]{32}", a))
        ids_b = set(re.findall(rb"[0-9a-f]{32}", b))
        assert len(ids_a) == len(ids_b) == 1
        assert a != b
        assert a.replace(ids_a.pop(), b"X" * 32) == b.replace(ids_b.pop(), b"X" * 32)


def test_repeated_dumps_are_identical():
    corpus = {}
    for prefix, part in [
        ("class", make_class_corpus()),
        ("determinism", make_determinism_corpus()),
        ("enum", make_enum_corpus()),
        ("data", make_data_corpus()),
    ]:
        corpus.update({(prefix, name): cls for name, cls in part.items()})
    for proto in sorted(ALL_PROTOCOLS, reverse=True):
        if proto < 2:  # dataclasses need protocol 2 (see test_dataclasses_need_protocol_2)
            corpus = {k: v for k, v in corpus.items() if k[0] != "data"}
        first = skypickle.dumps(corpus, protocol=proto)
        assert skypickle.dumps(corpus, protocol=proto) == first
        # Pickling other things in between (new tracker ids elsewhere) changes nothing.
        skypickle.dumps(make_local_classes(), protocol=proto)
        assert skypickle.dumps(corpus, protocol=proto) == first
    # Each class alone also pickles the same way again.
    for cls in corpus.values():
        assert skypickle.dumps(cls) == skypickle.dumps(cls)


# --------------------------------------------------------------------------------------------
# Enums
# --------------------------------------------------------------------------------------------

ENUM_SOURCE = """
import enum


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3

    def describe(self):
        return f"{self.name.lower()}={self.value}"

    @classmethod
    def default(cls):
        return cls.GREEN

    @property
    def is_warm(self):
        return self is Color.RED


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 10


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


class Mode(enum.IntFlag):
    READ = 1
    WRITE = 2
    EXEC = 4


class Letter(str, enum.Enum):
    A = "a"
    B = "b"

    def shout(self):
        return self.value.upper() + "!"


class Auto(enum.Enum):
    FIRST = enum.auto()
    SECOND = enum.auto()


Shape = enum.Enum("Shape", "CIRCLE SQUARE")
Animal = enum.Enum("Animal", [("CAT", "meow"), ("DOG", "woof")])
"""

ENUM_NAMES = ("Color", "Level", "Perm", "Mode", "Letter", "Auto", "Shape", "Animal")


def make_enum_corpus():
    ns = make_namespace(ENUM_SOURCE)
    return {name: ns[name] for name in ENUM_NAMES}


ENUM_BODY = """
import skypickle

E = OBJ
Color, Level, Perm, Mode = E["Color"], E["Level"], E["Perm"], E["Mode"]
Letter, Shape, Animal = E["Letter"], E["Shape"], E["Animal"]
result = {
    "members": {name: [(m.name, m.value) for m in cls] for name, cls in E.items()},
    "reprs": {name: [repr(m) for m in cls] for name, cls in E.items()},
    "lookup": (Color(2) is Color.GREEN, Color["BLUE"] is Color.BLUE, outcome(Color, 9)[:2]),
    "methods": (Color.RED.describe(), Color.default() is Color.GREEN, Color.RED.is_warm),
    "int_enum": (
        Level.HIGH > 5,
        Level.LOW + 1,
        isinstance(Level.LOW, int),
        [int(m) for m in sorted(Level, reverse=True)],
    ),
    "flag": (
        repr(Perm.R | Perm.W),
        (Perm.R | Perm.W).value,
        Perm.R in (Perm.R | Perm.X),
        Perm(6) == Perm.R | Perm.W,
        bool(Perm(0)),
        (Perm.R | Perm.W | Perm.X) & ~Perm.W == Perm.R | Perm.X,
    ),
    "int_flag": (Mode.READ | Mode.WRITE == 3, repr(Mode(5)), int(Mode.EXEC | 1)),
    "str_mixin": (Letter.A == "a", Letter("b") is Letter.B, Letter.A.shout(), Letter.B + "c"),
    "functional": (Shape.SQUARE.value, Animal.DOG.value, Animal("meow") is Animal.CAT),
    "auto": [m.value for m in E["Auto"]],
    "types": {name: [b.__name__ for b in cls.__mro__] for name, cls in E.items()},
    "member_identity": all(
        skypickle.loads(skypickle.dumps(m)) is m for cls in E.values() for m in cls
    ),
    "is_instance": all(isinstance(m, cls) for cls in E.values() for m in cls),
}
"""


@pytest.mark.parametrize("proto", [1, *PROTOCOLS])
def test_enums_in_fresh_interpreter(run_in_subprocess, proto):
    expected, got, payload = compare(
        run_in_subprocess, make_enum_corpus(), ENUM_BODY, protocol=proto
    )
    assert reconstructors(payload)["_make_skeleton_enum"] >= 1
    assert got == expected
    assert got["members"]["Color"] == [("RED", 1), ("GREEN", 2), ("BLUE", 3)]
    assert got["methods"] == ("red=1", True, True)
    assert got["flag"][:2] == ("<Perm.R|W: 6>", 6)
    assert got["str_mixin"] == (True, True, "A!", "bc")
    assert got["functional"] == (2, "woof", True)
    assert got["member_identity"] is True


@pytest.mark.parametrize("proto", ALL_PROTOCOLS)
def test_enum_members_keep_identity_in_process(proto):
    enums = make_enum_corpus()
    for cls in enums.values():
        assert pickle.loads(skypickle.dumps(cls, protocol=proto)) is cls
        for member in cls:
            assert pickle.loads(skypickle.dumps(member, protocol=proto)) is member
    perm, mode = enums["Perm"], enums["Mode"]
    combined = pickle.loads(skypickle.dumps(perm.R | perm.X, protocol=proto))
    assert combined == perm.R | perm.X and type(combined) is perm
    assert pickle.loads(skypickle.dumps(mode.READ | mode.EXEC, protocol=proto)) == 5


def test_enum_members_loaded_alone_in_child(run_in_subprocess):
    """A member pickled on its own brings its enum; members and combinations pickled apart are
    members of ONE enum in the child."""
    enums = make_enum_corpus()
    color, perm = enums["Color"], enums["Perm"]
    got = child(
        run_in_subprocess,
        """
        p = pickle.loads(PAYLOAD)
        red = pickle.loads(p["red"])
        combo = pickle.loads(p["combo"])
        green = pickle.loads(p["green"])
        cls = pickle.loads(p["cls"])
        result = (
            type(red) is type(green) is cls,
            red is cls.RED,
            [m.name for m in cls],
            combo.value,
            combo == type(combo).R | type(combo).W,
            red.describe(),
        )
        """,
        pack(
            red=skypickle.dumps(color.RED),
            combo=skypickle.dumps(perm.R | perm.W),
            green=skypickle.dumps(color.GREEN, protocol=2),
            cls=skypickle.dumps(color, protocol=3),
        ),
    )
    assert got == (True, True, ["RED", "GREEN", "BLUE"], 6, True, "red=1")


ALIAS_SOURCE = """
import enum


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    CRIMSON = 1  # an alias of RED
"""


def test_enum_alias_in_fresh_interpreter(run_in_subprocess):
    """An alias still finds its member in a fresh interpreter and, beyond cloudpickle 3.1.2
    (whose payload is checked in the same child: there the alias is a plain class attribute,
    missing from ``__members__``), it is still listed in ``__members__``."""
    color = make_namespace(ALIAS_SOURCE)["Color"]
    got = child(
        run_in_subprocess,
        """
        p = pickle.loads(PAYLOAD)

        def probe(data):
            Color = pickle.loads(data)
            return (
                Color.CRIMSON is Color.RED,
                Color(1) is Color.RED,
                Color["RED"] is Color.RED,
                [m.name for m in Color],
                list(Color.__members__),
            )

        result = {lib: probe(data) for lib, data in p.items()}
        """,
        pack(sky=skypickle.dumps(color), cp=cloudpickle.dumps(color)),
    )
    assert got["sky"] == (True, True, True, ["RED", "GREEN"], list(color.__members__))
    assert got["cp"][:4] == got["sky"][:4]
    assert got["cp"][4] == ["RED", "GREEN"]


def test_enum_with_alias_round_trips_in_process():
    color = make_namespace(ALIAS_SOURCE)["Color"]
    assert pickle.loads(skypickle.dumps(color.RED)) is color.RED


def test_enum_with_alias_sent_back_from_child(run_in_subprocess):
    color = make_namespace(ALIAS_SOURCE)["Color"]
    returned = child(
        run_in_subprocess,
        """
        import skypickle

        result = skypickle.dumps(pickle.loads(PAYLOAD))
        """,
        skypickle.dumps(color.GREEN),
    )
    assert pickle.loads(returned) is color.GREEN


# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------

DATA_SOURCE = """
import dataclasses
import typing


@dataclasses.dataclass(order=True)
class Item:
    name: str
    price: float = 0.0
    tags: list = dataclasses.field(default_factory=list, compare=False)
    count: typing.ClassVar[int] = 0
    scale: dataclasses.InitVar[int] = 1

    def __post_init__(self, scale):
        self.price = self.price * scale
        type(self).count += 1

    def label(self):
        return f"{self.name}:{self.price}"


@dataclasses.dataclass
class Special(Item):
    extra: int = 0


@dataclasses.dataclass(frozen=True)
class Frozen:
    x: int
    y: int = 2


Made = dataclasses.make_dataclass(
    "Made",
    [("a", int), ("b", str, dataclasses.field(default="b"))],
    namespace={"both": lambda self: (self.a, self.b)},
)
"""


def make_data_corpus():
    ns = make_namespace(DATA_SOURCE)
    return {name: ns[name] for name in ("Item", "Special", "Frozen", "Made")}


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
    expected, got, _ = compare(run_in_subprocess, make_data_corpus(), DATA_BODY)
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

TYPING_SOURCE = """
import collections
import typing

Point = collections.namedtuple("Point", "x y", defaults=[0])


class Pair(typing.NamedTuple):
    left: int
    right: str = "r"

    def swap(self):
        return (self.right, self.left)


T = typing.TypeVar("T")
N = typing.TypeVar("N", bound=int)


class Box(typing.Generic[T]):
    def __init__(self, item: T):
        self.item = item

    def get(self) -> T:
        return self.item


class IntBox(Box[int]):
    pass


class Mapping2(typing.Generic[T, N]):
    pass


class Node:
    value: int

    def __init__(self, value, children=()):
        self.value = value
        self.children = list(children)

    def total(self):
        return self.value + sum(c.total() for c in self.children)


Node.__annotations__["children"] = typing.List[Node]
Node.__annotations__["parent"] = typing.Optional[Node]
Node.__annotations__["index"] = typing.Dict[str, typing.Tuple[Node, int]]
"""


def make_typing_corpus():
    ns = make_namespace(TYPING_SOURCE)
    return {name: ns[name] for name in ("Point", "Pair", "T", "N", "Box", "IntBox", "Mapping2")}


def make_node_class():
    return make_namespace(TYPING_SOURCE)["Node"]


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
    expected, got, _ = compare(run_in_subprocess, corpus, TYPING_BODY)
    assert got == expected
    assert got["namedtuple"][0] == "Point(x=1, y=0)"
    assert got["NamedTuple"][:2] == ("Pair(left=1, right='r')", ("x", 1))
    assert got["typevars"] == (("T", None, ()), ("N", int), True, True, True)
    assert got["generic"][:5] == (True, True, (int,), 3, 4)
    assert got["generic"][7] == ["IntBox", "Box", "Generic", "object"]
    assert got["self_hints"] == (True, True, True, True, 10)


def test_typevar_is_tracked_in_child(run_in_subprocess):
    corpus = make_typing_corpus()
    got = child(
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
# ABCs
# --------------------------------------------------------------------------------------------

ABC_SOURCE = """
import abc


class Shape(abc.ABC):
    @abc.abstractmethod
    def area(self): ...

    @property
    @abc.abstractmethod
    def name(self): ...

    def describe(self):
        return f"{self.name}:{self.area()}"


class Square(Shape):
    def __init__(self, side):
        self.side = side

    def area(self):
        return self.side**2

    @property
    def name(self):
        return "square"


class Half(Shape):  # still abstract: ``name`` is missing
    def area(self):
        return 0.5


class HasLen(abc.ABC):
    @classmethod
    def __subclasshook__(cls, other):
        return True if hasattr(other, "__len__") else NotImplemented


Shape.register(tuple)
"""


def make_abc_corpus():
    ns = make_namespace(ABC_SOURCE)
    return {name: ns[name] for name in ("Shape", "Square", "Half", "HasLen")}


def test_abcs_in_fresh_interpreter(run_in_subprocess):
    corpus = make_abc_corpus()
    shape = corpus["Shape"]
    # Fill the isinstance/issubclass caches here: they must not travel.
    assert isinstance((1,), shape) and not isinstance(1, shape)
    assert not issubclass(list, shape) and isinstance(corpus["Square"](2), shape)
    assert issubclass(list, corpus["HasLen"]) and not issubclass(int, corpus["HasLen"])
    payload = skypickle.dumps(corpus)
    got = child(
        run_in_subprocess,
        """
        import abc

        C = pickle.loads(PAYLOAD)
        Shape, Square, Half, HasLen = C["Shape"], C["Square"], C["Half"], C["HasLen"]
        def names(refs):
            return sorted(r().__name__ for r in refs)

        # (The negative cache may hold ``tuple``: registering it at load first asks
        # ``issubclass(tuple, Shape)``. Nothing the sender cached may be there.)
        before = [names(refs) for refs in abc._get_dump(Shape)[:3]]
        before_hooks = [names(refs) for refs in abc._get_dump(HasLen)[:3]]
        Shape.register(list)
        result = {
            "caches_at_load": (before, before_hooks),
            "abstract": (outcome(Shape)[:2], outcome(Half)[:2]),
            "abstractmethods": (
                sorted(Shape.__abstractmethods__),
                sorted(Half.__abstractmethods__),
                sorted(Square.__abstractmethods__),
            ),
            "concrete": (Square(3).describe(), isinstance(Square(1), Shape)),
            "registered": (
                issubclass(tuple, Shape), isinstance((1,), Shape), issubclass(int, Shape)
            ),
            "register_in_child": issubclass(list, Shape),
            "subclasshook": (issubclass(list, HasLen), issubclass(int, HasLen)),
            "meta": type(Shape) is abc.ABCMeta,
        }
        """,
        payload,
    )
    assert got == {
        "caches_at_load": got["caches_at_load"],
        "abstract": (("raise", "TypeError"), ("raise", "TypeError")),
        "abstractmethods": (["area", "name"], ["name"], []),
        "concrete": ("square:9", True),
        "registered": (True, True, False),
        "register_in_child": True,
        "subclasshook": (True, False),
        "meta": True,
    }
    registry, positive, negative = got["caches_at_load"][0]
    assert registry == ["tuple"] and positive == [] and negative in ([], ["tuple"])
    assert got["caches_at_load"][1] == [[], [], []]
    assert b"_abc_cache" not in payload and b"_abc_negative_cache" not in payload


# --------------------------------------------------------------------------------------------
# Beyond cloudpickle
# --------------------------------------------------------------------------------------------

SLOTS_SOURCE = """
import dataclasses
import sys


class Slotted:
    __slots__ = ("x", "y")

    def __init__(self, x=1):
        self.x = x

    def total(self):
        return self.x + getattr(self, "y", 0)


class SlottedChild(Slotted):
    __slots__ = ("z",)


class OneSlot:
    __slots__ = "only"


class OnlyWeakref:
    __slots__ = "__weakref__"


class WithWeakref:
    __slots__ = ("a", "__weakref__")


class WithDict:
    __slots__ = ("a", "__dict__")


class Private:
    __slots__ = ("__hidden", "visible")

    def __init__(self):
        self.__hidden = "hidden value"

    def hidden(self):
        return self.__hidden


if sys.version_info >= (3, 10):

    @dataclasses.dataclass(slots=True)
    class SlotsData:
        a: int = 1
        b: str = "b"
"""

SLOTS_PROBE = """
import weakref


def probe_slots(classes, instance):
    def check(cls):
        obj = cls()
        return {
            "has_dict": hasattr(obj, "__dict__"),
            "undeclared": outcome(setattr, obj, "undeclared_attribute", 1)[:2],
            "weakref": outcome(lambda: weakref.ref(obj)() is obj)[:2],
            "slot_descriptors": sorted(
                k for k, v in vars(cls).items() if type(v).__name__ == "member_descriptor"
            ),
        }

    result = {name: check(cls) for name, cls in classes.items()}
    result["behaviour"] = (
        classes["Slotted"](5).total(),
        (instance.x, instance.y, instance.z, instance.total()),
        classes["Private"]().hidden(),
        outcome(setattr, classes["OneSlot"](), "only", 1)[0],
    )
    if "SlotsData" in classes:
        result["behaviour"] += (repr(classes["SlotsData"](2)),)
    return result
"""


def make_slots_objects():
    ns = make_namespace(SLOTS_SOURCE)
    names = ["Slotted", "SlottedChild", "OneSlot", "OnlyWeakref", "WithWeakref", "WithDict"]
    names += ["Private"] + (["SlotsData"] if "SlotsData" in ns else [])
    instance = ns["SlottedChild"](1)
    instance.y, instance.z = 2, 3
    return {name: ns[name] for name in names}, instance


def test_slots_are_real_slots(run_in_subprocess):
    """BEYOND cloudpickle: a class with ``__slots__`` comes back with real slots, as in the
    original: its instances have no ``__dict__`` (unless ``"__dict__"`` is a slot) and refuse
    undeclared attributes, weak references work only with a ``__weakref__`` slot, and private
    (mangled) slot names work. cloudpickle 3.1.2 (its payload checked in the same child) rebuilds
    a plain class: instances get a ``__dict__`` and accept anything; it cannot dump
    ``__slots__ = "__weakref__"`` (KeyError) and its payload with a private slot fails to load."""
    classes, instance = make_slots_objects()
    here = {}
    exec(CHILD_TOOLS + SLOTS_PROBE, here)
    expected = here["probe_slots"](classes, instance)
    assert expected["Slotted"] == {
        "has_dict": False,
        "undeclared": ("raise", "AttributeError"),
        "weakref": ("raise", "TypeError"),
        "slot_descriptors": ["x", "y"],
    }
    with pytest.raises(KeyError):
        cloudpickle.dumps(classes["OnlyWeakref"])
    cp_classes = {k: v for k, v in classes.items() if k not in ("OnlyWeakref", "Private")}
    got = child(
        run_in_subprocess,
        SLOTS_PROBE
        + textwrap.dedent(
            """
            def probe_plain(classes):
                return {
                    name: {
                        "has_dict": hasattr(cls(), "__dict__"),
                        "undeclared": outcome(setattr, cls(), "undeclared_attribute", 1)[:2],
                    }
                    for name, cls in classes.items()
                }

            p = pickle.loads(PAYLOAD)
            result = {
                "sky": probe_slots(*pickle.loads(p["sky"])),
                "cp": probe_plain(pickle.loads(p["cp"])),
                "cp_private": outcome(pickle.loads, p["cp_private"])[:2],
            }
            """
        ),
        pack(
            sky=skypickle.dumps((classes, instance)),
            cp=cloudpickle.dumps(cp_classes),
            cp_private=cloudpickle.dumps(classes["Private"]),
        ),
    )
    assert got["sky"] == expected
    assert got["cp"] == {
        name: {"has_dict": True, "undeclared": ("ok", None)} for name in cp_classes
    }
    assert got["cp_private"] == ("raise", "AttributeError")


def test_empty_slots_are_kept(run_in_subprocess):
    ns = make_namespace(
        """
        class Mixin:
            __slots__ = ()

            def name(self):
                return "mixin"

        class Point(Mixin):
            __slots__ = ("x", "y")
        """
    )
    for cls in (ns["Mixin"], ns["Point"]):
        assert not hasattr(cls(), "__dict__")
    got = child(
        run_in_subprocess,
        """
        result = [
            (cls().name(), hasattr(cls(), "__dict__"), outcome(setattr, cls(), "z", 1)[0])
            for cls in pickle.loads(PAYLOAD)
        ]
        """,
        skypickle.dumps((ns["Mixin"], ns["Point"])),
    )
    assert got == [("mixin", False, "raise"), ("mixin", False, "raise")]


PLUGIN_SOURCE = """
class Plugin:
    registry = []  # a list: a second run of the hook would show

    def __init_subclass__(cls, *, key, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.key = key
        Plugin.registry.append((key, cls.__name__))

    def run(self):
        return f"{type(self).__name__}:{self.key}"


class Mine(Plugin, key="mine"):
    def run(self):
        return "mine+" + super().run()


class Yours(Mine, key="yours"):  # a by-value base with the same hook
    pass
"""


def test_required_init_subclass_keywords(run_in_subprocess):
    """BEYOND cloudpickle: a class whose base's ``__init_subclass__`` REQUIRES keyword arguments
    (``class Mine(Plugin, key="mine")``) loads; the hook is not run again at load (it ran in the
    sender, and the keywords are kept nowhere). cloudpickle 3.1.2's payload raises TypeError at
    load (asserted in the same child)."""
    ns = make_namespace(PLUGIN_SOURCE)
    obj = (ns["Mine"], ns["Yours"](), ns["Plugin"])
    got = child(
        run_in_subprocess,
        """
        p = pickle.loads(PAYLOAD)
        Mine, yours, Plugin = pickle.loads(p["sky"])
        result = {
            "sky": (
                Mine().run(),
                yours.run(),
                Mine.__bases__ == (Plugin,),
                [c.__name__ for c in type(yours).__mro__],
                isinstance(yours, Plugin) and isinstance(yours, Mine),
                (Mine.key, type(yours).key),
                Plugin.registry,
            ),
            "cp": outcome(pickle.loads, p["cp"]),
        }
        """,
        pack(sky=skypickle.dumps(obj), cp=cloudpickle.dumps(obj)),
    )
    assert got["sky"] == (
        "mine+Mine:mine",
        "mine+Yours:yours",
        True,
        ["Yours", "Mine", "Plugin", "object"],
        True,
        ("mine", "yours"),
        [("mine", "Mine"), ("yours", "Yours")],
    )
    assert got["cp"][:2] == ("raise", "TypeError")
    assert "key" in got["cp"][2]


PLUGIN_GAPS = {
    "abc_base": """
import abc

class Plugin(abc.ABC):
    def __init_subclass__(cls, *, key, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.key = key

    @abc.abstractmethod
    def run(self): ...

class Mine(Plugin, key="mine"):
    def run(self):
        return self.key
""",
    "slotted_base": """
class Plugin:
    __slots__ = ("state",)

    def __init_subclass__(cls, *, key, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.key = key

class Mine(Plugin, key="mine"):
    def run(self):
        return self.key
""",
    "dict_base": """
class Plugin(dict):
    def __init_subclass__(cls, *, key, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.key = key

class Mine(Plugin, key="mine"):
    def run(self):
        return self.key
""",
}


_SLOTTED_GAP = pytest.mark.xfail(
    strict=True,
    reason="The required-keyword fallback builds the skeleton on a stand-in base and then "
    "assigns __bases__; for a base with non-empty __slots__ CPython refuses ('object layout "
    "differs') and the original TypeError (missing keyword 'key') is raised at load.",
)


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=_SLOTTED_GAP) if c == "slotted_base" else c for c in PLUGIN_GAPS],
)
def test_required_init_subclass_keywords_with_other_layouts(run_in_subprocess, case):
    mine = make_namespace(PLUGIN_GAPS[case])["Mine"]
    assert mine().run() == "mine"
    # Here the tracker gives back the original class without building anything: only a
    # fresh interpreter builds the skeleton.
    assert pickle.loads(skypickle.dumps(mine)) is mine
    got = child(
        run_in_subprocess,
        """
        result = outcome(lambda: pickle.loads(PAYLOAD)().run())
        """,
        skypickle.dumps(mine),
    )
    assert got == ("ok", "mine")


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
    got = child(
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


# --------------------------------------------------------------------------------------------
# Classes implemented in C that cannot be imported
# --------------------------------------------------------------------------------------------

C_CLASSES = {
    "thread_lock": type(threading.Lock()),
    "list_iterator": type(iter([])),
    "dict_keys": type({}.keys()),
}


@pytest.mark.parametrize("name", list(C_CLASSES))
def test_unimportable_c_classes_are_refused_at_dump(name):
    """BEYOND cloudpickle: skypickle refuses a C class that cannot be imported when DUMPING, with
    ``pickle``'s error; cloudpickle 3.1.2 writes a pickle that fails when loaded (it cannot set
    attributes on a C type). ``_thread.lock`` is importable from Python 3.13 on: both then pickle
    it by reference."""
    cls = C_CLASSES[name]
    if skypickle._should_pickle_by_reference(cls):
        assert name == "thread_lock" and sys.version_info >= (3, 13)
        assert pickle.loads(skypickle.dumps(cls)) is cls
        assert pickle.loads(cloudpickle.dumps(cls)) is cls
        return
    for proto in (2, 5):
        with pytest.raises(pickle.PicklingError) as info:
            skypickle.dumps(cls, protocol=proto)
        assert cls.__name__ in str(info.value)
    with pytest.raises(pickle.PicklingError) as info:
        skypickle.dumps({"jobs": [cls]})
    assert "when pickling obj['jobs'][0]" in getattr(info.value, "__notes__", [])
    payload = cloudpickle.dumps(cls)
    with pytest.raises(TypeError):  # here: setting attributes on the original C type
        pickle.loads(payload)


def test_cloudpickle_payloads_of_c_classes_fail_at_load(run_in_subprocess):
    """The other half of the test above, in a fresh interpreter: cloudpickle's payloads for the
    unimportable C classes fail when loaded there too."""
    payloads = {
        name: cloudpickle.dumps(cls)
        for name, cls in C_CLASSES.items()
        if not skypickle._should_pickle_by_reference(cls)
    }
    assert "list_iterator" in payloads and "dict_keys" in payloads
    got = child(
        run_in_subprocess,
        """
        result = {
            name: outcome(pickle.loads, data)[0] for name, data in pickle.loads(PAYLOAD).items()
        }
        """,
        pickle.dumps(payloads),
    )
    assert got == dict.fromkeys(payloads, "raise")


# --------------------------------------------------------------------------------------------
# Differential: skypickle and cloudpickle payloads loaded in one fresh interpreter
# --------------------------------------------------------------------------------------------


def make_differential_corpus():
    classes = make_class_corpus()
    enums = make_enum_corpus()
    data = make_data_corpus()
    typed = make_typing_corpus()
    abcs = make_abc_corpus()
    point, point3 = make_local_classes()

    def members(cls):
        return [repr(m) for m in cls]

    return {
        "Base": (
            classes["Base"],
            lambda C: (repr(C(3)), C(3).double(), C.make(2).greet(), C.helper(4), C(1).doubled),
        ),
        "Sub": (classes["Sub"], lambda C: (repr(C(1, 2)), C(1, 2).double(), C.kind)),
        "Inner": (classes["Outer"].Inner, lambda C: (C().where(), C.__name__)),
        "Tagged": (classes["Tagged"], lambda C: (C.tag, [c.__name__ for c in C.__mro__])),
        "WithMeta": (classes["WithMeta"], lambda C: (C(1).via_meta, C.describe())),
        "Words": (classes["Words"], lambda C: C([("z", 1), ("a", 2)]).first()),
        "Tally": (classes["Tally"], lambda C: C("mississippi").top()),
        "Local": (point3, lambda C: (C(1, 2, 2).norm2(), C.dims, C.__mro__[1].dims)),
        "Renamed": (RenamedClass, lambda C: C().hello()),
        "Color": (
            enums["Color"],
            lambda E: (members(E), E.RED.describe(), repr(E(2)), E.default().name),
        ),
        "Level": (enums["Level"], lambda E: (members(E), E.HIGH + 1)),
        "Perm": (
            enums["Perm"],
            lambda E: (members(E), repr(E.R | E.W), repr(E(3)), repr(~E.X)),
        ),
        "Mode": (enums["Mode"], lambda E: (members(E), repr(E.READ | E.EXEC))),
        "Letter": (enums["Letter"], lambda E: (members(E), E.A.shout(), E("b").name)),
        "Shape": (enums["Shape"], lambda E: (members(E), E.SQUARE.value)),
        "Animal": (enums["Animal"], lambda E: members(E)),
        "Item": (
            data["Item"],
            lambda C: (repr(C("a", 2.0, scale=2)), repr(sorted([C("b"), C("a")]))),
        ),
        "Frozen": (data["Frozen"], lambda C: (repr(C(1)), hash(C(1)) == hash(C(1)))),
        "Made": (data["Made"], lambda C: (repr(C(1)), C(2, "q").both())),
        "Pair": (typed["Pair"], lambda C: (repr(C(1)), C(1, "x").swap(), C._fields)),
        "Box": (
            typed["Box"],
            lambda C: (C[int](1).get(), repr(C.__parameters__), repr(C.__orig_bases__)),
        ),
        "Square": (
            abcs["Square"],
            lambda C: (C(3).describe(), issubclass(tuple, C.__mro__[1]), C.__abstractmethods__),
        ),
        "Half": (abcs["Half"], lambda C: sorted(C.__abstractmethods__)),
    }


def test_differential_against_cloudpickle(run_in_subprocess):
    corpus = make_differential_corpus()
    for name, (cls, _) in corpus.items():
        assert skypickle._should_pickle_by_reference(cls) is False, name
    got = child(
        run_in_subprocess,
        """
        def evaluate(corpus):
            return {name: outcome(probe, cls) for name, (cls, probe) in corpus.items()}

        p = pickle.loads(PAYLOAD)
        result = {lib: evaluate(pickle.loads(data)) for lib, data in p.items()}
        """,
        pack(sky=skypickle.dumps(corpus), cp=cloudpickle.dumps(corpus)),
    )
    sky, cp = got["sky"], got["cp"]
    assert sorted(sky) == sorted(corpus)
    mismatches = {name: (sky[name], cp[name]) for name in corpus if sky[name] != cp[name]}
    assert not mismatches
    failures = {name: r for name, r in sky.items() if r[0] != "ok"}
    assert not failures
    # Both agree with the originals here, except what loading changes by design (a repr of
    # ``__orig_bases__``/``__parameters__`` names the same things).
    here = {
        name: plain_call(probe, cls) for name, (cls, probe) in make_differential_corpus().items()
    }
    assert {k: v[1] for k, v in sky.items()} == {k: v[1] for k, v in here.items()}


# --------------------------------------------------------------------------------------------
# Instances in bulk
# --------------------------------------------------------------------------------------------


def make_record_classes():
    class Record:
        __doc__ = "One row."

        def __init__(self, i):
            self.i = i
            self.name = f"row-{i}"

        def weight(self):
            return self.i * 2

    class Special(Record):
        def weight(self):
            return -super().weight()

    return Record, Special


def test_thousand_instances_share_one_class(run_in_subprocess):
    record, special = make_record_classes()
    rows = [record(i) if i % 10 else special(i) for i in range(1000)]
    payload = skypickle.dumps(rows)
    # Each class travels once: the rows cost a few bytes each.
    assert len(payload) < len(skypickle.dumps(rows[:10])) + 990 * 40
    loaded = pickle.loads(payload)
    assert all(type(a) is type(b) for a, b in zip(rows, loaded))
    got = child(
        run_in_subprocess,
        """
        rows = pickle.loads(PAYLOAD)
        classes = {id(type(r)) for r in rows}
        record = type(rows[1])
        special = type(rows[0])
        result = (
            len(rows),
            len(classes),
            sum(r.weight() for r in rows),
            all(isinstance(r, record) for r in rows),
            sum(type(r) is special for r in rows),
            special.__bases__ == (record,),
            rows[999].name,
            record.__doc__,
        )
        """,
        payload,
    )
    expected_weight = sum(r.weight() for r in rows)
    assert got == (1000, 2, expected_weight, True, 100, True, "row-999", "One row.")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def make_lock_holder():
    class LockHolder:
        guard_lock = threading.Lock()
        fine = 1

        def method(self):
            return self.fine

    return LockHolder


def test_unpicklable_class_attribute_names_the_path():
    holder = make_lock_holder()
    for obj in (holder, {"jobs": [holder()]}):
        with pytest.raises(TypeError) as info:
            skypickle.dumps(obj)
        notes = [
            n
            for n in getattr(info.value, "__notes__", None) or []
            if n.startswith("when pickling obj")
        ]
        assert notes, f"no path note: {getattr(info.value, '__notes__', None)!r}"
        assert notes[0].endswith(".guard_lock"), notes[0]
        assert "lock" in str(info.value)
    # The pickler is still usable afterwards, and the class pickles once the lock is gone.
    del holder.guard_lock
    assert pickle.loads(skypickle.dumps(holder)) is holder


# Subclasses seen by Base.__init_subclass__: a list in this (importable) module, so that it is
# pickled by reference and the copies of Base's methods that a load brings write to it too.
REGISTERED = []

REGISTRY_SOURCE = f"""
import {THIS_MODULE} as registry_home


class Base:
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        registry_home.REGISTERED.append(cls.__name__)


class Child(Base):
    pass
"""


def test_loading_a_known_class_builds_no_throwaway_copy():
    """A class the process already has (same tracker id) is returned before any skeleton is
    built, so a base's ``__init_subclass__`` does not see a throwaway copy on every load (it
    does with cloudpickle 3.1.2, whose skeleton is built and then discarded)."""
    REGISTERED.clear()
    ns = make_namespace(REGISTRY_SOURCE)
    assert REGISTERED == ["Child"]
    payload = skypickle.dumps(ns["Child"])
    for _ in range(3):
        assert pickle.loads(payload) is ns["Child"]
    assert REGISTERED == ["Child"]
    cloudpickle_payload = cloudpickle.dumps(ns["Child"])
    for _ in range(3):
        assert pickle.loads(cloudpickle_payload) is ns["Child"]
    assert REGISTERED == ["Child"] * 4


def test_a_class_loaded_where_it_was_defined_keeps_its_own_namespace():
    """A class sent away and back (or loaded where it was pickled) is the original class, and
    its methods stay the original functions: cloudpickle 3.1.2 replaces them with by-value
    copies (with their own globals), so the class's later pickles and its behaviour under
    patched globals change."""
    ns = make_namespace(TRACKING_SOURCE)
    cls = ns["Thing"]
    method = cls.version
    payload = skypickle.dumps(cls)
    assert pickle.loads(payload) is cls
    assert cls.version is method
    assert skypickle.dumps(cls) == payload
    # cloudpickle's round trip swaps the method for a copy.
    assert pickle.loads(cloudpickle.dumps(cls)) is cls
    assert cls.version is not method


def test_slotnames_cache_does_not_change_a_class_pickle():
    """copyreg adds __slotnames__ to a class when one of its instances is pickled; the class's
    own pickle is the same before and after."""
    ns = make_namespace("class Plain:\n    def __init__(self):\n        self.x = 1\n")
    cls = ns["Plain"]
    before = skypickle.dumps(cls)
    skypickle.dumps(cls())
    assert "__slotnames__" in vars(cls)
    assert skypickle.dumps(cls) == before
