"""Fast paths against the general path and against the standard library.

skypickle takes a shortcut for instances of plain classes (see ARCHITECTURE.md). A pickler with
a ``persistent_id`` that returns None never takes it, so its output is the general path's:
every case here must give the same bytes three ways.
"""

from __future__ import annotations

import io
import pickle

import pytest
import skypickle
from fastpath_objects import (
    DictSubclass,
    Empty,
    ListChild,
    Plain,
    PlainChild,
    SlotsAndDict,
    WithClassProperty,
    WithGetattr,
    WithGetNewArgs,
    WithGetState,
    WithMeta,
    WithReduce,
    WithSlots,
)


class GeneralPath(skypickle.Pickler):
    def persistent_id(self, obj):
        return None


def general_path_dumps(obj, protocol):
    buf = io.BytesIO()
    GeneralPath(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def shadowed():
    p = Plain(x=1)
    p.__reduce_ex__ = lambda proto: (Plain, ())
    return p


def slots_and_dict():
    s = SlotsAndDict(a=1)
    s.s = 2
    return s


CASES = {
    "plain": lambda: [Plain(x=i, y=str(i)) for i in range(5)],
    "plain_shared_state": lambda: (lambda p: [p, p, Plain(child=p)])(Plain(v=[1, 2])),
    "child": lambda: [PlainChild(a=1), Plain(a=2), PlainChild(b=3)],
    "empty_dict_state": lambda: [Empty(), Empty()],
    "cycle": lambda: (lambda p: (setattr(p, "me", p), p)[1])(Plain()),
    "slots": lambda: [WithSlots(1, 2), WithSlots(3, [4])],
    "slots_and_dict": lambda: [slots_and_dict()],
    "getstate": lambda: [WithGetState(a=1, b=2)],
    "reduce": lambda: [WithReduce(a=1)],
    "getnewargs": lambda: [WithGetNewArgs()],
    "class_property": lambda: [WithClassProperty(a=1)],
    "getattr_hook": lambda: [WithGetattr(a=1)],
    "metaclass": lambda: [WithMeta(1), WithMeta(2)],
    "dict_subclass": lambda: [DictSubclass(a=1)],
    "list_subclass": lambda: [ListChild([1, 2])],
    "mixed_many": lambda: [Plain(i=i) if i % 3 else WithGetState(i=i) for i in range(3000)],
    "shadowed_reduce_ex": lambda: [Plain(a=0), shadowed(), Plain(a=2)],
}


def _outcome(fn):
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - compared across implementations
        return ("error", type(exc), str(exc))


@pytest.mark.parametrize("proto", range(6))
@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_matches_general_path_and_pickle(case, proto):
    obj = CASES[case]()
    std = _outcome(lambda: pickle.dumps(obj, proto))
    sky = _outcome(lambda: skypickle.dumps(obj, proto))
    general = _outcome(lambda: general_path_dumps(obj, proto))
    assert sky == general
    assert sky == std


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_fast_path_roundtrip_identity(proto):
    shared = [1, 2]
    objs = [Plain(a=shared), Plain(b=shared), PlainChild(c=shared)]
    loaded = pickle.loads(skypickle.dumps(objs, proto))
    assert [type(o) for o in loaded] == [Plain, Plain, PlainChild]
    assert loaded[0].a is loaded[1].b is loaded[2].c
    assert loaded[0].a == [1, 2]


def test_class_mutated_between_dumps_is_rechecked():
    # The verdict cache lives for one dump only.
    obj = Plain(a=1)
    first = skypickle.dumps(obj)
    Plain.__getstate__ = lambda self: {"patched": True}
    try:
        assert skypickle.dumps(obj) == pickle.dumps(obj, 5)
        assert skypickle.dumps(obj) != first
    finally:
        del Plain.__getstate__
    assert skypickle.dumps(obj) == first


@pytest.mark.parametrize("proto", range(6))
def test_reconstructors_written_like_pickle_writes_them(proto):
    # skypickle's own reconstructors are written by name without pickle's lookups: the bytes
    # must be those pickle writes for the same objects.
    from skypickle import _skypickle

    wire = [
        getattr(_skypickle, name)
        for name in ("_make_code", "_make_function", "_function_setstate", "_make_empty_cell")
    ]
    obj = [wire, wire[0], ("x", wire[1])]
    assert skypickle.dumps(obj, proto) == pickle.dumps(obj, proto)
    assert pickle.loads(skypickle.dumps(obj, proto))[1] is _skypickle._make_code
