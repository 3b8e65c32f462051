"""The public API contract: names, identities, protocol and buffer_callback validation, Pickler."""

from __future__ import annotations

import collections
import copyreg
import io
import pickle

import pytest
import skypickle
from helpers import PROTOCOLS, assert_same_bytes, assert_same_error

SAMPLE = {"a": [1, 2.5, "x", b"y", (None, True, False)], "b": {1, 2}, "c": bytearray(b"z")}


# --------------------------------------------------------------------------------------------
# Names and identities
# --------------------------------------------------------------------------------------------


def test_public_names():
    for name in ("dumps", "dump", "loads", "load", "Pickler", "CloudPickler", "DEFAULT_PROTOCOL"):
        assert hasattr(skypickle, name), name
    for name in skypickle.__all__:
        assert hasattr(skypickle, name), name


def test_loads_and_load_are_the_stdlib_ones():
    assert skypickle.loads is pickle.loads
    assert skypickle.load is pickle.load


def test_default_protocol_is_highest():
    assert skypickle.DEFAULT_PROTOCOL == pickle.HIGHEST_PROTOCOL == 5


def test_version_is_a_nonempty_string():
    assert isinstance(skypickle.__version__, str)
    assert skypickle.__version__


def test_cloudpickler_alias():
    assert skypickle.CloudPickler is skypickle.Pickler
    assert isinstance(skypickle.Pickler, type)


def test_compiled_module_reexports():
    from skypickle import _skypickle

    assert skypickle.dumps is _skypickle.dumps
    assert skypickle.dump is _skypickle.dump
    assert skypickle.Pickler is _skypickle.Pickler


def test_dispatch_is_a_live_chainmap_over_copyreg():
    P = skypickle.Pickler
    assert P.dispatch is P.dispatch_table
    assert isinstance(P.dispatch, collections.ChainMap)
    assert P.dispatch.maps[-1] is copyreg.dispatch_table


# --------------------------------------------------------------------------------------------
# Protocol handling
# --------------------------------------------------------------------------------------------


def test_dumps_returns_bytes():
    assert type(skypickle.dumps(SAMPLE)) is bytes


def test_protocol_none_means_5():
    data = skypickle.dumps(SAMPLE)
    assert data.startswith(b"\x80\x05")
    assert data == skypickle.dumps(SAMPLE, protocol=None) == pickle.dumps(SAMPLE, protocol=5)


def test_positional_protocol():
    assert skypickle.dumps(SAMPLE, 2) == pickle.dumps(SAMPLE, 2)
    f = io.BytesIO()
    skypickle.dump(SAMPLE, f, 3)
    assert f.getvalue() == pickle.dumps(SAMPLE, 3)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_explicit_protocol_header(proto):
    data = skypickle.dumps(SAMPLE, protocol=proto)
    if proto >= 2:
        assert data[:2] == bytes([0x80, proto])
    else:
        assert data[:1] != b"\x80"
    assert_same_bytes(pickle.dumps(SAMPLE, protocol=proto), data)


@pytest.mark.parametrize("proto", [-1, -2, -5, -100])
def test_negative_protocol_means_highest(proto):
    data = skypickle.dumps(SAMPLE, protocol=proto)
    assert data == pickle.dumps(SAMPLE, protocol=pickle.HIGHEST_PROTOCOL)
    f = io.BytesIO()
    skypickle.dump(SAMPLE, f, protocol=proto)
    assert f.getvalue() == data
    f = io.BytesIO()
    skypickle.Pickler(f, proto).dump(SAMPLE)
    assert f.getvalue() == data


@pytest.mark.parametrize("proto", [6, 7, 1000])
def test_protocol_too_high(proto):
    with pytest.raises(ValueError, match=r"pickle protocol must be <= 5"):
        skypickle.dumps(SAMPLE, protocol=proto)
    with pytest.raises(ValueError, match=r"pickle protocol must be <= 5"):
        skypickle.dump(SAMPLE, io.BytesIO(), protocol=proto)
    with pytest.raises(ValueError, match=r"pickle protocol must be <= 5"):
        skypickle.Pickler(io.BytesIO(), proto)
    # same as the stdlib
    assert_same_error(
        lambda: pickle.dumps(SAMPLE, protocol=proto),
        lambda: skypickle.dumps(SAMPLE, protocol=proto),
    )


def test_protocol_wrong_type():
    with pytest.raises(TypeError):
        skypickle.dumps(SAMPLE, protocol="5")


# --------------------------------------------------------------------------------------------
# buffer_callback validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", range(5))
def test_buffer_callback_needs_protocol_5(proto):
    cb = [].append
    msg = r"buffer_callback needs protocol >= 5"
    with pytest.raises(ValueError, match=msg):
        skypickle.dumps(SAMPLE, protocol=proto, buffer_callback=cb)
    with pytest.raises(ValueError, match=msg):
        skypickle.dump(SAMPLE, io.BytesIO(), protocol=proto, buffer_callback=cb)
    with pytest.raises(ValueError, match=msg):
        skypickle.Pickler(io.BytesIO(), proto, buffer_callback=cb)
    assert_same_error(
        lambda: pickle.dumps(SAMPLE, protocol=proto, buffer_callback=cb),
        lambda: skypickle.dumps(SAMPLE, protocol=proto, buffer_callback=cb),
    )


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_buffer_callback_none_is_fine_at_any_protocol(proto):
    assert skypickle.dumps(SAMPLE, protocol=proto, buffer_callback=None) == pickle.dumps(
        SAMPLE, protocol=proto
    )


def test_buffer_callback_with_default_and_negative_protocol():
    buffers = []
    data = skypickle.dumps(pickle.PickleBuffer(b"abc"), buffer_callback=buffers.append)
    assert len(buffers) == 1
    assert bytes(pickle.loads(data, buffers=buffers)) == b"abc"
    buffers = []
    skypickle.dumps(pickle.PickleBuffer(b"abc"), protocol=-1, buffer_callback=buffers.append)
    assert len(buffers) == 1


# --------------------------------------------------------------------------------------------
# Pickler
# --------------------------------------------------------------------------------------------


def test_pickler_file_without_write():
    assert_same_error(lambda: pickle.Pickler(object(), 5), lambda: skypickle.Pickler(object()))
    with pytest.raises(TypeError):
        skypickle.dump(SAMPLE, object())


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_pickler_dump_writes_to_file(proto):
    f = io.BytesIO()
    p = skypickle.Pickler(f, proto)
    assert p.dump(SAMPLE) is None
    assert_same_bytes(pickle.dumps(SAMPLE, protocol=proto), f.getvalue())


def test_pickler_keyword_arguments():
    f = io.BytesIO()
    skypickle.Pickler(f, protocol=2).dump(SAMPLE)
    assert f.getvalue() == pickle.dumps(SAMPLE, protocol=2)
    f = io.BytesIO()
    skypickle.Pickler(file=f, protocol=None, buffer_callback=None).dump(SAMPLE)
    assert f.getvalue() == pickle.dumps(SAMPLE, protocol=5)


def test_pickler_default_protocol_is_5():
    f = io.BytesIO()
    skypickle.Pickler(f).dump(SAMPLE)
    assert f.getvalue() == pickle.dumps(SAMPLE, protocol=5)


def _dump_twice(pickler_cls, proto, obj, clear_between=False):
    f = io.BytesIO()
    p = pickler_cls(f, proto)
    p.dump(obj)
    first = f.tell()
    if clear_between:
        p.clear_memo()
    p.dump(obj)
    return f.getvalue(), first


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_memo_persists_across_dumps(proto):
    shared = ["shared", 1, 2]
    obj = [shared, {"k": shared}]
    expected, exp_first = _dump_twice(pickle.Pickler, proto, obj)
    got, got_first = _dump_twice(skypickle.Pickler, proto, obj)
    assert_same_bytes(expected, got)
    assert got_first == exp_first
    second = got[got_first:]
    # The second dump of the same object is just a memo fetch (plus PROTO/STOP/framing).
    assert len(second) < 16, second
    # one Unpickler: its memo persists across load() calls like the Pickler's
    u = pickle.Unpickler(io.BytesIO(got))
    a = u.load()
    b = u.load()
    assert a is b
    assert a == obj


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_clear_memo(proto):
    obj = ["x" * 10, [1, 2, 3]]
    expected, _ = _dump_twice(pickle.Pickler, proto, obj, clear_between=True)
    got, first = _dump_twice(skypickle.Pickler, proto, obj, clear_between=True)
    assert_same_bytes(expected, got)
    assert got[:first] == got[first:]
    f = io.BytesIO(got)
    assert pickle.load(f) == pickle.load(f) == obj


def test_memo_survives_between_different_objects():
    shared = {"s": 1}
    f = io.BytesIO()
    p = skypickle.Pickler(f, 5)
    p.dump([shared])
    p.dump((shared, shared))
    fe = io.BytesIO()
    pe = pickle.Pickler(fe, 5)
    pe.dump([shared])
    pe.dump((shared, shared))
    assert_same_bytes(fe.getvalue(), f.getvalue())
    u = pickle.Unpickler(io.BytesIO(f.getvalue()))
    a = u.load()
    b = u.load()
    assert b[0] is b[1] is a[0]


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_dump_equals_dumps(proto, tmp_path):
    f = io.BytesIO()
    assert skypickle.dump(SAMPLE, f, protocol=proto) is None
    assert f.getvalue() == skypickle.dumps(SAMPLE, protocol=proto)
    path = tmp_path / "out.pkl"
    with open(path, "wb") as fh:
        skypickle.dump(SAMPLE, fh, protocol=proto)
    assert path.read_bytes() == skypickle.dumps(SAMPLE, protocol=proto)
    with open(path, "rb") as fh:
        assert skypickle.load(fh) == SAMPLE


def test_dump_to_file_appends_at_current_position():
    f = io.BytesIO()
    f.write(b"HEADER")
    skypickle.dump(1, f)
    assert f.getvalue() == b"HEADER" + pickle.dumps(1, protocol=5)


def test_pickler_is_subclassable():
    class Sub(skypickle.Pickler):
        def __init__(self, file, protocol=None):
            super().__init__(file, protocol)
            self.extra = "attr"

    f = io.BytesIO()
    s = Sub(f, 4)
    assert isinstance(s, skypickle.Pickler)
    assert s.extra == "attr"
    s.dump(SAMPLE)
    assert f.getvalue() == pickle.dumps(SAMPLE, protocol=4)


def test_pickler_several_objects_in_one_stream():
    f = io.BytesIO()
    p = skypickle.Pickler(f, 5)
    for i in range(5):
        p.dump({"i": i})
    u = pickle.Unpickler(io.BytesIO(f.getvalue()))
    assert [u.load() for _ in range(5)] == [{"i": i} for i in range(5)]


def test_write_error_propagates():
    class Boom(Exception):
        pass

    class BadFile:
        def write(self, data):
            raise Boom("disk full")

    with pytest.raises(Boom, match="disk full"):
        skypickle.dump(SAMPLE, BadFile())
    with pytest.raises(Boom):
        skypickle.Pickler(BadFile()).dump(SAMPLE)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_reentrant_dumps_from_a_reducer(proto):
    import objects

    got = skypickle.dumps([objects.NestedSky(), "x", objects.NestedSky()], protocol=proto)
    expected = pickle.dumps([objects.NestedStd(), "x", objects.NestedStd()], protocol=proto)
    assert_same_bytes(expected, got)
    out = pickle.loads(got)
    assert out[0][:2] == out[2][:2] == [1, "nested"]
    assert out[0][2].value == 2


def test_threads_dumping_concurrently():
    import threading

    import objects

    data = [{"k": [objects.Plain(i), str(i) * 50, (i, b"x" * i)]} for i in range(200)]
    expected = [pickle.dumps(d, protocol=5) for d in data]
    shared = {"shared": data}  # every thread also pickles the same big graph
    shared_expected = pickle.dumps(shared, protocol=5)
    mismatches = []

    def work():
        for _ in range(5):
            for d, e in zip(data, expected):
                if skypickle.dumps(d, protocol=5) != e:
                    mismatches.append(d)
            if skypickle.dumps(shared, protocol=5) != shared_expected:
                mismatches.append("shared")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not mismatches
