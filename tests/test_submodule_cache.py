"""The per-thread index of imported submodules (``src/by_value/submodules.rs``).

A by-value function carries the submodules its code reaches by attribute through a package it
uses (``pkg.sub.VALUE`` with only ``pkg`` global), so that loading it imports them. skypickle
indexes each package's submodules once per state of ``sys.modules`` instead of scanning
``sys.modules`` at every dump. These tests change ``sys.modules`` between dumps (imports,
deletions, replacements, and a deletion plus an addition that leave its length unchanged) and
check that every payload carries exactly the submodules ``sys.modules`` holds at that dump, in
both formats, from many threads, and that loading one in a fresh interpreter imports them.
"""

from __future__ import annotations

import gc
import io
import itertools
import pickletools
import sys
import threading
import time
import types
import weakref

import pytest
import skypickle
from byvalue_helpers import make_namespace, pack, run_child

_packages = itertools.count()


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package on disk, importable here and in the child (which runs in ``tmp_path``), with
    submodules ``sub``, ``other`` and ``alt`` that nothing imports by itself. Yields its name;
    it and its submodules leave ``sys.modules`` afterwards."""
    name = f"subcache_pkg_{next(_packages)}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("BASE = 1\n")
    for sub, value in (("sub", 41), ("other", 7), ("alt", 99)):
        (root / f"{sub}.py").write_text(f"VALUE = {value}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def functions(pkg: str) -> dict:
    """By-value functions that reach submodules of ``pkg`` by attribute (the package global or
    in a closure cell)."""
    return make_namespace(
        f"""
        import {pkg}

        def use_sub():
            return {pkg}.sub.VALUE

        def use_other():
            return {pkg}.other.VALUE

        def use_both():
            return {pkg}.sub.VALUE + {pkg}.other.VALUE

        def use_flip():
            return {pkg}.flip.VALUE

        def make_closure():
            p = {pkg}

            def inner():
                return p.sub.VALUE

            return inner
        """
    )


def carried(func) -> list:
    """The submodules the reduce value of ``func`` (``Pickler.reducer_override``) carries."""
    reduce_value = skypickle.Pickler(io.BytesIO()).reducer_override(func)
    attrs = reduce_value[2][4]
    return list((attrs or {}).get("_skypickle_submodules", []))


def strings(payload: bytes) -> set:
    """Every str the payload pushes (module names among them), read without loading it."""
    return {
        arg
        for op, arg, _ in pickletools.genops(payload)
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE")
    }


def named(payload: bytes, pkg: str) -> set:
    """The names below ``pkg`` that ``payload`` holds."""
    return {s for s in strings(payload) if s.startswith(pkg + ".")}


def expected_submodules(func, deps) -> list:
    """The rule, stated plainly in Python: for each package among ``deps`` in order, the
    entries of ``sys.modules`` below it (in its order) whose every dotted part is one of the
    code's names, None entries left out."""
    names = set(func.__code__.co_names)
    out = []
    for dep in deps:
        if not isinstance(dep, types.ModuleType) or not getattr(dep, "__package__", None):
            continue
        prefix = dep.__name__ + "."
        for key, module in list(sys.modules.items()):
            if not isinstance(key, str) or not key.startswith(prefix) or module is None:
                continue
            if set(key[len(prefix) :].split(".")) <= names:
                out.append(module)
    return out


BOTH_FORMATS = [None, "cloudpickle"]


@pytest.mark.parametrize("compat", BOTH_FORMATS)
def test_submodule_imported_between_dumps_is_carried(package, compat, run_in_subprocess):
    """A submodule imported after a first dump is carried by the next one, and loading that
    payload in a fresh interpreter imports it."""
    ns = functions(package)
    use_sub = ns["use_sub"]
    before = skypickle.dumps(use_sub, compat=compat)
    assert named(before, package) == set()
    __import__(f"{package}.sub")
    after = skypickle.dumps(use_sub, compat=compat)
    assert named(after, package) == {f"{package}.sub"}
    assert carried(use_sub) == [sys.modules[f"{package}.sub"]]

    got = run_child(
        run_in_subprocess,
        f"""
        payloads = pickle.loads(PAYLOAD)
        first = pickle.loads(payloads["before"])
        imported_by_first = "{package}.sub" in sys.modules
        first_call = outcome(first)
        second = pickle.loads(payloads["after"])
        result = (imported_by_first, first_call[0], outcome(second))
        """,
        payload=pack(before=before, after=after),
    )
    assert got == (False, "raise", ("ok", 41))


@pytest.mark.parametrize("compat", BOTH_FORMATS)
def test_submodule_removed_from_sys_modules_is_not_sent(package, compat, run_in_subprocess):
    """Once deleted from ``sys.modules``, a submodule is no longer carried, even though the
    package still holds it as an attribute (so the function still works here)."""
    __import__(f"{package}.sub")
    use_sub = functions(package)["use_sub"]
    assert named(skypickle.dumps(use_sub, compat=compat), package) == {f"{package}.sub"}
    del sys.modules[f"{package}.sub"]
    assert use_sub() == 41
    payload = skypickle.dumps(use_sub, compat=compat)
    assert named(payload, package) == set()
    assert carried(use_sub) == []
    got = run_child(
        run_in_subprocess,
        f"""
        f = pickle.loads(PAYLOAD)
        result = ("{package}.sub" in sys.modules, outcome(f)[0])
        """,
        payload=payload,
    )
    assert got == (False, "raise")


def test_removal_and_addition_of_the_same_length(package):
    """One submodule removed and another added between two dumps: ``sys.modules`` keeps its
    length, and the next dump still sees both changes."""
    __import__(f"{package}.sub")
    ns = functions(package)
    use_both = ns["use_both"]
    assert carried(use_both) == [sys.modules[f"{package}.sub"]]
    size = len(sys.modules)
    other = types.ModuleType(f"{package}.other")
    del sys.modules[f"{package}.sub"]
    sys.modules[f"{package}.other"] = other
    assert len(sys.modules) == size
    assert carried(use_both) == [other]
    assert named(skypickle.dumps(use_both), package) == {f"{package}.other"}


@pytest.mark.parametrize("compat", BOTH_FORMATS)
def test_replaced_module_object_is_picked_up(package, compat, run_in_subprocess):
    """``sys.modules[name] = another module``: the next dump carries the new object (here one
    whose ``__name__`` is ``pkg.alt``, which the loader then imports)."""
    sub = __import__(f"{package}.sub", fromlist=["VALUE"])
    alt = __import__(f"{package}.alt", fromlist=["VALUE"])
    use_sub = functions(package)["use_sub"]
    assert carried(use_sub) == [sub]
    size = len(sys.modules)
    # Still importable under its own name, so it travels by reference.
    sys.modules[f"{package}.sub"] = alt
    assert len(sys.modules) == size
    assert carried(use_sub) == [alt]
    payload = skypickle.dumps(use_sub, compat=compat)
    assert named(payload, package) == {f"{package}.alt"}
    got = run_child(
        run_in_subprocess,
        f"""
        f = pickle.loads(PAYLOAD)
        result = sorted(m for m in sys.modules if m.startswith("{package}."))
        """,
        payload=payload,
    )
    assert got == [f"{package}.alt"]


def test_none_entry_and_closure_cell(package):
    """A None entry in ``sys.modules`` (an import blocked on purpose) is not a submodule; a
    package held in a closure cell is searched like a global one."""
    ns = functions(package)
    inner = ns["make_closure"]()
    sys.modules[f"{package}.sub"] = None
    assert carried(inner) == []
    del sys.modules[f"{package}.sub"]
    sub = __import__(f"{package}.sub", fromlist=["VALUE"])
    assert carried(inner) == [sub]


def test_matches_the_rule_for_big_packages(package):
    """For functions over numpy, pandas (when installed), xml and the test package, in several
    shapes, the carried submodules are exactly those the rule gives, in its order, and stay so
    across a change to ``sys.modules``."""
    np = pytest.importorskip("numpy")
    __import__(f"{package}.sub")
    __import__(f"{package}.other")
    sources = {
        "np": "import numpy as np\nf = lambda v: np.linalg.norm(np.fft.fft(v)).real",
        "np_deep": "import numpy as np\nf = lambda: np.lib.stride_tricks.as_strided",
        "np_none": "import numpy as np\nf = lambda v: np.asarray(v)",
        "xml": "import xml.etree.ElementTree\nf = lambda: xml.etree.ElementTree.Comment",
        "two": f"import numpy as np, {package}\nf = lambda: (np.linalg, {package}.other)",
        "same_twice": f"import {package}\nq = {package}\nf = lambda: ({package}.sub, q.sub)",
    }
    try:
        import pandas  # noqa: F401
    except ImportError:
        pass
    else:
        sources["pd"] = "import pandas as pd\nf = lambda: pd.api.types.is_float_dtype"
        sources["pd_two"] = "import pandas as pd\nf = lambda: (pd.core.frame, pd.io.formats)"
    for round_ in range(2):
        for label, source in sources.items():
            ns = make_namespace(source)
            func = ns["f"]
            deps = [ns[n] for n in func.__code__.co_names if n in ns]
            want = expected_submodules(func, deps)
            got = carried(func)
            assert [m.__name__ for m in got] == [m.__name__ for m in want], (round_, label)
            assert all(a is b for a, b in zip(got, want)), (round_, label)
            if label == "np":
                assert "numpy.linalg" in [m.__name__ for m in got]
        # A change to sys.modules between the rounds (the index is read again).
        sys.modules[f"{package}.extra"] = types.ModuleType(f"{package}.extra")
        del sys.modules[f"{package}.extra"]
    assert np is sys.modules["numpy"]


def test_repeated_dumps_give_identical_bytes(package):
    """The same function dumps to the same bytes whether the index is cold, warm, or read
    again after ``sys.modules`` changed and came back to the same contents, in both formats."""
    np = pytest.importorskip("numpy")
    __import__(f"{package}.sub")
    ns = make_namespace(
        f"""
        import numpy as np
        import {package}

        def score(v):
            return float(np.linalg.norm(v)) + {package}.sub.VALUE
        """
    )
    score = ns["score"]
    for compat in BOTH_FORMATS:
        first = skypickle.dumps(score, compat=compat)
        # numpy.linalg.linalg too where numpy loads it (2.0): its parts are both "linalg".
        assert "numpy.linalg" in named(first, "numpy")
        assert named(first, package) == {f"{package}.sub"}
        assert skypickle.dumps(score, compat=compat) == first
        sys.modules[f"{package}.extra"] = types.ModuleType(f"{package}.extra")
        del sys.modules[f"{package}.extra"]
        assert skypickle.dumps(score, compat=compat) == first
        assert skypickle.dumps(score, compat=compat) == first
    assert np.linalg is sys.modules["numpy.linalg"]


def test_index_keeps_no_module_alive(package):
    """The index holds names, not modules: a submodule removed from ``sys.modules`` is freed
    without any further dump."""
    use_flip = functions(package)["use_flip"]
    flip = types.ModuleType(f"{package}.flip")
    sys.modules[f"{package}.flip"] = flip
    found = carried(use_flip)
    assert found == [flip]
    del found
    skypickle.dumps(use_flip)
    ref = weakref.ref(flip)
    del sys.modules[f"{package}.flip"], flip
    gc.collect()
    assert ref() is None


def test_threads_dump_while_sys_modules_changes(package):
    """Eight threads dump functions over the package and numpy while the main thread adds and
    removes a submodule: every payload is one of the two right ones (bytes are deterministic),
    and once the changes stop, every thread's next dump sees the final state (each thread's
    index is checked, not just the one that saw the change)."""
    pytest.importorskip("numpy")
    __import__(f"{package}.sub")
    ns = functions(package)
    use_flip = ns["use_flip"]
    use_sub = ns["use_sub"]
    flip = types.ModuleType(f"{package}.flip")
    key = f"{package}.flip"
    absent = skypickle.dumps(use_flip)
    sys.modules[key] = flip
    present = skypickle.dumps(use_flip)
    del sys.modules[key]
    assert named(absent, package) == set() and named(present, package) == {key}
    sub_payload = skypickle.dumps(use_sub)
    numpy_closure = make_namespace("import numpy as np\nf = lambda v: np.linalg.norm(v)")["f"]
    numpy_payload = skypickle.dumps(numpy_closure)

    n_threads = 8
    start = threading.Barrier(n_threads + 1)
    stopped = threading.Barrier(n_threads + 1)
    checked = threading.Barrier(n_threads + 1)
    removed = threading.Barrier(n_threads + 1)
    done = threading.Event()
    errors: list = []
    finals: dict = {}
    seen: list = []

    def worker(i):
        try:
            start.wait()
            while not done.is_set():
                payload = skypickle.dumps(use_flip)
                assert payload in (absent, present)
                seen.append(payload == present)
                assert skypickle.dumps(use_sub) == sub_payload
                assert skypickle.dumps(numpy_closure) == numpy_payload
            stopped.wait()
            finals[i] = [skypickle.dumps(use_flip)]
            checked.wait()
            removed.wait()
            finals[i].append(skypickle.dumps(use_flip))
        except Exception as exc:  # reported by the main thread
            errors.append(exc)
            for barrier in (start, stopped, checked, removed):
                barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)
    for t in threads:
        t.start()
    try:
        start.wait()
        # Each change is followed by a pause in which the workers run (a short switch
        # interval hands them the GIL soon, and hands it back soon).
        for _ in range(100):
            sys.modules[key] = flip
            time.sleep(0.0002)
            del sys.modules[key]
            time.sleep(0.0002)
        # Stop in the state "present".
        sys.modules[key] = flip
        done.set()
        stopped.wait()
        checked.wait()
        del sys.modules[key]
        removed.wait()
    except threading.BrokenBarrierError:
        pass
    finally:
        done.set()
        for t in threads:
            t.join(timeout=120)
        sys.setswitchinterval(interval)
        sys.modules.pop(key, None)
    assert not errors, errors
    assert finals == {i: [present, absent] for i in range(n_threads)}
    # The workers did dump while the submodule came and went.
    assert True in seen and False in seen
