"""Shared assertions: byte identity with the stdlib pickler, structural comparison, error diffs."""

from __future__ import annotations

import collections
import datetime
import decimal
import difflib
import enum
import fractions
import functools
import io
import math
import pickle
import pickletools
import types
import uuid

import skypickle

PROTOCOLS = tuple(range(pickle.HIGHEST_PROTOCOL + 1))

RECURSION_MESSAGE = "Could not pickle object as excessively deep recursion required."

_UNTRACKED = (type(None), bool, int, float)


def dis(data: bytes) -> str:
    """Disassemble ``data``; ``pickletools.dis`` raises on a malformed stream."""
    out = io.StringIO()
    pickletools.dis(data, out=out)
    return out.getvalue()


def _dis_or_error(data: bytes) -> str:
    try:
        return dis(data)
    except Exception as exc:  # pragma: no cover - only used to build failure messages
        return f"<pickletools.dis failed: {exc!r}>"


def explain_mismatch(expected: bytes, got: bytes, limit: int = 60) -> str:
    """A short unified diff of the two disassemblies, for failure messages."""
    a = _dis_or_error(expected).splitlines()
    b = _dis_or_error(got).splitlines()
    diff = list(difflib.unified_diff(a, b, "pickle", "skypickle", lineterm="", n=2))
    if len(diff) > limit:
        diff = diff[:limit] + [f"... ({len(diff) - limit} more diff lines)"]
    return "\n".join(diff)


def assert_same_bytes(expected: bytes, got: bytes, what: str = "") -> None:
    if expected != got:
        raise AssertionError(
            f"skypickle output differs from pickle {what}\n"
            f"expected {len(expected)} bytes: {expected[:200]!r}\n"
            f"got      {len(got)} bytes: {got[:200]!r}\n" + explain_mismatch(expected, got)
        )


def sky_dump_bytes(obj, protocol=None, **kw) -> bytes:
    """What ``skypickle.dump`` writes to a BytesIO."""
    f = io.BytesIO()
    skypickle.dump(obj, f, protocol=protocol, **kw)
    return f.getvalue()


def check_identical(obj, protocol, *, check_dump=True, check_structure=True) -> bytes:
    """The strongest oracle: ``skypickle.dumps(obj, p) == pickle.dumps(obj, p)``.

    Also: ``dump`` writes the same bytes, pickletools accepts the stream, and the loaded
    objects agree structurally (values, types, sharing, cycles).
    """
    # A reducer may change the object the first time it runs: tblib's for exceptions, which
    # dask and distributed put in copyreg when imported (a test importing dask in this process
    # does), creates the exception's __dict__, so the reduce value gains a state. Both
    # picklers must see one object state: pickle runs once before the compared dumps.
    pickle.dumps(obj, protocol=protocol)
    expected = pickle.dumps(obj, protocol=protocol)
    got = skypickle.dumps(obj, protocol=protocol)
    assert isinstance(got, bytes)
    assert_same_bytes(expected, got, f"(protocol {protocol})")
    if check_dump:
        dumped = sky_dump_bytes(obj, protocol)
        assert_same_bytes(got, dumped, f"dump vs dumps (protocol {protocol})")
    dis(got)
    if check_structure:
        assert_same_structure(pickle.loads(expected), pickle.loads(got))
    return got


def check_same_outcome(obj, protocol, **kw):
    """Byte identity where the stdlib can pickle ``obj``; otherwise the same error.

    (Some generated graphs are legitimately unpicklable at some protocols, e.g. ``__slots__``
    without ``__getstate__`` below protocol 2.)
    """
    try:
        pickle.dumps(obj, protocol=protocol)
    except RecursionError:
        # e.g. a cycle through a reduce's arguments: infinite recursion. skypickle converts
        # it (like cloudpickle does).
        try:
            skypickle.dumps(obj, protocol=protocol)
        except pickle.PicklingError as exc:
            assert str(exc) == RECURSION_MESSAGE, str(exc)
            assert isinstance(exc.__cause__, RecursionError)
            return None
        raise AssertionError("skypickle did not raise where pickle hit a RecursionError") from None
    except Exception:
        assert_same_error(
            lambda: pickle.dumps(obj, protocol=protocol),
            lambda: skypickle.dumps(obj, protocol=protocol),
        )
        return None
    return check_identical(obj, protocol, **kw)


def check_equivalent(obj, protocol) -> bytes:
    """The fallback oracle when byte identity cannot hold (e.g. nondeterministic reducers)."""
    expected = pickle.dumps(obj, protocol=protocol)
    got = skypickle.dumps(obj, protocol=protocol)
    dis(got)
    assert_same_structure(pickle.loads(expected), pickle.loads(got))
    return got


# --------------------------------------------------------------------------------------------
# Structural comparison
# --------------------------------------------------------------------------------------------


class StructureMismatch(AssertionError):
    pass


def _same_float(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def _sort_key(x):
    """A deterministic key for matching up set elements of two different graphs."""
    t = type(x)
    name = f"{t.__module__}.{t.__qualname__}"
    if x is None or t in (bool, int, str, bytes):
        return (name, repr(x))
    if t is float:
        return (name, "nan" if math.isnan(x) else repr(x))
    if t is complex:
        return (name, repr(_sort_key(x.real)), repr(_sort_key(x.imag)))
    if t is tuple:
        return (name, tuple(_sort_key(i) for i in x))
    if t is frozenset:
        return (name, tuple(sorted((_sort_key(i) for i in x), key=repr)))
    return (name,)


def _sorted_for_match(s):
    items = list(s)
    return sorted(items, key=lambda v: repr(_sort_key(v)))


def _instance_state_children(a, b, path):
    """Children to compare for generic instances: __dict__ and slots."""
    out = []
    da = getattr(a, "__dict__", None)
    db = getattr(b, "__dict__", None)
    if (da is None) != (db is None):
        raise StructureMismatch(f"{path}: __dict__ presence differs")
    if da is not None and not isinstance(a, type):
        out.append((dict(da), dict(db), f"{path}.__dict__"))
    for klass in type(a).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"
            sentinel = object()
            va = getattr(a, name, sentinel)
            vb = getattr(b, name, sentinel)
            if (va is sentinel) != (vb is sentinel):
                raise StructureMismatch(f"{path}.{name}: slot set in one graph only")
            if va is not sentinel:
                out.append((va, vb, f"{path}.{name}"))
    return out


def assert_same_structure(a, b) -> None:
    """Walk two object graphs in parallel.

    Values and exact types must agree, and the identity structure must be the same: whenever
    an object is reached again in one graph (sharing, cycles), its counterpart must be reached
    again at the same place in the other graph, and vice versa. Iterative, so deep graphs are
    fine.
    """
    a_to_b: dict[int, int] = {}
    b_to_a: dict[int, int] = {}
    keep_alive = []
    stack = [(a, b, "obj")]
    while stack:
        x, y, path = stack.pop()
        tx, ty = type(x), type(y)
        if tx is not ty:
            raise StructureMismatch(f"{path}: type {tx!r} != {ty!r}")
        if tx in _UNTRACKED:
            if tx is float:
                ok = _same_float(x, y)
            else:
                ok = x == y
            if not ok:
                raise StructureMismatch(f"{path}: {x!r} != {y!r}")
            continue
        # identity / sharing
        ix, iy = id(x), id(y)
        seen_x = a_to_b.get(ix)
        seen_y = b_to_a.get(iy)
        if seen_x is not None or seen_y is not None:
            if seen_x != iy or seen_y != ix:
                raise StructureMismatch(
                    f"{path}: sharing structure differs ({x!r:.80} / {y!r:.80})"
                )
            continue
        a_to_b[ix] = iy
        b_to_a[iy] = ix
        keep_alive.append((x, y))
        stack.extend(_children(x, y, path))


def _children(x, y, path):
    t = type(x)
    kids = []
    if isinstance(x, (type, types.FunctionType, types.BuiltinFunctionType, enum.Enum)) or (
        isinstance(x, types.ModuleType)
    ):
        if x is not y:
            raise StructureMismatch(f"{path}: {x!r} is not {y!r}")
        return kids
    if t is complex:
        if not (_same_float(x.real, y.real) and _same_float(x.imag, y.imag)):
            raise StructureMismatch(f"{path}: {x!r} != {y!r}")
        return kids
    if isinstance(x, str):
        if str.__str__(x) != str.__str__(y):
            raise StructureMismatch(f"{path}: {x!r:.100} != {y!r:.100}")
    elif isinstance(x, (bytes, bytearray)):
        if bytes(x) != bytes(y):
            raise StructureMismatch(f"{path}: {x!r:.100} != {y!r:.100}")
    elif isinstance(x, float):
        if not _same_float(float(x), float(y)):
            raise StructureMismatch(f"{path}: {x!r} != {y!r}")
    elif isinstance(x, int):
        if int(x) != int(y):
            raise StructureMismatch(f"{path}: {x!r} != {y!r}")
    elif isinstance(x, memoryview):
        if x.readonly != y.readonly or x.tobytes() != y.tobytes():
            raise StructureMismatch(f"{path}: memoryview differs")
    elif isinstance(x, pickle.PickleBuffer):
        mx, my = x.raw(), y.raw()
        if mx.readonly != my.readonly or mx.tobytes() != my.tobytes():
            raise StructureMismatch(f"{path}: PickleBuffer differs")
    elif isinstance(x, collections.deque):
        if x.maxlen != y.maxlen or len(x) != len(y):
            raise StructureMismatch(f"{path}: deque differs")
        kids.extend((i, j, f"{path}[{n}]") for n, (i, j) in enumerate(zip(x, y)))
    elif isinstance(x, (list, tuple)):
        if len(x) != len(y):
            raise StructureMismatch(f"{path}: len {len(x)} != {len(y)}")
        kids.extend((i, j, f"{path}[{n}]") for n, (i, j) in enumerate(zip(x, y)))
    elif isinstance(x, dict):
        if len(x) != len(y):
            raise StructureMismatch(f"{path}: dict len {len(x)} != {len(y)}")
        if isinstance(x, collections.defaultdict):
            kids.append((x.default_factory, y.default_factory, f"{path}.default_factory"))
        for n, ((ka, va), (kb, vb)) in enumerate(zip(x.items(), y.items())):
            kids.append((ka, kb, f"{path}.keys()[{n}]"))
            kids.append((va, vb, f"{path}[{ka!r:.40}]"))
    elif isinstance(x, (set, frozenset)):
        if len(x) != len(y):
            raise StructureMismatch(f"{path}: set len {len(x)} != {len(y)}")
        sx, sy = _sorted_for_match(x), _sorted_for_match(y)
        kids.extend((i, j, f"{path}{{{n}}}") for n, (i, j) in enumerate(zip(sx, sy)))
    elif isinstance(x, functools.partial):
        kids.append((x.func, y.func, f"{path}.func"))
        kids.append((x.args, y.args, f"{path}.args"))
        kids.append((x.keywords, y.keywords, f"{path}.keywords"))
    elif isinstance(
        x,
        (
            datetime.date,
            datetime.time,
            datetime.timedelta,
            datetime.tzinfo,
            decimal.Decimal,
            fractions.Fraction,
            uuid.UUID,
            range,
            slice,
        ),
    ):
        if isinstance(x, decimal.Decimal) and x.is_nan():
            ok = y.is_nan() and str(x) == str(y)
        else:
            ok = x == y and repr(x) == repr(y)
        if not ok:
            raise StructureMismatch(f"{path}: {x!r} != {y!r}")
        return kids
    elif t.__module__ == "numpy" and t.__name__ == "ndarray":
        import numpy as np

        if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
            raise StructureMismatch(f"{path}: arrays differ")
        return kids
    elif x is Ellipsis or x is NotImplemented:
        if x is not y:
            raise StructureMismatch(f"{path}: {x!r} is not {y!r}")
        return kids
    elif getattr(x, "__dict__", None) is None and not _has_slots(t) and t.__module__ != "objects":
        # Unknown builtin-ish type without state: fall back to equality, or for types without
        # a value equality (e.g. operator.attrgetter), to equal stdlib pickles.
        if x != y and pickle.dumps(x, protocol=5) != pickle.dumps(y, protocol=5):
            raise StructureMismatch(f"{path}: {x!r} != {y!r}")
        return kids
    kids.extend(_instance_state_children(x, y, path))
    return kids


def _has_slots(t) -> bool:
    return any("__slots__" in k.__dict__ for k in t.__mro__)


# --------------------------------------------------------------------------------------------
# Error differential
# --------------------------------------------------------------------------------------------


def expected_error(fn):
    """Run ``fn`` (the stdlib reference) and return the exception it raises."""
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - we compare whatever it is
        return exc
    raise AssertionError("the stdlib reference did not raise")


def assert_same_error(std_fn, sky_fn, *, check_message=True):
    """``sky_fn`` must raise the same exception type (and message) as ``std_fn``."""
    want = expected_error(std_fn)
    try:
        sky_fn()
    except BaseException as got:  # noqa: BLE001
        assert type(got) is type(want), (
            f"expected {type(want).__name__}({want}), got {type(got).__name__}({got})"
        )
        if check_message:
            assert str(got) == str(want), f"message differs: {str(got)!r} != {str(want)!r}"
        return got
    raise AssertionError(f"skypickle did not raise; pickle raised {type(want).__name__}({want})")


def notes_of(exc) -> list:
    return list(getattr(exc, "__notes__", None) or [])


def assert_healthy():
    """After an error, the pickler must still work."""
    obj = {"after": [1, 2.5, "x", b"y", (None, True)]}
    for p in PROTOCOLS:
        assert skypickle.dumps(obj, protocol=p) == pickle.dumps(obj, protocol=p)


def reconstructors(data: bytes) -> collections.Counter:
    """How many times ``data`` calls each of skypickle's reconstructors, read from the opcodes
    without loading: by name (``_make_function``), or through ``_reconstruct(op, ...)``, whose op
    numbers index ``skypickle._skypickle._WIRE_NAMES``."""
    from skypickle import _skypickle

    names = _skypickle._WIRE_NAMES
    calls: collections.Counter = collections.Counter()
    strings: list = []  # the last strings pushed (STACK_GLOBAL's module and name)
    reconstruct_memo: set = set()  # memo indices holding _reconstruct
    memo_count = 0
    top_is_reconstruct = False
    after_mark = False
    for opcode, arg, _pos in pickletools.genops(data):
        name = opcode.name
        if name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            index = memo_count if name == "MEMOIZE" else arg
            memo_count += 1 if name == "MEMOIZE" else 0
            if top_is_reconstruct:
                reconstruct_memo.add(index)
            continue
        pushed_reconstruct = False
        if name in ("GLOBAL", "INST"):
            module, _, attr = arg.partition(" ")
            if module == "skypickle._skypickle":
                calls[attr] += attr != "_reconstruct" and attr in names
                pushed_reconstruct = attr == "_reconstruct"
        elif name == "STACK_GLOBAL" and len(strings) >= 2:
            module, attr = strings[-2:]
            if module == "skypickle._skypickle":
                calls[attr] += attr != "_reconstruct" and attr in names
                pushed_reconstruct = attr == "_reconstruct"
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushed_reconstruct = int(arg) in reconstruct_memo
        elif after_mark and name in ("BININT1", "BININT", "BININT2", "INT"):
            calls[names[int(arg)]] += 1
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            strings.append(arg)
        after_mark = top_is_reconstruct and name == "MARK"
        top_is_reconstruct = pushed_reconstruct
    return calls


def by_value_functions(data: bytes) -> int:
    """How many functions ``data`` rebuilds by value (without loading it)."""
    calls = reconstructors(data)
    return calls["_new_function"] + calls["_make_function"]


def lift_address_space_limit():
    """For a child process (``preexec_fn``): undo the test run's soft address-space cap, for
    engines that map large regions (Ray's object store)."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def java_home() -> str | None:
    """JAVA_HOME for Spark's JVM: the environment's, else where ``java`` on PATH really is."""
    import os
    import pathlib
    import shutil

    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    # /usr/bin/java is a chain of links to <JAVA_HOME>/bin/java.
    return str(pathlib.Path(java).resolve().parent.parent) if java else None


def spark_jobs_java_home() -> str:
    """For a test that runs Spark jobs: JAVA_HOME, or skip the test when they cannot or should
    not run here. A missing prerequisite (PySpark, Java) fails the test instead when
    ``SKYPICKLE_REQUIRE_SPARK=1`` (.ci/run), so CI cannot pass by skipping them;
    ``SKYPICKLE_SPARK_JOBS=0`` (scripts/test-matrix.sh) is a deliberate skip either way."""
    import importlib.util
    import os

    import pytest

    if os.environ.get("SKYPICKLE_SPARK_JOBS") == "0":
        pytest.skip(
            "Spark jobs run on the default interpreter only (make py-test); "
            "SKYPICKLE_SPARK_ALL=1 runs them on every CPython of the matrix"
        )
    required = os.environ.get("SKYPICKLE_REQUIRE_SPARK") == "1"

    def missing(reason: str):
        if required:
            pytest.fail(f"{reason} (SKYPICKLE_REQUIRE_SPARK=1)", pytrace=False)
        pytest.skip(reason)

    if importlib.util.find_spec("pyspark") is None:
        missing("pyspark is not installed")
    home = java_home()
    if home is None:
        missing("no Java runtime: set JAVA_HOME or put java on PATH")
    return home
