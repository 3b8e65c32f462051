"""The reduce protocol: every hook, byte-identical with the stdlib pickler at every protocol."""

from __future__ import annotations

import copyreg
import functools
import io
import pickle

import objects
import pytest
import skypickle
from helpers import PROTOCOLS, check_identical, check_same_outcome

P = PROTOCOLS


@pytest.mark.parametrize("proto", P)
def test_plain_instance(proto):
    check_identical(objects.Plain([1, "two", (3,)]), proto)
    check_identical(objects.Empty(), proto)


@pytest.mark.parametrize("proto", P)
def test_plain_instance_roundtrip(proto):
    out = pickle.loads(skypickle.dumps(objects.Plain({"k": [1]}), protocol=proto))
    assert type(out) is objects.Plain
    assert out.value == {"k": [1]}


@pytest.mark.parametrize("proto", P)
def test_reduce(proto):
    check_identical(objects.WithReduce([1, 2]), proto)
    check_identical([objects.WithReduce("a"), objects.WithReduce(objects.WithReduce(None))], proto)


@pytest.mark.parametrize("proto", P)
def test_reduce_ex_gets_the_protocol(proto):
    data = check_identical(objects.WithReduceEx("v"), proto)
    out = pickle.loads(data)
    assert out.protocol_seen == proto
    assert out.value == "v"


@pytest.mark.parametrize("proto", P)
def test_reduce_with_state(proto):
    check_identical(objects.ReduceWithState({"a": 1}), proto)
    check_identical(objects.ReduceStateNoSetstate([1, 2]), proto)
    check_identical(objects.ReduceSlotState("slot", "dict"), proto)
    out = pickle.loads(skypickle.dumps(objects.ReduceSlotState("slot", "dict"), protocol=proto))
    assert (out.s, out.d) == ("slot", "dict")


@pytest.mark.parametrize("proto", P)
def test_getstate_setstate(proto):
    data = check_identical(objects.WithGetState([1, 2]), proto)
    out = pickle.loads(data)
    assert out.value == [1, 2]
    assert out.extra == [[1, 2]]
    assert out.cache == "restored"
    check_identical(objects.WithNonDictState("a", ("b",)), proto)
    data = check_identical(objects.FalsyState(), proto)
    out = pickle.loads(data)
    if proto >= 2:
        assert out.setstate_called_with == {}
    else:
        assert not hasattr(out, "setstate_called_with")


@pytest.mark.parametrize("proto", P)
def test_many_temporary_states(proto):
    # Each __getstate__ returns fresh temporaries; a memo that does not keep its objects alive
    # would see recycled ids and emit bogus memo GETs.
    objs = [objects.WithGetState(i) for i in range(300)]
    check_identical(objs, proto)
    objs = [objects.WithReduce((i, str(i))) for i in range(300)]
    check_identical(objs, proto)
    objs = [objects.DictItemsReduce({"k": [i]}) for i in range(200)]
    check_identical(objs, proto)


@pytest.mark.parametrize("proto", P)
def test_getnewargs(proto):
    data = check_identical(objects.WithGetNewArgs(("arg", 1)), proto)
    out = pickle.loads(data)
    assert out.value == ("arg", 1)
    if proto >= 2:
        assert b"\x81" in data  # NEWOBJ


@pytest.mark.parametrize("proto", P)
def test_getnewargs_ex(proto):
    obj = objects.WithGetNewArgsEx(1, [2], key="word", other=(3,))
    data = check_identical(obj, proto)
    out = pickle.loads(data)
    assert out.args == (1, [2])
    assert out.kwargs == {"key": "word", "other": (3,)}
    if proto >= 4:
        assert b"\x92" in data  # NEWOBJ_EX
    elif proto >= 2:
        # protocols 2 and 3 build a functools.partial(cls.__new__, cls, *args, **kwargs)
        assert b"functools" in data and b"partial" in data


@pytest.mark.parametrize("proto", (2, 3, 4, 5))
def test_getnewargs_ex_without_kwargs(proto):
    # Empty kwargs: plain NEWOBJ at every protocol >= 2.
    obj = objects.WithGetNewArgsEx(1, 2)
    data = check_identical(obj, proto)
    assert b"partial" not in data


@pytest.mark.parametrize("proto", P)
def test_slots(proto):
    # Below protocol 2, __slots__ without __getstate__ is an error (the same one as pickle's).
    check_same_outcome(objects.WithSlots(1, [2]), proto)
    check_same_outcome(objects.WithSlots("only x"), proto)  # y unset
    check_same_outcome(objects.WithSlotsAndDict("x", a=1, b=[2]), proto)
    check_same_outcome(objects.WithSlotsAndDict("x"), proto)  # empty __dict__
    check_same_outcome(objects.SlotsChild(1, 2, 3), proto)
    if proto < 2:
        with pytest.raises(TypeError, match="__slots__"):
            skypickle.dumps(objects.WithSlots(1, 2), protocol=proto)
        return
    out = pickle.loads(skypickle.dumps(objects.SlotsChild(1, None, 3), protocol=proto))
    assert (out.x, out.z) == (1, 3)
    assert not hasattr(out, "y")


@pytest.mark.parametrize("proto", P)
def test_state_setter_six_tuple(proto):
    data = check_identical(objects.WithStateSetter([1]), proto)
    out = pickle.loads(data)
    assert out.set_by_setter == {"state": [1]}


@pytest.mark.parametrize("proto", P)
def test_listitems_dictitems(proto):
    data = check_identical(objects.ListItemsReduce([1, "a", None]), proto)
    assert pickle.loads(data) == objects.MyList([1, "a", None])
    data = check_identical(objects.DictItemsReduce({"a": 1, "b": [2]}), proto)
    assert pickle.loads(data) == objects.MyDict({"a": 1, "b": [2]})
    check_identical(objects.ListItemsNoneIter(), proto)
    check_identical(objects.ListItemsReduce([]), proto)
    check_identical(objects.DictItemsReduce({}), proto)


@pytest.mark.parametrize("proto", P)
def test_reduce_returning_string(proto):
    data = check_identical(objects.SINGLETON, proto)
    assert pickle.loads(data) is objects.SINGLETON
    check_identical([objects.SINGLETON, {"again": objects.SINGLETON}], proto)


@pytest.mark.parametrize("proto", P)
def test_object_memoised_during_its_own_construction(proto):
    obj = objects.make_self_referential()
    data = check_identical(obj, proto)
    out = pickle.loads(data)
    assert out.box[0] is out
    check_identical([obj, obj.box, obj], proto)


@pytest.mark.parametrize("proto", P)
def test_builtin_subclasses(proto):
    cases = [
        objects.MyList([1, 2]),
        objects.MyDict(a=1),
        objects.MyTuple((1, 2)),
        objects.MySet({1}),
        objects.MyFrozenSet({1}),
        objects.MyStr("s"),
        objects.MyBytes(b"b"),
        objects.MyInt(7),
        objects.MyFloat(1.5),
        objects.MyBytearray(b"ba"),
    ]
    check_identical(cases, proto)
    for c in cases:
        c.attr = "with a dict"
    check_identical(cases, proto)


@pytest.mark.parametrize("proto", P)
def test_instance_with_dict_sharing(proto):
    shared = {"x": 1}
    a = objects.Plain(shared)
    b = objects.Plain(shared)
    a.other = b
    b.other = a
    check_identical([a, b, shared], proto)


@pytest.mark.parametrize("proto", P)
def test_copyreg_reconstructor_path(proto):
    # Protocols 0 and 1 go through copyreg._reconstructor for plain instances.
    data = check_identical(objects.Plain(1), proto)
    if proto < 2:
        assert b"copy_reg" in data and b"_reconstructor" in data
    else:
        assert b"copy_reg" not in data and b"copyreg" not in data


@pytest.mark.parametrize("proto", P)
def test_partial_objects(proto):
    p = functools.partial(objects.module_function, 1)
    p.attr = "instance dict"
    check_identical(p, proto)
    check_identical(functools.partial(functools.partial(max, 1), 2), proto)


@pytest.mark.parametrize("proto", P)
def test_copyreg_newobj_checks(proto):
    # Explicit copyreg.__newobj__ reductions are validated at protocol >= 2.
    obj = objects.NewobjWrongClass()
    try:
        expected = pickle.dumps(obj, protocol=proto)
    except pickle.PicklingError as exc:
        with pytest.raises(pickle.PicklingError) as info:
            skypickle.dumps(obj, protocol=proto)
        assert str(info.value) == str(exc)
    else:
        assert skypickle.dumps(obj, protocol=proto) == expected


@pytest.mark.parametrize("proto", P)
def test_reduce_ex_of_copyreg_registered_type(proto):
    copyreg.pickle(objects.Vec, objects.reduce_vec)
    try:
        check_identical([objects.Vec(1, 2), objects.Vec(3, 4)], proto)
    finally:
        del copyreg.dispatch_table[objects.Vec]


# --------------------------------------------------------------------------------------------
# Hooks are looked up like the stdlib does, every time (no stale per-class shortcuts)
# --------------------------------------------------------------------------------------------


def _instance_level_hooks():
    a = objects.Plain("normal")
    b = objects.Plain("instance __reduce_ex__")
    b.__reduce_ex__ = lambda protocol: (str, (f"instance reduce_ex {protocol}",))
    d = objects.Plain("instance __getstate__")
    d.__getstate__ = lambda: {"from": "instance getstate"}
    e = objects.Plain("non-str key")
    e.__dict__[1] = 2
    f = objects.Plain("class changed")
    f.__class__ = objects.Empty
    g = objects.Plain("big dict")
    g.__dict__.update({f"attr{i}": i for i in range(2500)})
    return [a, b, d, e, f, g, objects.Plain("normal again")]


@pytest.mark.parametrize("proto", P)
def test_instance_level_hooks_are_honoured(proto):
    check_identical(_instance_level_hooks(), proto)


@pytest.mark.parametrize("proto", P)
def test_instance_level_reduce_is_ignored_like_stdlib(proto):
    # object.__reduce_ex__ checks for a __reduce__ override on the class, not the instance: the
    # instance attribute (a local lambda) then stays in the state. pickle cannot pickle that
    # lambda; skypickle, like cloudpickle, pickles it by value.
    c = objects.Plain("instance __reduce__")
    c.__reduce__ = lambda: (str, ("instance reduce",))
    with pytest.raises((AttributeError, pickle.PicklingError)):
        pickle.dumps(c, protocol=proto)
    loaded = pickle.loads(skypickle.dumps(c, protocol=proto))
    assert type(loaded) is objects.Plain
    assert loaded.__dict__["__reduce__"]() == (str, ("instance reduce",))


@pytest.mark.parametrize("proto", P)
def test_class_patched_between_dumps(proto):
    obj = [objects.Patchable(1), objects.Patchable(2)]
    check_identical(obj, proto)
    objects.Patchable.__getstate__ = lambda self: {"patched getstate": self.value}
    try:
        check_identical(obj, proto)
    finally:
        del objects.Patchable.__getstate__
    objects.Patchable.__reduce__ = lambda self: (str, ("patched reduce",))
    try:
        check_identical(obj, proto)
    finally:
        del objects.Patchable.__reduce__
    check_identical(obj, proto)


@pytest.mark.parametrize("proto", P)
def test_class_patched_between_dumps_of_one_pickler(proto):
    def run(pickler_cls):
        f = io.BytesIO()
        p = pickler_cls(f, proto)
        p.dump([objects.Patchable(1)])
        objects.Patchable.__reduce__ = lambda self: (str, ("patched",))
        try:
            p.dump([objects.Patchable(2)])
        finally:
            del objects.Patchable.__reduce__
        p.dump([objects.Patchable(3)])
        return f.getvalue()

    expected = run(pickle.Pickler)
    got = run(skypickle.Pickler)
    # Instances are new objects each time; only the addresses could differ, and they do not
    # appear in the output.
    assert got == expected
