"""Pickler hooks: persistent_id, reducer_override, dispatch tables, copyreg, extensions, buffers."""

from __future__ import annotations

import collections
import copyreg
import io
import pickle

import objects
import pytest
import skypickle
from helpers import PROTOCOLS, assert_same_bytes, assert_same_error, assert_same_structure, dis
from hypothesis import given
from strategies import graphs

np = pytest.importorskip("numpy")

P = PROTOCOLS

DATA = [objects.Point(1, 2), {"p": objects.Point(3, 4), "n": [1, 2.0, "s"]}, (5, b"b")]


def _run(pickler_cls, obj, proto, **kw):
    f = io.BytesIO()
    p = pickler_cls(f, proto, **kw)
    p.dump(obj)
    return f.getvalue(), p


# --------------------------------------------------------------------------------------------
# persistent_id
# --------------------------------------------------------------------------------------------


def _pid(obj):
    if type(obj) is objects.Point:
        return f"point:{obj.x}:{obj.y}"
    if type(obj) is int and obj == 42:
        return "the answer"
    return None


class SkyPid(skypickle.Pickler):
    def persistent_id(self, obj):
        return _pid(obj)


class StdPid(pickle.Pickler):
    def persistent_id(self, obj):
        return _pid(obj)


class PidUnpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        if pid == "the answer":
            return "forty-two"
        tag, x, y = pid.split(":")
        assert tag == "point"
        return ("loaded point", int(x), int(y))


@pytest.mark.parametrize("proto", P)
def test_persistent_id_identical_and_roundtrip(proto):
    obj = DATA + [42, [42]]
    expected, _ = _run(StdPid, obj, proto)
    got, _ = _run(SkyPid, obj, proto)
    assert_same_bytes(expected, got)
    dis(got)
    out = PidUnpickler(io.BytesIO(got)).load()
    assert out[0] == ("loaded point", 1, 2)
    assert out[1]["p"] == ("loaded point", 3, 4)
    assert out[3] == "forty-two"
    assert out[4] == ["forty-two"]


@pytest.mark.parametrize("proto", P)
def test_persistent_id_non_string_pids(proto):
    class SkyTuplePid(skypickle.Pickler):
        def persistent_id(self, obj):
            return ("pt", obj.x, [obj.y]) if type(obj) is objects.Point else None

    class StdTuplePid(pickle.Pickler):
        def persistent_id(self, obj):
            return ("pt", obj.x, [obj.y]) if type(obj) is objects.Point else None

    expected, _ = _run(StdTuplePid, DATA, proto)
    got, _ = _run(SkyTuplePid, DATA, proto)
    assert_same_bytes(expected, got)


def test_persistent_id_protocol_0_requires_ascii():
    class SkyBad(skypickle.Pickler):
        def persistent_id(self, obj):
            return "caf\xe9" if type(obj) is objects.Point else None

    class StdBad(pickle.Pickler):
        def persistent_id(self, obj):
            return "caf\xe9" if type(obj) is objects.Point else None

    assert_same_error(lambda: _run(StdBad, DATA, 0), lambda: _run(SkyBad, DATA, 0))
    # the same pid is fine from protocol 1 on
    for proto in range(1, 6):
        assert _run(SkyBad, DATA, proto)[0] == _run(StdBad, DATA, proto)[0]


@pytest.mark.parametrize("proto", P)
def test_persistent_id_sees_same_objects_as_stdlib(proto):
    seen_sky, seen_std = [], []

    class SkyRec(skypickle.Pickler):
        def persistent_id(self, obj):
            seen_sky.append(type(obj))
            return None

    class StdRec(pickle.Pickler):
        def persistent_id(self, obj):
            seen_std.append(type(obj))
            return None

    obj = DATA + [None, True, 1.5, objects.SINGLETON, objects.WithGetState(1)]
    assert _run(SkyRec, obj, proto)[0] == _run(StdRec, obj, proto)[0]
    assert seen_sky == seen_std


@pytest.mark.parametrize("proto", P)
def test_persistent_id_consulted_for_repeated_instances(proto):
    # Every object the stdlib saves goes through persistent_id, including the (empty) NEWOBJ
    # argument tuple of the second instance of a class, so a pid for it must be honoured there.
    def make(base):
        class EmptyTuplePid(base):
            def persistent_id(self, obj):
                return "E" if type(obj) is tuple and obj == () else None

        return EmptyTuplePid

    obj = [objects.Plain(1), objects.Plain(2), objects.Plain(3)]
    expected, _ = _run(make(pickle.Pickler), obj, proto)
    got, _ = _run(make(skypickle.Pickler), obj, proto)
    assert_same_bytes(expected, got)


def _recorders(hook):
    seen_sky, seen_std = [], []

    def body(seen, res):
        def method(self, obj):
            seen.append(type(obj))
            return res

        return method

    res = None if hook == "persistent_id" else NotImplemented
    sky = type("SkyRec", (skypickle.Pickler,), {hook: body(seen_sky, res)})
    std = type("StdRec", (pickle.Pickler,), {hook: body(seen_std, res)})
    return sky, std, seen_sky, seen_std


@given(graphs())
def test_hooks_see_the_same_objects_as_stdlib(obj):
    # For generated graphs, persistent_id and reducer_override are offered exactly the objects
    # (by type, in order) that the stdlib pickler offers.
    for hook in ("persistent_id", "reducer_override"):
        for proto in P:
            sky, std, seen_sky, seen_std = _recorders(hook)
            try:
                expected, _ = _run(std, obj, proto)
            except Exception:
                continue  # unpicklable at this protocol (covered by the differential tests)
            got, _ = _run(sky, obj, proto)
            assert_same_bytes(expected, got, f"({hook}, protocol {proto})")
            assert seen_sky == seen_std, (hook, proto)


def test_persistent_id_default_is_not_persistent():
    # A subclass that does not override persistent_id pickles normally.
    class Sub(skypickle.Pickler):
        pass

    got, _ = _run(Sub, DATA, 5)
    assert got == pickle.dumps(DATA, protocol=5)


def test_persistent_id_exception_propagates():
    class Boom(skypickle.Pickler):
        def persistent_id(self, obj):
            raise LookupError("pid failed")

    with pytest.raises(LookupError, match="pid failed"):
        _run(Boom, DATA, 5)


# --------------------------------------------------------------------------------------------
# reducer_override
# --------------------------------------------------------------------------------------------

ATOMS = (type(None), bool, int, float, str, bytes)


def test_reducer_override_default_returns_notimplemented():
    p = skypickle.Pickler(io.BytesIO())
    for obj in (1, [1], objects.Point(), objects.Plain, len):
        assert p.reducer_override(obj) is NotImplemented


@pytest.mark.parametrize("proto", P)
def test_reducer_override_called_for_non_atoms_only(proto):
    seen_sky, seen_std = [], []

    class SkyRec(skypickle.Pickler):
        def reducer_override(self, obj):
            seen_sky.append(type(obj))
            res = super().reducer_override(obj)
            assert res is NotImplemented
            return res

    class StdRec(pickle.Pickler):
        def reducer_override(self, obj):
            seen_std.append(type(obj))
            return NotImplemented

    shared = [1]
    obj = [
        None,
        True,
        7,
        2**100,
        1.5,
        "s",
        b"b",
        (1, 2),
        shared,
        shared,
        {"k": objects.Plain(2)},
        objects.Plain,
        len,
        {1},
        bytearray(b"x"),
        objects.MyStr("sub"),
        objects.MyInt(3),
        objects.Plain(3),
        objects.WithGetState(1),
        objects.WithGetState(2),
    ]
    expected, _ = _run(StdRec, obj, proto)
    got, _ = _run(SkyRec, obj, proto)
    assert_same_bytes(expected, got)
    # exactly the objects the stdlib offers, in the same order
    assert seen_sky == seen_std
    assert not any(t in ATOMS for t in seen_sky)
    assert type in seen_sky and objects.Plain in seen_sky
    assert objects.MyStr in seen_sky and objects.MyInt in seen_sky
    assert seen_sky.count(objects.Plain) == 2  # each instance is offered


def _override(obj):
    if type(obj) is objects.Point:
        return (objects.make_vec, (obj.x * 10, obj.y))
    if obj is objects.module_function:
        return (objects.make_point, (-1, -1))
    return NotImplemented


class SkyOverride(skypickle.Pickler):
    def reducer_override(self, obj):
        return _override(obj)


class StdOverride(pickle.Pickler):
    def reducer_override(self, obj):
        return _override(obj)


@pytest.mark.parametrize("proto", P)
def test_reducer_override_result_is_used(proto):
    obj = DATA + [objects.module_function, objects.Plain(objects.Point(7, 8))]
    expected, _ = _run(StdOverride, obj, proto)
    got, _ = _run(SkyOverride, obj, proto)
    assert_same_bytes(expected, got)
    out = pickle.loads(got)
    assert out[0] == objects.Vec(10, 2)
    assert out[3] == objects.Point(-1, -1)
    assert out[4].value == objects.Vec(70, 8)


@pytest.mark.parametrize("proto", P)
def test_reducer_override_takes_precedence_over_dispatch_and_reduce(proto):
    class SkyO(skypickle.Pickler):
        def reducer_override(self, obj):
            if type(obj) is objects.WithReduce:
                return (str, ("overridden",))
            return NotImplemented

    class StdO(pickle.Pickler):
        def reducer_override(self, obj):
            if type(obj) is objects.WithReduce:
                return (str, ("overridden",))
            return NotImplemented

    copyreg.pickle(objects.WithReduce, objects.reduce_point)
    try:
        obj = [objects.WithReduce(1)]
        expected, _ = _run(StdO, obj, proto)
        got, _ = _run(SkyO, obj, proto)
    finally:
        del copyreg.dispatch_table[objects.WithReduce]
    assert_same_bytes(expected, got)
    assert pickle.loads(got) == ["overridden"]


@pytest.mark.parametrize("bad", [42, None, ("x",), (len, [1])])
def test_reducer_override_bad_result(bad):
    class SkyBad(skypickle.Pickler):
        def reducer_override(self, obj):
            return bad if type(obj) is objects.Point else NotImplemented

    class StdBad(pickle.Pickler):
        def reducer_override(self, obj):
            return bad if type(obj) is objects.Point else NotImplemented

    for proto in P:
        assert_same_error(
            lambda p=proto: _run(StdBad, DATA, p), lambda p=proto: _run(SkyBad, DATA, p)
        )


def test_reducer_override_exception_propagates():
    class Boom(skypickle.Pickler):
        def reducer_override(self, obj):
            raise ArithmeticError("override failed")

    with pytest.raises(ArithmeticError, match="override failed"):
        _run(Boom, [1, objects.Point()], 5)


# --------------------------------------------------------------------------------------------
# dispatch tables
# --------------------------------------------------------------------------------------------


class LokyStylePickler(skypickle.Pickler):
    """loky copies the inherited dispatch table, adds its reducers and assigns it per instance."""

    def __init__(self, file, protocol=None):
        super().__init__(file, protocol)
        table = dict(self.dispatch_table)
        table[objects.Point] = objects.reduce_point
        self.dispatch_table = table


class StdLokyStyle(pickle.Pickler):
    def __init__(self, file, protocol=None):
        super().__init__(file, protocol)
        table = copyreg.dispatch_table.copy()
        table[objects.Point] = objects.reduce_point
        self.dispatch_table = table


@pytest.mark.parametrize("proto", P)
def test_per_instance_dispatch_table(proto):
    obj = DATA + [complex(1, 2)]
    expected, _ = _run(StdLokyStyle, obj, proto)
    got, _ = _run(LokyStylePickler, obj, proto)
    assert_same_bytes(expected, got)
    assert b"make_point" in got
    out = pickle.loads(got)
    assert out[0] == objects.Point(1, 2)
    # other picklers are not affected
    assert b"make_point" not in skypickle.dumps(DATA, protocol=proto)
    assert skypickle.dumps(DATA, protocol=proto) == pickle.dumps(DATA, protocol=proto)


@pytest.mark.parametrize("proto", P)
def test_per_instance_dispatch_table_set_from_outside(proto):
    f = io.BytesIO()
    p = skypickle.Pickler(f, proto)
    p.dispatch_table = {objects.Point: objects.reduce_point}
    p.dump(DATA)
    fe = io.BytesIO()
    pe = pickle.Pickler(fe, proto)
    pe.dispatch_table = {objects.Point: objects.reduce_point}
    pe.dump(DATA)
    assert_same_bytes(fe.getvalue(), f.getvalue())


class SkyClassTable(skypickle.Pickler):
    dispatch_table = {objects.Point: objects.reduce_point}


class StdClassTable(pickle.Pickler):
    dispatch_table = {objects.Point: objects.reduce_point}


@pytest.mark.parametrize("proto", P)
def test_class_level_dispatch_table(proto):
    # A class-level table REPLACES copyreg's (as in the stdlib): complex is not reduced with
    # copyreg's pickle_complex here, which shows in the output at protocol 2+ (and is an error
    # at protocols 0 and 1).
    if proto < 2:
        assert_same_error(
            lambda: _run(StdClassTable, [complex(1, 2)], proto),
            lambda: _run(SkyClassTable, [complex(1, 2)], proto),
        )
    obj = DATA + ([complex(1, 2)] if proto >= 2 else [])
    expected, _ = _run(StdClassTable, obj, proto)
    got, _ = _run(SkyClassTable, obj, proto)
    assert_same_bytes(expected, got)
    assert pickle.loads(got)[0] == objects.Point(1, 2)
    assert b"make_point" in got


@pytest.mark.parametrize("proto", P)
def test_class_dispatch_mapping_ray_style(proto):
    obj = DATA + [objects.Vec(5, 6)]

    class StdRef(pickle.Pickler):
        dispatch_table = {**copyreg.dispatch_table, objects.Point: objects.reduce_point}

    expected, _ = _run(StdRef, obj, proto)
    skypickle.Pickler.dispatch[objects.Point] = objects.reduce_point
    try:
        got_dumps = skypickle.dumps(obj, protocol=proto)
        got_pickler, _ = _run(skypickle.Pickler, obj, proto)

        class Sub(skypickle.Pickler):
            pass

        got_sub, _ = _run(Sub, obj, proto)
        assert objects.Point in skypickle.Pickler.dispatch_table
        assert objects.Point not in copyreg.dispatch_table  # ChainMap writes go to the front map
    finally:
        del skypickle.Pickler.dispatch[objects.Point]
    assert_same_bytes(expected, got_dumps, "(dumps)")
    assert_same_bytes(expected, got_pickler, "(Pickler)")
    assert_same_bytes(expected, got_sub, "(subclass)")
    # unregistered again
    assert skypickle.dumps(obj, protocol=proto) == pickle.dumps(obj, protocol=proto)


@pytest.mark.parametrize("proto", P)
def test_dispatch_applies_to_exact_type_only(proto):
    # dispatch tables are keyed by exact type: Vec (a Point subclass) is not affected.
    skypickle.Pickler.dispatch[objects.Point] = objects.reduce_point
    try:
        got = skypickle.dumps([objects.Vec(1, 1)], protocol=proto)
    finally:
        del skypickle.Pickler.dispatch[objects.Point]
    assert got == pickle.dumps([objects.Vec(1, 1)], protocol=proto)


@pytest.mark.parametrize("proto", P)
def test_live_copyreg_registration(proto):
    obj = [objects.Vec(1, 2), objects.Vec(3, 4)]
    before = skypickle.dumps(obj, protocol=proto)
    assert before == pickle.dumps(obj, protocol=proto)
    copyreg.pickle(objects.Vec, objects.reduce_vec)
    try:
        expected = pickle.dumps(obj, protocol=proto)
        assert b"make_vec" in expected
        assert_same_bytes(expected, skypickle.dumps(obj, protocol=proto))
        assert_same_bytes(expected, _run(skypickle.Pickler, obj, proto)[0])
    finally:
        del copyreg.dispatch_table[objects.Vec]
    assert skypickle.dumps(obj, protocol=proto) == before


def test_dispatch_reducer_exception_propagates():
    def bad_reducer(obj):
        raise OSError("reducer failed")

    skypickle.Pickler.dispatch[objects.Vec] = bad_reducer
    try:
        with pytest.raises(OSError, match="reducer failed"):
            skypickle.dumps(objects.Vec())
    finally:
        del skypickle.Pickler.dispatch[objects.Vec]


class _DispatchMeta(type):
    pass


_DispatchCls = _DispatchMeta("_DispatchCls", (), {"__module__": __name__})


def test_dispatch_reducer_for_a_class_object():
    # A reducer registered for a metaclass applies to (importable) classes with that metaclass.
    # A class the loader cannot import would be pickled by value first, as cloudpickle does.
    Meta, Cls = _DispatchMeta, _DispatchCls

    def reduce_cls(c):
        return (str, ("class replaced",))

    for proto in P:
        skypickle.Pickler.dispatch[Meta] = reduce_cls
        try:
            out = pickle.loads(skypickle.dumps(Cls, protocol=proto))
        finally:
            del skypickle.Pickler.dispatch[Meta]
        assert out == "class replaced"


# --------------------------------------------------------------------------------------------
# extension registry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", P)
@pytest.mark.parametrize(
    "code,opcode",
    [
        (1, b"\x82"),
        (255, b"\x82"),
        (256, b"\x83"),
        (65535, b"\x83"),
        (65536, b"\x84"),
        (2**31 - 1, b"\x84"),
    ],
)
def test_extension_registry(code, opcode, proto):
    copyreg.add_extension("objects", "Point", code)
    copyreg.add_extension("objects", "module_function", 12345 if code != 12345 else 54321)
    try:
        obj = [objects.Point, objects.Point(1, 2), objects.module_function]
        expected = pickle.dumps(obj, protocol=proto)
        got = skypickle.dumps(obj, protocol=proto)
        assert_same_bytes(expected, got)
        if proto >= 2:
            assert opcode in got
        out = pickle.loads(got)
        assert out[0] is objects.Point
        assert out[2] is objects.module_function
    finally:
        copyreg.remove_extension("objects", "Point", code)
        copyreg.remove_extension("objects", "module_function", 12345 if code != 12345 else 54321)


# --------------------------------------------------------------------------------------------
# buffer_callback and PickleBuffer
# --------------------------------------------------------------------------------------------


def _oob(dumps, obj, proto=5, cb=None):
    buffers = []
    callback = buffers.append if cb is None else cb
    data = dumps(obj, protocol=proto, buffer_callback=callback)
    return data, buffers


@pytest.mark.parametrize("make", [bytes, bytearray], ids=["bytes", "bytearray"])
def test_picklebuffer_out_of_band(make):
    raw = make(b"out of band payload")
    obj = [pickle.PickleBuffer(raw), "x", pickle.PickleBuffer(raw)]
    e_data, e_bufs = _oob(pickle.dumps, obj)
    g_data, g_bufs = _oob(skypickle.dumps, obj)
    assert_same_bytes(e_data, g_data)
    assert len(g_bufs) == len(e_bufs) == 2
    for b in g_bufs:
        assert isinstance(b, pickle.PickleBuffer)
        assert b.raw().tobytes() == bytes(raw)
        assert b.raw().readonly == (make is bytes)
    out = pickle.loads(g_data, buffers=g_bufs)
    ref = pickle.loads(e_data, buffers=e_bufs)
    assert bytes(out[0]) == bytes(raw)
    assert memoryview(out[0]).readonly == memoryview(ref[0]).readonly == (make is bytes)
    # zero copy: the loaded buffer is the original memory
    assert np.shares_memory(np.frombuffer(out[0], np.uint8), np.frombuffer(raw, np.uint8))


@pytest.mark.parametrize("make", [bytes, bytearray], ids=["bytes", "bytearray"])
def test_picklebuffer_in_band(make):
    raw = make(b"in band payload")
    pb = pickle.PickleBuffer(raw)
    obj = [pb, pb]
    assert_same_bytes(pickle.dumps(obj, protocol=5), skypickle.dumps(obj, protocol=5))
    out = pickle.loads(skypickle.dumps(obj, protocol=5))
    assert type(out[0]) is make
    assert out[0] is out[1]
    # a callback returning True keeps buffers in band
    data, _ = _oob(skypickle.dumps, obj, cb=lambda b: True)
    assert_same_bytes(pickle.dumps(obj, protocol=5), data)


def test_callback_decides_per_buffer():
    a = pickle.PickleBuffer(b"keep in band")
    b = pickle.PickleBuffer(b"send out of band")
    sent = []

    def cb(buf):
        if buf.raw().tobytes() == b"keep in band":
            return True
        sent.append(buf)
        return False

    data = skypickle.dumps([a, b], protocol=5, buffer_callback=cb)
    ref_sent = []

    def ref_cb(buf):
        if buf.raw().tobytes() == b"keep in band":
            return True
        ref_sent.append(buf)
        return None

    assert_same_bytes(pickle.dumps([a, b], protocol=5, buffer_callback=ref_cb), data)
    assert len(sent) == 1
    out = pickle.loads(data, buffers=sent)
    assert bytes(out[0]) == b"keep in band" and bytes(out[1]) == b"send out of band"


@pytest.mark.parametrize("ret", [1, "yes", [0], 0, "", None, False, []])
def test_buffer_callback_truthiness(ret):
    # a true result keeps the buffer in band, a false one sends it out of band
    obj = [pickle.PickleBuffer(b"abc"), pickle.PickleBuffer(bytearray(b"def"))]
    got = skypickle.dumps(obj, protocol=5, buffer_callback=lambda b: ret)
    assert_same_bytes(pickle.dumps(obj, protocol=5, buffer_callback=lambda b: ret), got)


@pytest.mark.parametrize("proto", P)
def test_persistent_id_wins_over_reducer_override(proto):
    def make(base):
        class Both(base):
            def persistent_id(self, obj):
                return "pid" if type(obj) is objects.Point else None

            def reducer_override(self, obj):
                if type(obj) is objects.Point:
                    return (str, ("overridden",))
                if type(obj) is objects.Vec:
                    return (str, ("vec overridden",))
                return NotImplemented

        return Both

    obj = [objects.Point(1, 2), objects.Vec(3, 4)]
    expected, _ = _run(make(pickle.Pickler), obj, proto)
    got, _ = _run(make(skypickle.Pickler), obj, proto)
    assert_same_bytes(expected, got)


def test_buffer_callback_exception_propagates():
    def cb(buf):
        raise MemoryError("callback failed")

    with pytest.raises(MemoryError, match="callback failed"):
        skypickle.dumps(pickle.PickleBuffer(b"x"), protocol=5, buffer_callback=cb)


@pytest.mark.parametrize("proto", range(5))
def test_picklebuffer_below_protocol_5(proto):
    obj = [pickle.PickleBuffer(b"abc")]
    assert_same_error(
        lambda: pickle.dumps(obj, protocol=proto), lambda: skypickle.dumps(obj, protocol=proto)
    )


def test_picklebuffer_non_contiguous():
    base = memoryview(b"abcdef")[::2]
    obj = pickle.PickleBuffer(base)
    try:
        assert_same_error(
            lambda: pickle.dumps(obj, protocol=5), lambda: skypickle.dumps(obj, protocol=5)
        )
        assert_same_error(lambda: _oob(pickle.dumps, obj), lambda: _oob(skypickle.dumps, obj))
    finally:
        # Release explicitly: the tracebacks kept by the assertions form reference cycles with
        # this frame, and CPython's GC crashes clearing a memoryview that still has an export.
        obj.release()
        base.release()


def test_picklebuffer_of_released_memoryview():
    m = memoryview(b"abc")
    pb = pickle.PickleBuffer(m)
    pb.release()
    assert_same_error(lambda: pickle.dumps(pb, protocol=5), lambda: skypickle.dumps(pb, protocol=5))


# numpy


def _arrays():
    return {
        "f64": np.arange(1000, dtype=np.float64),
        "i8_2d": np.arange(60, dtype=np.int8).reshape(6, 10),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "bool": np.array([True, False, True]),
        "empty": np.zeros((0, 3)),
        "scalar_0d": np.array(3.5),
        "structured": np.zeros(4, dtype=[("a", "i4"), ("b", "f8")]),
        "unicode": np.array(["a", "bc"]),
        "readonly": np.frombuffer(b"\x00" * 64, dtype=np.uint8),
    }


@pytest.mark.parametrize("name", sorted(_arrays()))
def test_numpy_out_of_band_zero_copy(name):
    a = _arrays()[name]
    e_data, e_bufs = _oob(pickle.dumps, a)
    g_data, g_bufs = _oob(skypickle.dumps, a)
    assert_same_bytes(e_data, g_data)
    assert len(g_bufs) == len(e_bufs) == 1
    buf = g_bufs[0]
    assert isinstance(buf, pickle.PickleBuffer)
    if a.nbytes:
        # zero copy: the PickleBuffer's memory is the array's memory
        assert np.shares_memory(np.frombuffer(buf.raw(), dtype=np.uint8), a)
    out = pickle.loads(g_data, buffers=g_bufs)
    np.testing.assert_array_equal(out, a)
    assert out.dtype == a.dtype and out.shape == a.shape
    if a.nbytes:
        assert np.shares_memory(out, a)


def test_numpy_non_contiguous_is_in_band():
    a = np.arange(20.0)[::2]
    e_data, e_bufs = _oob(pickle.dumps, a)
    g_data, g_bufs = _oob(skypickle.dumps, a)
    assert_same_bytes(e_data, g_data)
    assert len(g_bufs) == len(e_bufs)
    np.testing.assert_array_equal(pickle.loads(g_data, buffers=g_bufs), a)


def test_numpy_several_arrays_out_of_band():
    arrays = [np.arange(10.0), np.ones(5, dtype=np.int32), np.arange(10.0)]
    arrays.append(arrays[0])  # shared: memo GET, no second buffer
    e_data, e_bufs = _oob(pickle.dumps, arrays)
    g_data, g_bufs = _oob(skypickle.dumps, arrays)
    assert_same_bytes(e_data, g_data)
    assert len(g_bufs) == len(e_bufs) == 3
    out = pickle.loads(g_data, buffers=g_bufs)
    assert out[3] is out[0]
    for x, y in zip(out, arrays):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("proto", P)
@pytest.mark.parametrize("name", sorted(_arrays()))
def test_numpy_in_band_identical(name, proto):
    a = _arrays()[name]
    assert_same_bytes(pickle.dumps(a, protocol=proto), skypickle.dumps(a, protocol=proto))
    np.testing.assert_array_equal(pickle.loads(skypickle.dumps(a, protocol=proto)), a)


@pytest.mark.parametrize("proto", P)
def test_numpy_object_array_and_scalars(proto):
    obj = [
        np.array([1, "a", None, [2]], dtype=object),
        np.float64(1.5),
        np.int32(-7),
        np.dtype("f4"),
        np.dtype([("x", "<i2")]),
    ]
    assert_same_bytes(pickle.dumps(obj, protocol=proto), skypickle.dumps(obj, protocol=proto))
    out = pickle.loads(skypickle.dumps(obj, protocol=proto))
    ref = pickle.loads(pickle.dumps(obj, protocol=proto))
    assert_same_structure(ref[1:], out[1:])


def test_hooks_module_uses_only_temporary_registrations():
    # Guard against a test leaking a registration into later tests.
    for cls in (objects.Point, objects.Vec, objects.WithReduce):
        assert cls not in copyreg.dispatch_table
        assert cls not in skypickle.Pickler.dispatch
    assert ("objects", "Point") not in copyreg._extension_registry
    assert isinstance(skypickle.Pickler.dispatch, collections.ChainMap)
