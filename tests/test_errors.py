"""Errors: the same exception type and message as the stdlib pickler, plus skypickle's path note,
the RecursionError conversion, and deep nesting without crashing the interpreter."""

from __future__ import annotations

import io
import pickle
import sys
import threading
import types

import objects
import pytest
import skypickle
from helpers import PROTOCOLS, RECURSION_MESSAGE, assert_healthy, assert_same_error, notes_of

P = PROTOCOLS


def _gen():
    yield 1


def _local_function():
    def local(x):
        return x

    return local


def _local_class():
    class Local:
        pass

    return Local


module_lambda = lambda x: x  # noqa: E731 - a module-level lambda cannot be found by name


def _module_claims_missing_module():
    cls = type("Orphan", (), {})
    cls.__module__ = "skypickle_tests_no_such_module"
    return cls


class _NoneReduceEx:
    __reduce_ex__ = None


ERROR_CASES = {
    "lock": threading.Lock,
    "rlock": threading.RLock,
    "generator": _gen,
    "local_function": _local_function,
    "local_class": _local_class,
    "local_class_instance": lambda: _local_class()(),
    "module_lambda": lambda: module_lambda,
    "missing_module": _module_claims_missing_module,
    "module_object": lambda: types,
    "memoryview": lambda: memoryview(b"abc"),
    "buffered_reader": lambda: io.BufferedReader(io.BytesIO(b"x")),
    "reduce_returns_int": objects.ReduceReturnsInt,
    "reduce_returns_none": objects.ReduceReturnsNone,
    "reduce_too_short": objects.ReduceTooShort,
    "reduce_too_long": objects.ReduceTooLong,
    "reduce_not_callable": objects.ReduceNotCallable,
    "reduce_args_not_tuple": objects.ReduceArgsNotTuple,
    "reduce_bad_listitems": objects.ReduceBadListItems,
    "reduce_bad_dictitems": objects.ReduceBadDictItems,
    "reduce_bad_state_setter": objects.ReduceBadStateSetter,
    "reduce_ex_raises": objects.ReduceExRaises,
    "reduce_raises": objects.ReduceRaises,
    "getstate_raises": objects.GetStateRaises,
    "bad_getnewargs": objects.BadGetNewArgs,
    "bad_getnewargs_ex": objects.BadGetNewArgsEx,
    "reduce_unknown_global_string": objects.ReduceUnknownGlobalString,
    "newobj_no_args": objects.NewobjNoArgs,
    "newobj_arg_not_class": objects.NewobjArgNotClass,
    "newobj_wrong_class": objects.NewobjWrongClass,
    "global_not_the_same_object": lambda: objects.impostor,
    "global_not_found": lambda: objects.ghost,
    "reduce_ex_is_none": _NoneReduceEx,
    "huge_int": lambda: 10**5000,  # fails at protocols 0 and 1 only (repr digit limit)
    "nested_lock_in_list": lambda: [1, [2, {"k": threading.Lock()}]],
    "lock_as_dict_key": lambda: {threading.Lock(): 1},
    "lock_in_set": lambda: {1, threading.Lock()},
    "lock_in_tuple": lambda: (1, (threading.Lock(),)),
    "lock_in_state": lambda: objects.Plain(threading.Lock()),
    "lock_in_slots": lambda: objects.WithSlots(1, threading.Lock()),
    "lock_in_reduce_args": lambda: objects.WithReduce(threading.Lock()),
    "lock_in_listitems": lambda: objects.ListItemsReduce([1, threading.Lock()]),
    "lock_in_dictitems": lambda: objects.DictItemsReduce({"a": threading.Lock()}),
}


# Objects `pickle` refuses but cloudpickle pickles: functions the loader cannot import by
# name (by value), modules (by name), memoryviews (as bytes). skypickle must accept them like
# cloudpickle does; they are checked against cloudpickle instead of pickle.
BY_VALUE_CASES = {
    "local_function",
    "module_lambda",
    "global_not_found",
    "global_not_the_same_object",
    "module_object",
    "memoryview",
    "local_class",
    "local_class_instance",
    "missing_module",
}


@pytest.mark.parametrize("proto", P)
@pytest.mark.parametrize("case", sorted(BY_VALUE_CASES))
def test_cloudpickle_cases_that_pickle_refuses(case, proto):
    import cloudpickle

    obj = ERROR_CASES[case]()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(obj, protocol=proto)
    via_cloudpickle = pickle.loads(cloudpickle.dumps(obj, protocol=proto))
    loaded = pickle.loads(skypickle.dumps(obj, protocol=proto))
    if case != "local_class_instance":
        assert type(loaded) is type(via_cloudpickle)
    if isinstance(obj, (types.FunctionType, type)):
        assert loaded.__name__ == obj.__name__
    elif case == "local_class_instance":
        assert type(loaded).__name__ == type(obj).__name__
    else:
        assert loaded == via_cloudpickle
    assert_healthy()


@pytest.mark.parametrize("proto", P)
@pytest.mark.parametrize("case", sorted(set(ERROR_CASES) - BY_VALUE_CASES))
def test_error_differential(case, proto):
    obj = ERROR_CASES[case]()
    try:
        expected = pickle.dumps(obj, protocol=proto)
    except BaseException:
        assert_same_error(
            lambda: pickle.dumps(obj, protocol=proto),
            lambda: skypickle.dumps(obj, protocol=proto),
        )
        # and the same through dump() and a Pickler
        assert_same_error(
            lambda: pickle.dump(obj, io.BytesIO(), protocol=proto),
            lambda: skypickle.dump(obj, io.BytesIO(), protocol=proto),
        )
    else:
        # Not an error at this protocol for the stdlib: then it must not be one for skypickle.
        assert skypickle.dumps(obj, protocol=proto) == expected
    assert_healthy()


def test_reduce_ex_exception_propagates_unchanged():
    exc = KeyError("the user's very own exception")

    class RaisesThis:
        def __reduce_ex__(self, protocol):
            raise exc

    for proto in P:
        with pytest.raises(KeyError) as info:
            skypickle.dumps([1, RaisesThis()], protocol=proto)
        assert info.value is exc
    assert_healthy()


def test_keyboard_interrupt_like_base_exceptions_propagate():
    class Stop(BaseException):
        pass

    class RaisesBase:
        def __reduce_ex__(self, protocol):
            raise Stop()

    with pytest.raises(Stop):
        skypickle.dumps({"x": RaisesBase()})
    assert_healthy()


# --------------------------------------------------------------------------------------------
# The path note
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", P)
def test_error_note_names_the_path(proto):
    obj = {"jobs": [0, 1, 2, objects.Job(handler=objects.Handler(lock=threading.Lock()))]}
    with pytest.raises((TypeError, pickle.PicklingError)) as info:
        skypickle.dumps(obj, protocol=proto)
    notes = [n for n in notes_of(info.value) if n.startswith("when pickling obj")]
    assert notes, f"no path note in {notes_of(info.value)!r}"
    note = notes[0]
    assert "['jobs'][3]" in note, note
    assert "lock" in note, note
    # the exception itself is still the stdlib's
    want = None
    try:
        pickle.dumps(obj, protocol=proto)
    except BaseException as exc:  # noqa: BLE001
        want = exc
    assert type(info.value) is type(want)
    assert str(info.value) == str(want)
    assert_healthy()


def test_error_note_at_root_and_in_nested_containers():
    with pytest.raises(TypeError, match="cannot pickle '_thread.lock' object"):
        skypickle.dumps(threading.Lock())
    with pytest.raises(TypeError) as info:
        skypickle.dumps([[0, (1, {"deep": threading.Lock()})]])
    notes = [n for n in notes_of(info.value) if n.startswith("when pickling obj")]
    assert notes
    assert "deep" in notes[0]


def test_error_note_is_added_once():
    with pytest.raises(TypeError) as info:
        skypickle.dumps({"a": [[threading.Lock()]]})
    notes = [n for n in notes_of(info.value) if n.startswith("when pickling obj")]
    assert len(notes) == 1


# --------------------------------------------------------------------------------------------
# Recursion
# --------------------------------------------------------------------------------------------


def _nested_list(depth):
    root = cur = []
    for _ in range(depth):
        nxt = []
        cur.append(nxt)
        cur = nxt
    return root


def _nested_dict(depth):
    root = cur = {}
    for _ in range(depth):
        nxt = {}
        cur["k"] = nxt
        cur = nxt
    return root


def _nested_tuple(depth):
    t = ()
    for _ in range(depth):
        t = (t,)
    return t


def _nested_instances(depth):
    root = cur = objects.Plain()
    for _ in range(depth):
        nxt = objects.Plain()
        cur.value = nxt
        cur = nxt
    return root


NESTERS = {
    "list": _nested_list,
    "dict": _nested_dict,
    "tuple": _nested_tuple,
    "instances": _nested_instances,
}


def test_too_deep_does_not_crash_the_interpreter(run_in_subprocess):
    # Guard first in a subprocess: a C stack overflow there is a negative return code instead
    # of a dead test run.
    proc = run_in_subprocess(
        """
        import pickle, sys, skypickle
        depth = 10 * sys.getrecursionlimit()
        root = cur = []
        for _ in range(depth):
            nxt = []
            cur.append(nxt)
            cur = nxt
        try:
            skypickle.dumps(root)
        except pickle.PicklingError as e:
            print("PicklingError", type(e.__cause__).__name__)
        """,
        check=False,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.strip() == "PicklingError RecursionError"


@pytest.mark.parametrize("proto", P)
@pytest.mark.parametrize("kind", sorted(NESTERS))
def test_recursion_error_becomes_pickling_error(kind, proto):
    obj = NESTERS[kind](10 * sys.getrecursionlimit())
    with pytest.raises(RecursionError):
        pickle.dumps(obj, protocol=proto)
    with pytest.raises(pickle.PicklingError) as info:
        skypickle.dumps(obj, protocol=proto)
    assert str(info.value) == RECURSION_MESSAGE
    assert isinstance(info.value.__cause__, RecursionError)
    with pytest.raises(pickle.PicklingError, match="excessively deep recursion"):
        skypickle.dump(obj, io.BytesIO(), protocol=proto)
    with pytest.raises(pickle.PicklingError, match="excessively deep recursion"):
        skypickle.Pickler(io.BytesIO(), proto).dump(obj)
    assert_healthy()


def test_recursion_from_a_user_reduce_is_converted():
    with pytest.raises(RecursionError):
        pickle.dumps(objects.EndlessReduce())
    with pytest.raises(pickle.PicklingError) as info:
        skypickle.dumps(objects.EndlessReduce())
    assert str(info.value) == RECURSION_MESSAGE
    assert isinstance(info.value.__cause__, RecursionError)
    assert_healthy()


@pytest.mark.parametrize("kind", sorted(NESTERS))
def test_moderate_nesting_is_identical(kind):
    obj = NESTERS[kind](sys.getrecursionlimit() // 5)
    for proto in P:
        assert skypickle.dumps(obj, protocol=proto) == pickle.dumps(obj, protocol=proto)


def test_very_deep_nesting_with_high_recursion_limit(run_in_subprocess):
    proc = run_in_subprocess(
        """
        import pickle, sys, skypickle
        sys.setrecursionlimit(10**6)
        DEPTH = 200_000

        def depth_of(x, step):
            n = 0
            while True:
                x = step(x)
                if x is None:
                    return n
                n += 1

        root = cur = []
        for _ in range(DEPTH):
            nxt = []
            cur.append(nxt)
            cur = nxt
        data = skypickle.dumps(root)
        print("list", len(data))
        out = pickle.loads(data)
        print("list-depth", depth_of(out, lambda l: l[0] if l else None))

        droot = dcur = {}
        for _ in range(DEPTH):
            nxt = {}
            dcur["k"] = nxt
            dcur = nxt
        data = skypickle.dumps(droot, protocol=2)
        print("dict", len(data))
        out = pickle.loads(data)
        print("dict-depth", depth_of(out, lambda d: d.get("k")))

        t = ()
        for _ in range(DEPTH):
            t = (t,)
        data = skypickle.dumps(t)
        print("tuple", len(data))
        """,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (
        f"deep dump crashed or failed (returncode {proc.returncode})\n{proc.stderr[-3000:]}"
    )
    lines = dict(line.split() for line in proc.stdout.split("\n") if line.strip())
    depth = 200_000
    for kind in ("list", "dict", "tuple"):
        n = int(lines[kind])
        assert 2 * depth <= n <= 40 * depth, (kind, n)
    assert int(lines["list-depth"]) == depth
    assert int(lines["dict-depth"]) == depth


def test_healthy_after_every_kind_of_error():
    for case in ("lock", "reduce_returns_int", "reduce_ex_raises", "generator"):
        obj = ERROR_CASES[case]()
        with pytest.raises((TypeError, pickle.PicklingError, KeyError)):
            skypickle.dumps(obj)
        assert_healthy()
    # a Pickler whose dump failed keeps working for the next dump
    f = io.BytesIO()
    p = skypickle.Pickler(f, 5)
    with pytest.raises(TypeError):
        p.dump([threading.Lock()])
    f.seek(0)
    f.truncate()
    p.clear_memo()
    p.dump([1, 2])
    assert pickle.loads(f.getvalue()) == [1, 2]


# --------------------------------------------------------------------------------------------
# Containers mutated while they are being pickled
# --------------------------------------------------------------------------------------------


def _list_grows():
    lst = [1]
    lst.append(objects.GrowsParentList(lst))
    lst.append(2)
    return lst


def _list_cleared():
    lst = [1]
    lst.extend([objects.ClearsParent(lst), 2, 3])
    return lst


def _dict_grows():
    d = {"a": 1}
    d["m"] = objects.AddsToParentMapping(d)
    d["z"] = 3
    return d


def _dict_cleared():
    d = {"a": 1}
    d["c"] = objects.ClearsParent(d)
    d["z"] = 3
    return d


def _set_grows():
    s = {5}
    s.add(objects.AddsToParentMapping(s))
    return s


MUTATION_CASES = {
    "list_grows": _list_grows,
    "list_cleared": _list_cleared,
    "dict_grows": _dict_grows,
    "dict_cleared": _dict_cleared,
    "set_grows": _set_grows,
}


@pytest.mark.parametrize("proto", P)
@pytest.mark.parametrize("case", sorted(MUTATION_CASES))
def test_container_mutated_during_pickling(case, proto):
    make = MUTATION_CASES[case]
    try:
        expected = pickle.dumps(make(), protocol=proto)
    except Exception:
        assert_same_error(
            lambda: pickle.dumps(make(), protocol=proto),
            lambda: skypickle.dumps(make(), protocol=proto),
        )
    else:
        assert skypickle.dumps(make(), protocol=proto) == expected
    assert_healthy()
