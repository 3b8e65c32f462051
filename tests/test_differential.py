"""Differential tests: skypickle.dumps(x, p) == pickle.dumps(x, p) for every protocol.

Hypothesis builds object graphs (nested containers, atoms at their encoding boundaries, builtin
subclasses, instances using each reduce hook, shared references and cycles added after
construction); hand-written cases cover the structural edge cases and common stdlib types.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import functools
import io
import math
import operator
import pickle
import uuid

import objects
import pytest
import skypickle
from helpers import PROTOCOLS, assert_same_structure, check_identical, check_same_outcome, dis
from hypothesis import given
from strategies import atoms, floats, graphs, hashables, ints, texts, trees

# --------------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------------


@given(atoms)
def test_atoms_identical(x):
    for proto in PROTOCOLS:
        check_identical(x, proto)


@given(hashables)
def test_hashable_trees_identical(x):
    for proto in PROTOCOLS:
        check_identical(x, proto)


@given(trees)
def test_trees_identical(x):
    for proto in PROTOCOLS:
        check_same_outcome(x, proto)


@given(graphs())
def test_graphs_with_sharing_and_cycles_identical(x):
    for proto in PROTOCOLS:
        check_same_outcome(x, proto, check_dump=False)
    # dump vs dumps once per example (at the default protocol)
    f = io.BytesIO()
    skypickle.dump(x, f)
    assert f.getvalue() == skypickle.dumps(x)


@given(ints)
def test_ints_identical(x):
    for proto in PROTOCOLS:
        assert skypickle.dumps(x, protocol=proto) == pickle.dumps(x, protocol=proto)


@given(floats)
def test_floats_identical(x):
    for proto in PROTOCOLS:
        assert skypickle.dumps(x, protocol=proto) == pickle.dumps(x, protocol=proto)


@given(texts)
def test_texts_identical(x):
    for proto in PROTOCOLS:
        check_identical(x, proto, check_structure=False)
        assert skypickle.loads(skypickle.dumps(x, protocol=proto)) == x


# --------------------------------------------------------------------------------------------
# Hand-written structural cases
# --------------------------------------------------------------------------------------------


def _self_list():
    a = [1, 2]
    a.append(a)
    return a


def _dict_cycle():
    a = {"name": "a"}
    b = {"name": "b", "a": a}
    a["b"] = b
    a["self"] = a
    return a


def _tuple_through_list():
    t = ([],)
    t[0].append(t)
    return t


def _tuple_through_list_twice():
    t = ([], [], "x")
    t[0].append(t)
    t[1].append(t)
    return [t, t]


def _deep_tuple_cycle():
    inner = ([],)
    outer = (inner, [inner])
    inner[0].append(outer)
    return outer


def _frozenset_cycle():
    p = objects.Plain()
    fs = frozenset([p, 1])
    p.value = fs
    return fs


def _tuple_cycle_through_instance():
    p = objects.Plain()
    t = (p, "x")
    p.value = t
    return [t, p]


def _shared_everything():
    s = "shared string"
    b = b"shared bytes"
    t = (1, 2)
    lst = [s, b, t]
    d = {"l": lst}
    return [s, s, b, b, t, t, lst, lst, d, d, (d, lst)]


def _set_containing_shared_tuple():
    t = (1, "a")
    return [t, {t, (2, "b")}, frozenset([t])]


def _big_instance_graph():
    nodes = [objects.Plain(i) for i in range(50)]
    for i, n in enumerate(nodes):
        n.next = nodes[(i + 1) % len(nodes)]
        n.peers = [nodes[(i * 7) % 50], nodes[(i * 11) % 50]]
    return nodes


def _memo_index_boundaries():
    # more than 256 memo entries (BINPUT/BINGET -> LONG_BINPUT/LONG_BINGET) and more than
    # 65536 (beyond two-byte indexes); every object is fetched again afterwards.
    items = [f"s{i}" for i in range(70_000)]
    return [items, items[250:260], items[65_530:65_540], items[-5:]]


def _frame_boundaries():
    # payloads straddling the 64 KiB frame target, inside one stream
    out = []
    for n in (65_000, 65_535, 65_536, 65_537, 66_000, 131_072):
        out.append(b"b" * n)
        out.append("s" * n)
        out.append(bytearray(b"a" * n))
        out.append(["x" * (n // 100)] * 100)
    return out


def _sets_with_removed_items():
    """Sets whose hash tables hold removed entries (and one emptied whole): skypickle reads a
    set's table directly and must skip them, writing the items in the order iteration gives."""
    a = set(range(40))
    for i in range(0, 40, 3):
        a.discard(i)
    b = set("abcdefgh")
    b.pop()
    b.pop()
    c = {1, 2, 3}
    c.clear()
    d = set(range(5000))
    for i in range(4990):
        d.remove(i)
    e = frozenset(x for x in a if x % 2)
    return [a, b, c, d, e, frozenset(d)]


STRUCTURAL_CASES = {
    "sets_with_removed_items": _sets_with_removed_items,
    "memo_index_boundaries": _memo_index_boundaries,
    "frame_boundaries": _frame_boundaries,
    "list_containing_itself": _self_list,
    "dict_cycle": _dict_cycle,
    "tuple_through_list": _tuple_through_list,
    "tuple_through_list_twice": _tuple_through_list_twice,
    "deep_tuple_cycle": _deep_tuple_cycle,
    "frozenset_cycle": _frozenset_cycle,
    "tuple_cycle_through_instance": _tuple_cycle_through_instance,
    "shared_everything": _shared_everything,
    "set_containing_shared_tuple": _set_containing_shared_tuple,
    "big_instance_graph": _big_instance_graph,
    # bytearray below protocol 5 is saved via a fresh bytes copy each time: equal one-byte
    # bytearrays must not share a memo entry (CPython caches one-byte bytes objects)
    "single_byte_bytearrays": lambda: [bytearray(b"a"), bytearray(b"a"), bytearray(b"\x00")],
    "equal_bytearrays": lambda: [bytearray(b"ab"), bytearray(b"ab"), bytearray()] * 2,
    "empty_list": list,
    "empty_tuple": tuple,
    "empty_dict": dict,
    "empty_set": set,
    "empty_frozenset": frozenset,
    "empty_bytes": bytes,
    "empty_bytearray": bytearray,
    "empty_str": str,
    "nested_empties": lambda: [[], (), {}, set(), frozenset(), "", b"", bytearray(), ((),)],
    "tuple_sizes": lambda: [tuple(range(n)) for n in range(6)],
    "nested_tuples": lambda: ((((1,),),), (2, (3, (4, (5,))))),
}


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("case", sorted(STRUCTURAL_CASES))
def test_structural_cases(case, proto):
    obj = STRUCTURAL_CASES[case]()
    check_identical(obj, proto)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_list_containing_itself_loads_as_cycle(proto):
    obj = _self_list()
    out = pickle.loads(skypickle.dumps(obj, protocol=proto))
    assert out[2] is out
    assert out[:2] == [1, 2]


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_tuple_through_list_loads_as_cycle(proto):
    out = pickle.loads(skypickle.dumps(_tuple_through_list(), protocol=proto))
    assert type(out) is tuple
    assert out[0][0] is out


# Batching: list/dict/set items are written in batches of 1000.
BATCH_SIZES = [999, 1000, 1001, 2000, 2500]


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("n", BATCH_SIZES)
def test_batching_edges(n, proto):
    obj = [
        list(range(n)),
        {i: -i for i in range(n)},
        set(range(n)),
        frozenset(range(n)),
        objects.MyList(range(n)),
        objects.MyDict((i, i) for i in range(n)),
        objects.ListItemsReduce(range(n)),
        objects.DictItemsReduce({str(i): i for i in range(n)}),
    ]
    check_identical(obj, proto)


# --------------------------------------------------------------------------------------------
# Standard library objects
# --------------------------------------------------------------------------------------------


def _stdlib_cases():
    od = collections.OrderedDict([("b", 1), ("a", [2])])
    dd = collections.defaultdict(list, {"x": [1], "y": []})
    dd_none = collections.defaultdict(None, {1: 2})
    return {
        "partial": functools.partial(objects.module_function, 1),
        "partial_kw": functools.partial(sorted, key=len, reverse=True),
        "partial_module_level": objects.partial_of_module_function,
        "OrderedDict": od,
        "defaultdict": dd,
        "defaultdict_none": dd_none,
        "deque": collections.deque([1, "2", (3,)]),
        "deque_maxlen": collections.deque(range(5), maxlen=3),
        "Counter": collections.Counter("abracadabra"),
        "datetime": datetime.datetime(2024, 2, 29, 13, 14, 15, 161718),
        "datetime_tz": datetime.datetime(
            2001, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))
        ),
        "date": datetime.date(1999, 12, 31),
        "time": datetime.time(23, 59, 59, 999999),
        "timedelta": datetime.timedelta(days=-3, seconds=5, microseconds=7),
        "utc": datetime.timezone.utc,
        "Decimal": decimal.Decimal("3.14159265358979323846264338327950288"),
        "Decimal_nan": decimal.Decimal("NaN"),
        "Decimal_neg_inf": decimal.Decimal("-Infinity"),
        "Fraction": fractions.Fraction(-22, 7),
        "UUID": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "range": range(3, 100, 7),
        "range_empty": range(0),
        "slice": slice(1, None, -2),
        "NoneType": type(None),
        "EllipsisType": type(Ellipsis),
        "NotImplementedType": type(NotImplemented),
        "Ellipsis": Ellipsis,
        "NotImplemented": NotImplemented,
        "len": len,
        "builtin_funcs": [len, sum, getattr, isinstance, print, repr, open],
        "builtin_types": [int, str, bytes, list, dict, set, frozenset, tuple, object, type],
        "more_builtin_types": [bool, float, complex, bytearray, range, slice, memoryview],
        "exceptions": [ValueError, KeyError, StopIteration, BaseException],
        "exception_instance": ValueError("bad", 42),
        "OrderedDict_class": collections.OrderedDict,
        "stdlib_classes": [collections.deque, datetime.datetime, decimal.Decimal, uuid.UUID],
        "stdlib_functions": [operator.add, functools.reduce, math.sqrt, pickle.dumps],
        "itemgetter": operator.itemgetter(1, 2),
        "attrgetter": operator.attrgetter("a.b"),
        "methodcaller": operator.methodcaller("split", ","),
        "nested_class": objects.Outer.Inner,
        "nested_class_deeper": objects.Outer.Inner.Deeper,
        "nested_function": objects.Outer.static,
        "nested_method": objects.Outer.Inner.method,
        "nested_instance": objects.Outer.Inner(),
        "module_function": objects.module_function,
        "module_class": objects.Plain,
        "enum_members": [objects.Color.RED, objects.Color.GREEN, objects.Color.BLUE],
        "int_enum": [objects.Level.LOW, objects.Level.HIGH],
        "int_flag": [objects.Perm.R, objects.Perm.R | objects.Perm.W, objects.Perm(0)],
        "enum_class": objects.Color,
        "complex": [1j, complex(-0.0, float("inf")), complex(float("nan"), 1)],
        "bound_builtin_method": [].append.__self__,
        "bytearray_big": bytearray(b"x" * 70000),
        "bytes_big": b"y" * 70000,
        "str_big": "z" * 70000,
        "singleton_by_string": objects.SINGLETON,
        "mixed_singletons": [objects.SINGLETON, objects.SINGLETON],
    }


STDLIB_CASES = _stdlib_cases()


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("case", sorted(STDLIB_CASES))
def test_stdlib_objects(case, proto):
    check_identical(STDLIB_CASES[case], proto)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_nested_qualname_class_roundtrip(proto):
    data = skypickle.dumps(objects.Outer.Inner.Deeper, protocol=proto)
    assert pickle.loads(data) is objects.Outer.Inner.Deeper
    if proto < 4:
        # protocols < 4 cannot name a dotted qualname: getattr(Outer, 'Inner') style reduction
        assert b"getattr" in data
    else:
        assert b"Outer.Inner.Deeper" in data


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_enum_roundtrip_is_identity(proto):
    for member in objects.Color:
        assert pickle.loads(skypickle.dumps(member, protocol=proto)) is member


@pytest.mark.parametrize("proto", range(3))
def test_fix_imports_names_below_protocol_3(proto):
    # builtins -> __builtin__ below protocol 3 (skypickle always behaves as fix_imports=True)
    data = skypickle.dumps([len, int, ValueError], protocol=proto)
    assert b"__builtin__" in data
    assert b"builtins" not in data
    assert data == pickle.dumps([len, int, ValueError], protocol=proto, fix_imports=True)
    # and e.g. functools.reduce -> __builtin__.reduce, collections.UserDict -> UserDict
    import collections as c

    for obj in (functools.reduce, c.UserDict, c.UserList, c.OrderedDict):
        check_identical(obj, proto)


@pytest.mark.parametrize("proto", (3, 4, 5))
def test_no_name_mapping_from_protocol_3(proto):
    data = skypickle.dumps(len, protocol=proto)
    assert b"builtins" in data
    assert b"__builtin__" not in data


# --------------------------------------------------------------------------------------------
# Loading in a fresh interpreter
# --------------------------------------------------------------------------------------------


def test_payload_loads_in_fresh_interpreter(run_in_subprocess):
    obj = {
        "dt": datetime.datetime(2020, 5, 17, 1, 2, 3),
        "dec": decimal.Decimal("1.5"),
        "frac": fractions.Fraction(1, 3),
        "od": collections.OrderedDict(a=1),
        "cycle": _self_list(),
        "s": "\ud800\U0001f600",
    }
    payload = skypickle.dumps(obj)
    proc = run_in_subprocess(
        """
        import pickle, sys
        with open(sys.argv[1], "rb") as f:
            obj = pickle.load(f)
        assert obj["cycle"][2] is obj["cycle"]
        del obj["cycle"]
        print(ascii(sorted((k, repr(v)) for k, v in obj.items())))
        """,
        payload=payload,
    )
    expected = {k: v for k, v in obj.items() if k != "cycle"}
    assert proc.stdout.strip() == ascii(sorted((k, repr(v)) for k, v in expected.items()))


def test_by_reference_class_needs_module_in_fresh_interpreter(run_in_subprocess):
    # Classes are saved by reference: a fresh interpreter without tests/ on sys.path cannot
    # find the module 'objects'.
    payload = skypickle.dumps(objects.Plain(1))
    proc = run_in_subprocess(
        """
        import pickle, sys
        try:
            pickle.load(open(sys.argv[1], "rb"))
        except ModuleNotFoundError as e:
            print("missing:", e.name)
        """,
        payload=payload,
    )
    assert proc.stdout.strip() == "missing: objects"


def test_dis_accepts_everything():
    for case in STDLIB_CASES.values():
        for proto in PROTOCOLS:
            dis(skypickle.dumps(case, protocol=proto))


def test_roundtrip_equals_original_for_plain_data():
    obj = {"a": [1, 2, {"b": (3, 4.5, "c")}], "d": {b"e", None}, "f": bytearray(b"g")}
    for proto in PROTOCOLS:
        assert_same_structure(obj, pickle.loads(skypickle.dumps(obj, protocol=proto)))
