"""compat= : payloads for loaders that have cloudpickle and not skypickle.

Each case is defined in a child run as ``__main__`` (so it travels by value), dumped with
``compat=``, and loaded by plain ``pickle.loads`` in another child in which ``import skypickle``
fails: what is loaded there is rebuilt by cloudpickle's reconstructors alone. The wider matrix
(cloudpickle 3.0.0 and 3.1.2 and a vendored copy, each in a virtualenv of its own) is in
test_compat_wire.py.
"""

import json
import pickle
import subprocess
import sys
import textwrap

import pytest
import skypickle
from compat_helpers import BLOCK_SKYPICKLE, disallowed_globals, payload_globals

CASES = """\
import abc, dataclasses, enum, functools, sys, typing

K = 10

def outer(a):
    b = a + K
    def inner(x, y=2, *, z=3):
        "inner's doc"
        return x + b + y + z
    return inner

def pair():
    n = 0
    def inc():
        nonlocal n
        n += 1
        return n
    def get():
        return n
    return inc, get

def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)

def make_rec():
    def rec(n):
        return 0 if n == 0 else 1 + rec(n - 1)
    return rec

def gen(n):
    yield from range(n)

class Base:
    __slots__ = ()
    tag = "base"
    def hello(self):
        return "hello " + self.tag

class Slotted(Base):
    __slots__ = ("a",)
    tag = "slotted"
    def __init__(self, a=5):
        self.a = a
    def m(self):
        return self.a * 2
    @property
    def p(self):
        return self.a + 1
    @classmethod
    def c(cls):
        return cls.tag
    @staticmethod
    def s(x):
        return x + 1

class Plain:
    def __init__(self, v):
        self.v = v

class Color(enum.Enum):
    RED = 1
    GREEN = 2

class Planet(enum.Enum):
    EARTH = (1.0, 2.0)
    def __init__(self, mass, radius):
        self.mass = mass

class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1

@dataclasses.dataclass
class Point:
    x: int = 0
    y: list = dataclasses.field(default_factory=list)

class Pt(typing.NamedTuple):
    x: int
    y: int = 3

T = typing.TypeVar("T")

class Box(typing.Generic[T]):
    def __init__(self, v: T):
        self.v = v

class Abstract(abc.ABC):
    @abc.abstractmethod
    def f(self): ...

class Concrete(Abstract):
    def f(self):
        return 42

@functools.lru_cache(maxsize=7)
def cached(x):
    return x * 2

@functools.singledispatch
def show(x):
    return "object"

@show.register(int)
def _(x):
    return "int"

class Lazy:
    @functools.cached_property
    def value(self):
        return 99

OBJECTS = {
    "lambda": lambda x: x * K,
    "closure": outer(1),
    "pair": pair(),
    "fact": fact,
    "rec": make_rec(),
    "gen": gen,
    "slotted": Slotted,
    "instance": Slotted(7),
    "plain": [Plain(1), Plain(2)],
    "color": Color,
    "green": Color.GREEN,
    "planet": Planet,
    "perm": Perm.R | Perm.X,
    "point": Point(1),
    "pt": Pt(1),
    "box": Box(5),
    "concrete": Concrete,
    "cached": cached,
    "show": show,
    "lazy": Lazy,
    "views": ({1: 2}.keys(), {1: 2}.values(), {1: 2}.items()),
}
"""

EXERCISE = """\
def exercise(o):
    o.setdefault("cached", None)
    o.setdefault("show", None)
    o.setdefault("lazy", None)
    inc, get = o["pair"]
    inc()
    inc()
    Slotted = o["slotted"]
    s = Slotted()
    k, v, it = o["views"]
    return {
        "lambda": o["lambda"](2),
        "closure": o["closure"](1),
        "closure_doc": o["closure"].__doc__,
        "kwdefaults": o["closure"].__kwdefaults__,
        "shared_nonlocal": get(),
        "fact": o["fact"](5),
        "rec": o["rec"](4),
        "gen": list(o["gen"](3)),
        "slotted": [s.m(), s.p, Slotted.c(), Slotted.s(1), s.hello(), hasattr(s, "__dict__")],
        "instance": [isinstance(o["instance"], Slotted), o["instance"].m()],
        "plain": [p.v for p in o["plain"]],
        "plain_same_class": type(o["plain"][0]) is type(o["plain"][1]),
        "color": [o["color"](2).name, o["green"] is o["color"].GREEN],
        "planet_mass": getattr(o["planet"].EARTH, "mass", "no mass"),
        "perm": [o["perm"].value, bool(o["perm"] & type(o["perm"]).R)],
        "point": [o["point"].x, o["point"].y, type(o["point"])().y],
        "pt": list(o["pt"]),
        "box": o["box"].v,
        "concrete": [o["concrete"]().f(), type(o["concrete"]()).__mro__[1].__name__],
        "cached": o["cached"] and [o["cached"](4), o["cached"].cache_info().maxsize],
        "show": o["show"] and [o["show"](1), o["show"]("x")],
        "lazy": o["lazy"] and o["lazy"]().value,
        "views": [list(k), list(v), list(it)],
    }
"""


def _run(code: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _dump_in_main(tmp_path, target, protocols):
    """Run CASES as __main__ in a child; write one payload per protocol (and cloudpickle's own
    payload of the same objects at the highest protocol, for the differential check)."""
    script = CASES + textwrap.dedent(
        f"""
        import cloudpickle, skypickle
        for proto in {list(protocols)!r}:
            data = skypickle.dumps(OBJECTS, protocol=proto, compat={target!r})
            open({str(tmp_path)!r} + f"/sky{{proto}}.pkl", "wb").write(data)
        # cloudpickle cannot pickle lru_cache or singledispatch functions from __main__, nor
        # (before 3.12, for its lock) a class with a cached_property.
        omit = ("cached", "show", "lazy")
        reference = {{k: v for k, v in OBJECTS.items() if k not in omit}}
        open({str(tmp_path)!r} + "/cp.pkl", "wb").write(cloudpickle.dumps(reference))
        """
    )
    _run(script)


def _load_without_skypickle(path) -> dict:
    script = (
        BLOCK_SKYPICKLE
        + EXERCISE
        + textwrap.dedent(
            f"""
            import json, pickle, sys
            try:
                import skypickle
            except ImportError:
                pass
            else:
                raise SystemExit("skypickle is importable in the loader")
            objs = pickle.loads(open({str(path)!r}, "rb").read())
            assert not any(m == "skypickle" or m.startswith("skypickle.") for m in sys.modules)
            print(json.dumps(exercise(objs), default=repr))
            """
        )
    )
    return json.loads(_run(script).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def payloads(tmp_path_factory):
    path = tmp_path_factory.mktemp("compat")
    _dump_in_main(path, "cloudpickle", range(2, 6))
    return path


@pytest.mark.parametrize("protocol", range(2, 6))
def test_compat_payload_names_no_skypickle_global(payloads, protocol):
    data = (payloads / f"sky{protocol}.pkl").read_bytes()
    assert b"skypickle" not in data
    assert disallowed_globals(payload_globals(data), "cloudpickle.cloudpickle") == []


@pytest.mark.parametrize("protocol", range(2, 6))
def test_compat_payload_loads_with_cloudpickle_alone(payloads, protocol):
    got = _load_without_skypickle(payloads / f"sky{protocol}.pkl")
    reference = _load_without_skypickle(payloads / "cp.pkl")
    # What skypickle keeps beyond cloudpickle, in compat mode too (README: compat table):
    # shared nonlocal cells and real slots.
    assert got.pop("shared_nonlocal") == 2
    assert reference.pop("shared_nonlocal") == 0  # cloudpickle gives each closure its own cell
    assert got["slotted"][-1] is False  # real __slots__: no instance __dict__
    got["slotted"][-1] = reference["slotted"][-1]
    # lru_cache and singledispatch from __main__: cloudpickle cannot pickle them at all, so
    # its reference payload would not exist; compare with the values they must have.
    assert got.pop("cached") == [8, 7]
    reference.pop("cached")
    assert got.pop("show") == ["int", "object"]
    reference.pop("show")
    assert got.pop("lazy") == 99
    reference.pop("lazy")
    # An enum with its own __init__: members are built as cloudpickle builds them (without
    # that __init__), so both lack the attribute it sets.
    assert got == reference


def test_cloudpickle_reference_payload_is_what_we_compare_with(payloads):
    # Guard for the differential test: cloudpickle's own payload names its own module.
    data = (payloads / "cp.pkl").read_bytes()
    assert any(module == "cloudpickle.cloudpickle" for module, _ in payload_globals(data))


def test_vendored_target_names_that_module(tmp_path):
    script = CASES + textwrap.dedent(
        """
        import skypickle, sys
        data = skypickle.dumps(OBJECTS["closure"], compat="pyspark.cloudpickle.cloudpickle")
        sys.stdout.buffer.write(data)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules = {module for module, _ in payload_globals(proc.stdout)}
    assert "pyspark.cloudpickle.cloudpickle" in modules
    assert "cloudpickle.cloudpickle" not in modules


@pytest.mark.parametrize(
    "value, error",
    [("no.such.module", ValueError), ("", ValueError), ("pyspark", ValueError), (3, TypeError)],
)
def test_unknown_compat_target_is_refused_at_the_call(value, error):
    with pytest.raises(error, match="compat"):
        skypickle.dumps(lambda: 1, compat=value)
    with pytest.raises(error, match="compat"):
        skypickle.Pickler(__import__("io").BytesIO(), compat=value)


def test_compat_none_is_skypickles_own_format():
    f = lambda x: x  # noqa: E731
    assert skypickle.dumps(f, compat=None) == skypickle.dumps(f)


def test_init_subclass_with_required_keywords_is_refused_at_dump(tmp_path):
    script = textwrap.dedent(
        """
        import pickle, skypickle
        class Registry:
            def __init_subclass__(cls, *, key, **kw):
                super().__init_subclass__(**kw)
                cls.key = key
        class Child(Registry, key="child"):
            pass
        try:
            skypickle.dumps(Child, compat="cloudpickle")
        except pickle.PicklingError as exc:
            print("refused:", exc)
        else:
            print("dumped")
        # skypickle's own format carries it.
        skypickle.dumps(Child)
        """
    )
    out = _run(script)
    assert out.startswith("refused:") and "key" in out and "compat=None" in out


def test_pickler_subclass_with_reducer_override_writes_compat(tmp_path):
    # A Pickler subclass that calls the base reducer_override gets skypickle's reduce values;
    # compat mode writes them in cloudpickle's form too.
    script = CASES + textwrap.dedent(
        f"""
        import io, skypickle
        class MyPickler(skypickle.Pickler):
            def reducer_override(self, obj):
                return super().reducer_override(obj)
        buf = io.BytesIO()
        MyPickler(buf, compat="cloudpickle").dump(OBJECTS)
        open({str(tmp_path)!r} + "/sub.pkl", "wb").write(buf.getvalue())
        """
    )
    _run(script)
    data = (tmp_path / "sub.pkl").read_bytes()
    assert b"skypickle" not in data
    got = _load_without_skypickle(tmp_path / "sub.pkl")
    assert got["closure"] == 1 + 11 + 2 + 3 and got["fact"] == 120 and got["rec"] == 4
    assert got["cached"] == [8, 7] and got["show"] == ["int", "object"]


@pytest.mark.parametrize("protocol", [0, 1])
def test_compat_functions_at_low_protocols(tmp_path, protocol):
    script = textwrap.dedent(
        f"""
        import skypickle
        K = 3
        def outer(a):
            def inner(x):
                return x + a + K
            return inner
        data = skypickle.dumps([outer(1), lambda: K], protocol={protocol}, compat="cloudpickle")
        open({str(tmp_path)!r} + "/low.pkl", "wb").write(data)
        """
    )
    _run(script)
    data = (tmp_path / "low.pkl").read_bytes()
    assert b"skypickle" not in data
    out = _run(
        BLOCK_SKYPICKLE
        + f"import pickle; f, g = pickle.loads(open({str(tmp_path / 'low.pkl')!r}, 'rb').read());"
        + "print(f(1), g())"
    )
    assert out.split() == ["5", "3"]


def test_loaded_in_process_with_both_installed():
    # Where both are installed (this process), compat payloads load through cloudpickle.
    data = skypickle.dumps(len, compat="cloudpickle")
    assert pickle.loads(data) is len
