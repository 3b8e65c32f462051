"""skypickle on one side, cloudpickle (or a vendored copy of it) on the other (issue #11).

Workers often answer with cloudpickle, or with the copy their framework vendors
(``pyspark.cloudpickle``, ``ray.cloudpickle``, ``joblib.externals.cloudpickle``). Two things
must hold in a process that has skypickle and such a copy:

* class identity: a ``__main__`` class (enum, TypeVar) that skypickle sent and a copy sent back
  is the original class, whether the copy was imported before the dump or only by the
  ``pickle.loads`` of the answer; and the other way round (``skypickle._bridge``);
* the copy's ``register_pickle_by_value`` registry is honoured by ``skypickle.dumps`` (the
  decision reads the registries of the copies imported, and never imports one).

Every case runs in fresh interpreters: a parent script as ``__main__`` and a worker it starts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

JOBLIB_WITH_COPY = "joblib==1.5.3"  # the last joblib that vendors cloudpickle


def run_script(tmp_path: Path, body: str, pythonpath: str | None = None) -> dict:
    """Run ``body`` as ``__main__`` in a fresh interpreter; return what it reported."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(body))
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def joblib_copy(tmp_path_factory) -> str:
    """A directory holding joblib 1.5.3, whose ``joblib.externals.cloudpickle`` is a vendored
    copy (later joblib releases use cloudpickle itself)."""
    target = tmp_path_factory.mktemp("joblib153")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
        + ["--target", str(target), JOBLIB_WITH_COPY],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.skip(f"{JOBLIB_WITH_COPY} could not be installed: {proc.stderr.strip()[-300:]}")
    if not (target / "joblib" / "externals" / "cloudpickle" / "cloudpickle.py").exists():
        pytest.skip(f"{JOBLIB_WITH_COPY} has no vendored cloudpickle")
    return str(target)


# The copies under test: the package a worker imports, and the module holding the tracker.
COPIES = {
    "cloudpickle": ("cloudpickle", "cloudpickle.cloudpickle"),
    "joblib": ("joblib.externals.cloudpickle", "joblib.externals.cloudpickle.cloudpickle"),
    "ray": ("ray.cloudpickle", "ray.cloudpickle.cloudpickle"),
}


def copy_path(name: str, request) -> str | None:
    if name == "ray" and importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed")
    return request.getfixturevalue("joblib_copy") if name == "joblib" else None


# --------------------------------------------------------------------------------------------
# A. Class identity survives skypickle -> copy -> skypickle
# --------------------------------------------------------------------------------------------

ROUND_TRIP = """
import enum
import json
import pickle
import subprocess
import sys
import typing

COPY_PACKAGE, COPY_MODULE, IMPORT_FIRST = {copy_package!r}, {copy_module!r}, {import_first!r}
if IMPORT_FIRST:
    __import__(COPY_PACKAGE)
import skypickle


class Point:
    def __init__(self, x):
        self.x = x

    def moved(self, d):
        return Point(self.x + d)


class Color(enum.Enum):
    RED = 1
    GREEN = 2


T = typing.TypeVar("T")

payload = skypickle.dumps((Point, Color, T, Point(3), Color.GREEN))
copy_loaded_at_dump = COPY_MODULE in sys.modules

# The worker loads with plain pickle and answers with the copy, imported before or after.
WORKER = '''
import importlib
import pickle
import sys

if {import_first!r}:
    copy = importlib.import_module({copy_package!r})
P, C, T, p, c = pickle.loads(sys.stdin.buffer.read())
if not {import_first!r}:
    copy = importlib.import_module({copy_package!r})
sys.stdout.buffer.write(copy.dumps((P, C, T, p.moved(1), c, [P(7), C.RED])))
'''
answer = subprocess.run(
    [sys.executable, "-c", WORKER], input=payload, capture_output=True, check=True
).stdout
assert b"cloudpickle" in answer  # the copy's reconstructors, not skypickle's
point_cls, color_cls, typevar, point, color, more = pickle.loads(answer)
print("RESULT " + json.dumps({{
    "copy_loaded_at_dump": copy_loaded_at_dump,
    "class_is_original": point_cls is Point,
    "isinstance": isinstance(point, Point) and isinstance(more[0], Point),
    "moved": [point.x, more[0].x, point.moved(1).x],
    "enum_is_original": color_cls is Color,
    "members": [color is Color.GREEN, more[1] is Color.RED],
    "typevar_is_original": typevar is T,
}}))
"""


@pytest.mark.parametrize("copy", sorted(COPIES))
@pytest.mark.parametrize("import_first", [True, False], ids=["imported-before", "imported-after"])
def test_class_identity_through_a_copy(tmp_path, request, copy, import_first):
    package, module = COPIES[copy]
    body = ROUND_TRIP.format(copy_package=package, copy_module=module, import_first=import_first)
    result = run_script(tmp_path, body, copy_path(copy, request))
    assert result == {
        "copy_loaded_at_dump": import_first,
        "class_is_original": True,
        "isinstance": True,
        "moved": [4, 7, 5],
        "enum_is_original": True,
        "members": [True, True],
        "typevar_is_original": True,
    }


REVERSE = """
import json
import pickle
import subprocess
import sys

import {copy_package} as copy
import skypickle
from skypickle import _skypickle


class Point:
    def __init__(self, x):
        self.x = x

    def moved(self, d):
        return Point(self.x + d)


moved = Point.__dict__["moved"]
# The copy pickles the class first and gives it its id; skypickle takes that id.
copy_payload = copy.dumps(Point)
copy_id = sys.modules[{copy_module!r}]._DYNAMIC_CLASS_TRACKER_BY_CLASS[Point]
sky_payload = skypickle.dumps(Point)
tracked = [tracker_id for obj, tracker_id in _skypickle._tracked_classes() if obj is Point]

# In a fresh process, a class loaded from the copy's payload, then received again from
# skypickle's (or the other way round), is one class.
BOTH = '''
import pickle
import sys

first, second = pickle.loads(sys.stdin.buffer.read())
a = pickle.loads(first)
b = pickle.loads(second)
print(a is b, a.__name__)
'''
both = {{}}
for order, pair in [("copy-first", (copy_payload, sky_payload)),
                    ("skypickle-first", (sky_payload, copy_payload))]:
    out = subprocess.run([sys.executable, "-c", BOTH], input=pickle.dumps(pair),
                         capture_output=True, check=True).stdout.decode().split()
    both[order] = out

# The driver sends with the copy; the worker answers with skypickle: the original class.
WORKER = '''
import pickle
import sys

import skypickle

P, p = pickle.loads(sys.stdin.buffer.read())
sys.stdout.buffer.write(skypickle.dumps((P, p.moved(1))))
'''
answer = subprocess.run([sys.executable, "-c", WORKER], input=copy.dumps((Point, Point(1))),
                        capture_output=True, check=True).stdout
assert b"skypickle" in answer
point_cls, point = pickle.loads(answer)
print("RESULT " + json.dumps({{
    "same_id": tracked == [copy_id] and copy_id.encode() in sky_payload,
    "both": both,
    "class_is_original": point_cls is Point,
    "isinstance": isinstance(point, Point),
    "x": point.x,
    # skypickle leaves a class alone in the process that defined it.
    "namespace_untouched": Point.__dict__["moved"] is moved,
}}))
"""


@pytest.mark.parametrize("copy", sorted(COPIES))
def test_copy_first_then_skypickle(tmp_path, request, copy):
    package, module = COPIES[copy]
    body = REVERSE.format(copy_package=package, copy_module=module)
    result = run_script(tmp_path, body, copy_path(copy, request))
    assert result == {
        "same_id": True,
        "both": {"copy-first": ["True", "Point"], "skypickle-first": ["True", "Point"]},
        "class_is_original": True,
        "isinstance": True,
        "x": 2,
        "namespace_untouched": True,
    }


def test_bridge_imports_no_copy(tmp_path):
    body = """
    import json
    import pickle
    import sys

    import skypickle
    from skypickle import _bridge


    class Point:
        pass


    loaded = pickle.loads(skypickle.dumps((Point, Point())))
    skypickle.dumps(lambda: Point)
    names = [n for n in sys.modules if "cloudpickle" in n or n.split(".")[0] in
             ("pyspark", "ray", "joblib", "modal", "srsly")]
    finder = [f for f in sys.meta_path if getattr(f, "_skypickle_bridge", False)]
    print("RESULT " + json.dumps({
        "imported": names,
        "finder_first": sys.meta_path.index(finder[0]) == 0 and len(finder) == 1,
        "copies": [dict(_bridge._loaded), list(_bridge._skypickle._CLOUDPICKLE_COPIES)],
        "identity": loaded[0] is Point,
    }))
    """
    result = run_script(tmp_path, body)
    assert result == {"imported": [], "finder_first": True, "copies": [{}, []], "identity": True}


def test_copy_imported_later_gets_every_pair(tmp_path):
    body = """
    import importlib
    import json
    import sys

    import skypickle
    from skypickle import _skypickle


    class A:
        pass


    class B:
        pass


    skypickle.dumps(A)
    skypickle.dumps(B)
    ids = {obj.__name__: tracker_id for obj, tracker_id in _skypickle._tracked_classes()}
    import cloudpickle
    module = sys.modules["cloudpickle.cloudpickle"]
    by_id = module._DYNAMIC_CLASS_TRACKER_BY_ID
    by_class = module._DYNAMIC_CLASS_TRACKER_BY_CLASS
    # The module keeps its own loader (the finder's wrapper is gone once it has run), and a
    # reload, which runs it again with new trackers, gets the pairs again.
    loader_kind = type(module.__loader__).__name__
    spec_loader_kind = type(module.__spec__.loader).__name__
    importlib.reload(module)
    reloaded = module._DYNAMIC_CLASS_TRACKER_BY_ID is not by_id
    print("RESULT " + json.dumps({
        "by_id": by_id[ids["A"]] is A and by_id[ids["B"]] is B,
        "by_class": by_class[A] == ids["A"] and by_class[B] == ids["B"],
        "loaders": [loader_kind, spec_loader_kind],
        "after_reload": reloaded and module._DYNAMIC_CLASS_TRACKER_BY_ID[ids["A"]] is A,
        "ids_agree": cloudpickle.dumps(A).count(ids["A"].encode()) == 1,
        "copies": _skypickle._CLOUDPICKLE_COPIES == [module],
    }))
    """
    result = run_script(tmp_path, body)
    assert result == {
        "by_id": True,
        "by_class": True,
        "loaders": ["SourceFileLoader", "SourceFileLoader"],
        "after_reload": True,
        "ids_agree": True,
        "copies": True,
    }


# --------------------------------------------------------------------------------------------
# B. The copies' register_pickle_by_value registries are honoured
# --------------------------------------------------------------------------------------------

REGISTRY = """
import json
import pickle
import subprocess
import sys

IMPORT_FIRST = {import_first!r}
if IMPORT_FIRST:
    import {copy_package} as copy
import skypickle
if not IMPORT_FIRST:
    import {copy_package} as copy

sys.path.insert(0, "modules")
import regmod


def referenced(data):
    return b"regmod" in data and b"skypickle" not in data


before = skypickle.dumps(regmod.double)
copy.register_pickle_by_value(regmod)
listed = "regmod" in skypickle.list_registry_pickle_by_value()
payload = skypickle.dumps((regmod.double, regmod.Thing, regmod.Thing(5)))
# Where regmod cannot be imported, the payload loads: it travels by value.
LOAD = '''
import pickle
import sys

double, Thing, thing = pickle.loads(sys.stdin.buffer.read())
imported = "regmod" in sys.modules
print(double(21), Thing(2).twice(), thing.twice(), isinstance(thing, Thing), imported)
'''
loaded = subprocess.run([sys.executable, "-c", LOAD], input=payload, capture_output=True,
                        check=True, cwd="elsewhere").stdout.decode().split()
# The registry is read again at every dump: a change made to the set itself is seen.
registry = sys.modules[{copy_module!r}]._PICKLE_BY_VALUE_MODULES
registry.discard("regmod")
after_discard = skypickle.dumps(regmod.double)
registry.add("regmod")
after_add = skypickle.dumps(regmod.double)
# unregister through skypickle removes it from the copy's registry too.
skypickle.unregister_pickle_by_value(regmod)
after_unregister = skypickle.dumps(regmod.double)
print("RESULT " + json.dumps({{
    "before": referenced(before),
    "listed": listed,
    "loaded": loaded,
    "after_discard": referenced(after_discard),
    "after_add": referenced(after_add),
    "after_unregister": referenced(after_unregister),
    "copy_registry": sorted(copy.list_registry_pickle_by_value()),
}}))
"""

REGMOD = """
def double(x):
    return 2 * x


class Thing:
    def __init__(self, x):
        self.x = x

    def twice(self):
        return double(self.x)
"""


@pytest.mark.parametrize("copy", sorted(COPIES))
@pytest.mark.parametrize("import_first", [True, False], ids=["copy-first", "skypickle-first"])
def test_copy_registry_is_honoured(tmp_path, request, copy, import_first):
    package, module = COPIES[copy]
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "regmod.py").write_text(REGMOD)
    (tmp_path / "elsewhere").mkdir()
    body = REGISTRY.format(copy_package=package, copy_module=module, import_first=import_first)
    result = run_script(tmp_path, body, copy_path(copy, request))
    assert result == {
        "before": True,
        "listed": True,
        "loaded": ["42", "4", "10", "True", "False"],
        "after_discard": True,
        "after_add": False,
        "after_unregister": True,
        "copy_registry": [],
    }


def test_distributed_pickle_by_value_when_registered(tmp_path):
    """distributed's own protocol test (distributed/protocol/tests/test_pickle.py,
    ``test_pickle_by_value_when_registered``; its tests are not shipped in the wheel), run as it
    is written after ``skypickle.integrations.dask.install()``: the user registers with
    cloudpickle, distributed's ``dumps`` now goes through skypickle."""
    # Only looked for: importing distributed here would install tblib's exception pickling in
    # the test process, and the differential tests compare exceptions with pickle's bytes.
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("distributed is not installed")
    body = """
    import json
    import pickle
    import sys

    import cloudpickle
    from dask.utils import tmpdir
    from distributed.protocol.pickle import HIGHEST_PROTOCOL, dumps
    from distributed.utils_test import save_sys_modules

    import skypickle
    from skypickle.integrations import dask as sky_dask

    patched = sky_dask.install()
    with save_sys_modules():
        with tmpdir() as d:
            try:
                sys.path.insert(0, d)
                with open(f"{d}/mymodule.py", "w") as f:
                    f.write("def myfunc(x):\\n    return x + 1")
                import mymodule

                by_reference = dumps(mymodule.myfunc) == pickle.dumps(
                    mymodule.myfunc, protocol=HIGHEST_PROTOCOL
                )
                cloudpickle.register_pickle_by_value(mymodule)
                payload = dumps(mymodule.myfunc)
                by_value = len(payload) > len(pickle.dumps(mymodule.myfunc))
            finally:
                sys.path.pop(0)
    print("RESULT " + json.dumps({
        "patched": "distributed.protocol.pickle" in patched,
        "by_reference": by_reference,
        "by_value": by_value,
        "skypickle_payload": b"skypickle" in payload,
    }))
    """
    result = run_script(tmp_path, body)
    assert result == {
        "patched": True,
        "by_reference": True,
        "by_value": True,
        "skypickle_payload": True,
    }


# --------------------------------------------------------------------------------------------
# The tracker lock is never waited for by the thread that holds it
# --------------------------------------------------------------------------------------------


def test_user_code_under_the_tracker_lock_may_pickle_classes(tmp_path):
    """Tracking a class hashes it, which runs a metaclass's ``__hash__``; code there (or in a
    ``__del__`` the collector runs meanwhile) may pickle another class on the same thread. That
    used to wait for the tracker lock its own thread held, forever."""
    body = """
    import json
    import pickle

    import skypickle


    class Other:
        pass


    inner = []
    busy = []


    class Meta(type):
        # Every hash of the class pickles and loads another class (not recursively).
        def __hash__(cls):
            if not busy:
                busy.append(True)
                try:
                    inner.append(pickle.loads(skypickle.dumps(Other)))
                finally:
                    busy.pop()
            return type.__hash__(cls)


    class C(metaclass=Meta):
        pass


    loaded = pickle.loads(skypickle.dumps(C))
    print("RESULT " + json.dumps({
        "inner": bool(inner) and all(cls is Other for cls in inner),
        "outer": loaded is C,
        "again": pickle.loads(skypickle.dumps((C, Other))) == (C, Other),
    }))
    """
    assert run_script(tmp_path, body) == {"inner": True, "outer": True, "again": True}


def test_class_of_this_process_pickled_by_a_copy_first_stays_its_own(tmp_path):
    # A class defined in a namespace that is not its module's (code compiled into a dict, as
    # notebooks and benchmarks do), pickled by cloudpickle first, then by skypickle: skypickle
    # takes cloudpickle's id, and loading its own payload back must leave the class alone
    # (were it taken for a received class, its namespace would be replaced by copies).
    result = run_script(
        tmp_path,
        """
        import json, pickle
        import cloudpickle, skypickle

        ns = {"__name__": "__main__"}
        exec("class Point:\\n    def norm(self):\\n        return 1\\n", ns)
        Point = ns["Point"]
        norm = Point.__dict__["norm"]
        cloudpickle.dumps(Point)
        back = pickle.loads(skypickle.dumps(Point))
        print("RESULT " + json.dumps({
            "same_class": back is Point,
            "methods_untouched": Point.__dict__["norm"] is norm,
        }))
        """,
    )
    assert result == {"same_class": True, "methods_untouched": True}
