"""Classes by value: which classes go by value, and what such a class keeps.

Classes of a script (``__main__``-like namespace), local classes and classes whose
``__qualname__``/``__module__`` do not lead back to them are pickled BY VALUE: a skeleton made
with their metaclass, name and bases, then their namespace (methods, properties, class
attributes, ...). Here: the by-reference/by-value decision, class features at every protocol,
metadata, many instances of one class, errors, and C classes that cannot be imported.

Every by-value case is loaded with plain ``pickle`` in a fresh interpreter where the defining
code does not exist (``byvalue_helpers.run_child`` checks that the test modules and
``byvalue_class_corpus`` cannot be imported there) and its behaviour is checked there. Where
skypickle goes beyond cloudpickle 3.1.2, the test's docstring says so and the test asserts
cloudpickle's behaviour too. The shared classes are in ``byvalue_class_corpus``.
"""

import abc
import enum
import pickle
import sys
import threading

import cloudpickle
import pytest
import skypickle
from byvalue_class_corpus import (
    CORPUS_MODULE,
    MainModuleClass,
    RenamedClass,
    make_class_corpus,
    make_enum_corpus,
    make_local_classes,
)
from byvalue_helpers import (
    ALL_PROTOCOLS,
    compare_in_child,
    is_class_by_value,
    make_namespace,
    pack,
    run_child,
)


class ImportableClass:
    """Importable by its module and qualname: travels by reference."""

    def hello(self):
        return "importable"


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
    expected, got, _ = compare_in_child(
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
    assert got["module"] == (CORPUS_MODULE, CORPUS_MODULE, "__main__")


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
    expected, got, payload = compare_in_child(
        run_in_subprocess, corpus, FEATURES_BODY, protocol=proto
    )
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
    got = run_child(
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
    assert got["sky"]["local"][:3] == ("Point", "Point", CORPUS_MODULE)
    assert got["sky"]["renamed"][:2] == ("_Renamed", "_Renamed")
    assert got["sky"]["Base"] == ("Base", "Base", corpus["Base"].__module__, "A base class.")
    assert got["sky"]["nested_enum"][:2] == ("Mode", "Holder.Mode")


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
    got = run_child(
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
    got = run_child(
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
