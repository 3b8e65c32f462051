"""Per-call by-value modules: ``dumps(obj, by_value=[module_or_name, ...])`` (also ``dump``,
``fingerprint``, ``Pickler`` and ``skypickle.compat``).

The listed modules and their submodules travel by value for that call only; the registries
(skypickle's and those of the cloudpickle copies) are neither read-modified nor changed, so
calls with different lists in different threads do not interfere. Payloads are loaded in a
FRESH interpreter where the listed modules are not importable (they live in temporary
directories put on ``sys.path`` in this process only).
"""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import textwrap
import threading
import types
import typing
import uuid

import cloudpickle
import pytest
import skypickle
import skypickle.compat
from byvalue_helpers import make_namespace, pack, run_child
from compat_helpers import BLOCK_SKYPICKLE, payload_globals
from helpers import by_value_functions, reconstructors

PROTOCOLS = tuple(range(pickle.HIGHEST_PROTOCOL + 1))


# A top-level module: a function and a class that carry a marker string (found in a payload
# only if their code travels), a TypeVar, and a function that calls another of its module.
MODULE_SOURCE = """
import typing

MARK = "marker-{tag}"
T = typing.TypeVar("T")

def func(x):
    return ("{tag}", x + 1, "marker-{tag}-func")

def other(x):
    return func(x)[1] * 10

class Thing:
    def value(self):
        return "marker-{tag}-thing"
"""

PACKAGE_FILES = {
    "__init__.py": """
        def top():
            return "marker-pkg-top"
        """,
    "sub.py": """
        def func():
            return "marker-pkg-sub"
        """,
}


def _write_module(site, name, tag):
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{name}.py").write_text(textwrap.dedent(MODULE_SOURCE.format(tag=tag)))


@pytest.fixture
def mods(tmp_path):
    """Two top-level modules, each in a directory of its own (so a child can be given one and
    not the other), and a package with a submodule; importable in this process only (the child
    runs in ``tmp_path``, which holds none of them)."""
    suffix = uuid.uuid4().hex[:10]
    names = types.SimpleNamespace(
        a=f"percall_a_{suffix}", b=f"percall_b_{suffix}", pkg=f"percall_pkg_{suffix}"
    )
    site_a, site_b, site_pkg = tmp_path / "site_a", tmp_path / "site_b", tmp_path / "site_pkg"
    _write_module(site_a, names.a, "A")
    _write_module(site_b, names.b, "B")
    (site_pkg / names.pkg).mkdir(parents=True)
    for filename, source in PACKAGE_FILES.items():
        (site_pkg / names.pkg / filename).write_text(textwrap.dedent(source))
    paths = [str(site_a), str(site_b), str(site_pkg)]
    sys.path[:0] = paths
    importlib.invalidate_caches()
    try:
        yield types.SimpleNamespace(
            a=importlib.import_module(names.a),
            b=importlib.import_module(names.b),
            pkg=importlib.import_module(names.pkg),
            sub=importlib.import_module(f"{names.pkg}.sub"),
            site_a=str(site_a),
            site_b=str(site_b),
            site_pkg=str(site_pkg),
        )
    finally:
        for path in paths:
            sys.path.remove(path)
        for key in list(sys.modules):
            if key.startswith("percall_"):
                del sys.modules[key]


def registries():
    """What every registry holds now: skypickle's (and the object itself), cloudpickle's, and
    the union skypickle reports."""
    return (
        id(skypickle._PICKLE_BY_VALUE_MODULES),
        frozenset(skypickle._PICKLE_BY_VALUE_MODULES),
        frozenset(cloudpickle.cloudpickle._PICKLE_BY_VALUE_MODULES),
        frozenset(skypickle.list_registry_pickle_by_value()),
    )


def by_value_markers(payload: bytes, *tags: str) -> set:
    """The tags whose function code (its marker constant) the payload carries."""
    return {tag for tag in tags if f"marker-{tag}-func".encode() in payload}


def referenced(payload: bytes) -> set:
    """The ``(module, name)`` globals loading the payload looks up."""
    return set(payload_globals(payload))


# --------------------------------------------------------------------------------------------
# The list decides, for this call only
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_listed_module_travels_by_value_for_this_call_only(mods, proto):
    a = mods.a
    before = registries()
    plain = skypickle.dumps(a.func, protocol=proto)
    assert by_value_functions(plain) == 0
    for listing in ([a], [a.__name__], (a,), {a.__name__}, iter([a]), [a, a.__name__]):
        payload = skypickle.dumps(a.func, protocol=proto, by_value=listing)
        assert by_value_functions(payload) == 1
        assert by_value_markers(payload, "A") == {"A"}
        loaded = pickle.loads(payload)
        assert loaded is not a.func
        assert loaded(1) == a.func(1)
    # Nothing kept: the next call without a list is by reference again, byte for byte.
    assert skypickle.dumps(a.func, protocol=proto) == plain
    assert pickle.loads(plain) is a.func
    # An empty list is no list.
    assert skypickle.dumps(a.func, protocol=proto, by_value=[]) == plain
    assert skypickle.dumps(a.func, protocol=proto, by_value=None) == plain
    assert registries() == before


def test_functions_classes_typevars_and_modules_follow_the_list(mods):
    a = mods.a
    with_list = skypickle.dumps((a.func, a.Thing, a.T, a), by_value=[a])
    calls = reconstructors(with_list)
    assert by_value_functions(with_list) >= 1
    assert calls["_make_skeleton_class"] == 1
    assert calls["_make_typevar"] == 1
    assert calls["_dynamic_subimport"] == 1
    without = skypickle.dumps((a.func, a.Thing, a.T, a))
    calls = reconstructors(without)
    assert by_value_functions(without) == 0
    assert calls["_make_skeleton_class"] == calls["_make_typevar"] == 0
    assert calls["_dynamic_subimport"] == 0
    assert pickle.loads(without) == (a.func, a.Thing, a.T, a)


def test_package_listed_covers_its_submodules_not_the_reverse(mods):
    pkg, sub = mods.pkg, mods.sub
    payload = skypickle.dumps((pkg.top, sub.func), by_value=[pkg.__name__])
    assert by_value_functions(payload) == 2
    payload = skypickle.dumps((pkg.top, sub.func), by_value=[sub])
    assert by_value_functions(payload) == 1
    assert (pkg.__name__, "top") in referenced(payload)


def test_list_adds_to_the_registries(mods):
    a, b = mods.a, mods.b
    cloudpickle.register_pickle_by_value(a)
    try:
        payload = skypickle.dumps((a.func, b.func), by_value=[b])
        assert by_value_markers(payload, "A", "B") == {"A", "B"}
        assert a.__name__ in cloudpickle.list_registry_pickle_by_value()
        assert b.__name__ not in cloudpickle.list_registry_pickle_by_value()
        assert b.__name__ not in skypickle.list_registry_pickle_by_value()
    finally:
        cloudpickle.unregister_pickle_by_value(a)
    payload = skypickle.dumps((a.func, b.func), by_value=[b])
    assert by_value_markers(payload, "A", "B") == {"B"}


def test_registries_are_not_read_modified_during_the_dump(mods):
    """While the dump runs, code it calls sees the registries as they were (the list is not
    put in them for the duration), but the decision sees the list."""
    a = mods.a
    seen = {}

    class Probe:
        def __reduce__(self):
            seen["registries"] = registries()
            seen["decision"] = skypickle._should_pickle_by_reference(a.func)
            seen["module_decision"] = skypickle._should_pickle_by_reference(a)
            return (int, (0,))

    before = registries()
    payload = skypickle.dumps((a.func, Probe()), by_value=[a])
    assert seen == {"registries": before, "decision": False, "module_decision": False}
    assert by_value_markers(payload, "A") == {"A"}
    # Outside the dump, the same question gets the registries' answer.
    assert skypickle._should_pickle_by_reference(a.func) is True
    assert registries() == before


# --------------------------------------------------------------------------------------------
# Errors, at the call
# --------------------------------------------------------------------------------------------


def test_name_not_imported_is_refused_at_the_call(mods):
    missing = f"percall_missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ValueError) as info:
        skypickle.dumps(mods.a.func, by_value=[mods.a, missing])
    message = str(info.value)
    assert repr(missing) in message and "not imported" in message and "import it" in message
    # A submodule not imported (its package is) is refused likewise.
    with pytest.raises(ValueError, match="not imported"):
        skypickle.dumps(None, by_value=[f"{mods.pkg.__name__}.nope"])
    # So is a name whose sys.modules entry is None (an import blocked on purpose).
    sys.modules["percall_blocked"] = None
    try:
        with pytest.raises(ValueError, match="'percall_blocked'"):
            skypickle.dumps(None, by_value=["percall_blocked"])
    finally:
        del sys.modules["percall_blocked"]


def test_module_object_not_in_sys_modules_is_refused_like_register(mods):
    stray = types.ModuleType("percall_stray")
    with pytest.raises(ValueError) as expected:
        skypickle.register_pickle_by_value(stray)
    with pytest.raises(ValueError) as got:
        skypickle.dumps(None, by_value=[stray])
    assert str(got.value) == str(expected.value)
    assert "was not imported correctly" in str(got.value)
    # A module whose name is in sys.modules, but which is not the module there.
    impostor = types.ModuleType(mods.a.__name__)
    with pytest.raises(ValueError, match="was not imported correctly"):
        skypickle.dumps(None, by_value=[impostor])


@pytest.mark.parametrize(
    "bad", [[1], [None], [b"json"], [["json"]], [len]], ids=["int", "None", "bytes", "list", "len"]
)
def test_entries_of_other_types_are_refused(bad):
    with pytest.raises(TypeError, match="by_value entries must be modules or module names"):
        skypickle.dumps(None, by_value=bad)


@pytest.mark.parametrize("bad", ["json", b"json", sys, 3], ids=["str", "bytes", "module", "int"])
def test_a_single_module_or_name_instead_of_a_list_is_refused(bad):
    with pytest.raises(TypeError, match="by_value must be a list of modules or module names"):
        skypickle.dumps(None, by_value=bad)


def test_errors_come_before_anything_is_written(mods):
    before = registries()
    for call in (
        lambda f: skypickle.dump(mods.a.func, f, by_value=["percall_nowhere"]),
        lambda f: skypickle.dump(mods.a.func, f, by_value=[1]),
        lambda f: skypickle.Pickler(f, by_value=["percall_nowhere"]),
        lambda f: skypickle.compat.dump(mods.a.func, f, by_value=["percall_nowhere"]),
    ):
        file = io.BytesIO()
        with pytest.raises((ValueError, TypeError)):
            call(file)
        assert file.getvalue() == b""
    with pytest.raises(ValueError):
        skypickle.fingerprint(mods.a.func, by_value=["percall_nowhere"])
    assert registries() == before


# --------------------------------------------------------------------------------------------
# Pickler, fingerprint, compat
# --------------------------------------------------------------------------------------------


def test_pickler_keeps_its_list_for_all_its_dumps(mods):
    a, b = mods.a, mods.b
    file = io.BytesIO()
    pickler = skypickle.Pickler(file, by_value=[a.__name__])
    pickler.dump(a.func)
    first = file.getvalue()
    pickler.clear_memo()
    pickler.dump((a.other, b.func))
    second = file.getvalue()[len(first) :]
    assert by_value_markers(first, "A", "B") == {"A"}
    assert by_value_functions(second) == 2  # other, and func which it calls
    assert (b.__name__, "func") in referenced(second)
    # Its reducer_override answers by its list, also outside a dump; a plain pickler's does not.
    assert pickler.reducer_override(a.func) is not NotImplemented
    assert skypickle.Pickler(io.BytesIO()).reducer_override(a.func) is NotImplemented
    # The list stays with that pickler: a dump elsewhere meanwhile does not see it.
    assert by_value_functions(skypickle.dumps(a.func)) == 0
    assert pickle.loads(first)(2) == a.func(2)


def test_pickler_subclass_hooks_called_from_python_see_the_list(mods):
    """A subclass's reducer_override (calling the base one) and a dispatch table of its own,
    whose module and TypeVar reducers are called from Python, decide by the list."""
    a = mods.a

    class Sub(skypickle.Pickler):
        dispatch_table = dict(skypickle.Pickler._dispatch_table)

        def reducer_override(self, obj):
            return super().reducer_override(obj)

    def dump(obj, **kw):
        file = io.BytesIO()
        Sub(file, **kw).dump(obj)
        return file.getvalue()

    listed = dump((a.func, a.Thing, a.T, a), by_value=[a])
    calls = reconstructors(listed)
    assert by_value_markers(listed, "A") == {"A"}
    assert calls["_make_function"] >= 1  # func, Thing.value, and the module's other
    assert calls["_make_skeleton_class"] == calls["_make_typevar"] == 1
    assert calls["_dynamic_subimport"] == 1
    plain = dump((a.func, a.Thing, a.T, a))
    calls = reconstructors(plain)
    assert calls["_make_function"] + calls["_make_skeleton_class"] == 0
    assert calls["_make_typevar"] + calls["_dynamic_subimport"] == 0


def test_fingerprint_follows_the_list(mods):
    """The list means what registering the module means, for this call: the same bytes."""
    a = mods.a
    listed = skypickle.fingerprint(a.func, by_value=[a])
    assert listed != skypickle.fingerprint(a.func)
    payload = skypickle.dumps(a.func, deterministic=True, by_value=[a])
    skypickle.register_pickle_by_value(a)
    try:
        assert skypickle.fingerprint(a.func) == listed
        assert skypickle.dumps(a.func, deterministic=True) == payload
    finally:
        skypickle.unregister_pickle_by_value(a)


def test_compat_api_passes_the_list_through(mods, run_in_subprocess):
    a = mods.a
    assert by_value_markers(skypickle.compat.dumps(a.func), "A") == set()
    payload = skypickle.compat.dumps(a.func, by_value=[a])
    assert by_value_markers(payload, "A") == {"A"}
    file = io.BytesIO()
    skypickle.compat.dump(a.Thing, file, by_value=[a.__name__])
    pickler_file = io.BytesIO()
    skypickle.compat.Pickler(pickler_file, by_value=[a]).dump(a.other)
    for data in (payload, file.getvalue(), pickler_file.getvalue()):
        assert not any(module.startswith("skypickle") for module, _ in payload_globals(data))
    got = run_child(
        run_in_subprocess,
        BLOCK_SKYPICKLE
        + textwrap.dedent(
            f"""
            assert importlib.util.find_spec({a.__name__!r}) is None
            data = pickle.loads(PAYLOAD)
            func = pickle.loads(data["func"])
            thing = pickle.loads(data["thing"])
            other = pickle.loads(data["other"])
            result = (func(1), thing().value(), other(2), "skypickle" in sys.modules)
            """
        ),
        payload=pack(func=payload, thing=file.getvalue(), other=pickler_file.getvalue()),
    )
    assert got == (a.func(1), a.Thing().value(), a.other(2), False)


# --------------------------------------------------------------------------------------------
# Scopes: nested dumps, threads
# --------------------------------------------------------------------------------------------


def test_nested_dump_has_its_own_scope_and_restores_the_outer_one(mods):
    a, b = mods.a, mods.b
    inner = {}

    class Nested:
        def __reduce__(self):
            # A dump made by user code inside the outer dump: its own list, or none.
            inner["none"] = skypickle.dumps((a.other, b.func))
            inner["b"] = skypickle.dumps((a.other, b.func), by_value=[b])
            return (int, (0,))

    outer = skypickle.dumps((a.func, Nested(), a.other), by_value=[a])
    assert by_value_markers(inner["none"], "A", "B") == set()
    assert by_value_functions(inner["none"]) == 0
    assert by_value_markers(inner["b"], "A", "B") == {"B"}
    assert (a.__name__, "other") in referenced(inner["b"])
    # After the nested dumps, the outer dump still has its list: a.other went by value.
    assert by_value_functions(outer) == 2
    assert not any(module == a.__name__ for module, _ in referenced(outer))
    assert by_value_functions(skypickle.dumps(a.other)) == 0


def test_two_threads_with_different_lists_do_not_interfere(mods, run_in_subprocess):
    """Two threads dump the same objects 1,000 times each, one listing module A (as a module
    object), the other module B (by name). Each dump meets the other thread halfway (a barrier
    inside the dump), so every dump of one thread runs while a dump of the other is under way.
    Every payload carries by value exactly its thread's module, and references the other."""
    a, b = mods.a, mods.b
    rounds = 1000
    barrier = threading.Barrier(2, timeout=60)
    before = registries()
    seen_during = set()

    class Meet:
        def __reduce__(self):
            seen_during.add(registries())
            barrier.wait()
            return (int, (0,))

    results = {"A": [], "B": []}
    errors = []

    def work(tag, listing):
        try:
            for _ in range(rounds):
                results[tag].append(skypickle.dumps((a.func, Meet(), b.func), by_value=listing))
        except BaseException as exc:  # reported below; the other thread must not wait forever
            errors.append(exc)
            barrier.abort()

    threads = [
        threading.Thread(target=work, args=("A", [a])),
        threading.Thread(target=work, args=("B", [b.__name__])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert seen_during == {before}
    assert registries() == before
    for tag, other in (("A", b), ("B", a)):
        assert len(results[tag]) == rounds
        for payload in results[tag]:
            assert by_value_markers(payload, "A", "B") == {tag}
            assert by_value_functions(payload) == 1
            globals_ = referenced(payload)
            assert (other.__name__, "func") in globals_
            ours = {module for module, _ in globals_} & {a.__name__, b.__name__}
            assert ours == {other.__name__}

    # Fresh interpreters: the listed module is not importable there, the other one is.
    for tag, site, gone, present in (
        ("A", mods.site_b, a.__name__, b.__name__),
        ("B", mods.site_a, b.__name__, a.__name__),
    ):
        got = run_child(
            run_in_subprocess,
            f"""
            sys.path.insert(0, {site!r})
            assert importlib.util.find_spec({gone!r}) is None
            payloads = pickle.loads(PAYLOAD)
            out = []
            for data in payloads.values():
                fa, zero, fb = pickle.loads(data)
                out.append((fa(1), zero, fb(2)))
            result = (out, {gone!r} in sys.modules, {present!r} in sys.modules)
            """,
            payload=pack(first=results[tag][0], last=results[tag][-1]),
        )
        assert got == ([(a.func(1), 0, b.func(2))] * 2, False, True)


# --------------------------------------------------------------------------------------------
# Fresh-interpreter loads
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", [2, 3, 4, 5])
def test_listed_package_loads_where_it_is_not_importable(mods, run_in_subprocess, proto):
    pkg, sub, a = mods.pkg, mods.sub, mods.a
    payload = skypickle.dumps(
        {"top": pkg.top, "sub": sub.func, "module": sub, "other": a.other, "thing": a.Thing()},
        protocol=proto,
        by_value=[pkg, a.__name__],
    )
    got = run_child(
        run_in_subprocess,
        f"""
        for name in ({pkg.__name__!r}, {a.__name__!r}):
            assert importlib.util.find_spec(name) is None
        d = pickle.loads(PAYLOAD)
        result = (d["top"](), d["sub"](), d["module"].func(), d["other"](4),
                  d["thing"].value(), sorted(m for m in sys.modules if m.startswith("percall_")))
        """,
        payload=payload,
    )
    assert got == (pkg.top(), sub.func(), sub.func(), a.other(4), a.Thing().value(), [])


def test_typevar_listed_loads_where_it_is_not_importable(mods, run_in_subprocess):
    a = mods.a
    payload = skypickle.dumps(a.T, by_value=[a])
    got = run_child(
        run_in_subprocess,
        """
        import typing
        t = pickle.loads(PAYLOAD)
        result = (isinstance(t, typing.TypeVar), t.__name__)
        """,
        payload=payload,
    )
    assert got == (True, "T")
    assert isinstance(a.T, typing.TypeVar)


# --------------------------------------------------------------------------------------------
# Submodules reached by attribute (cloudpickle issue 581)
# --------------------------------------------------------------------------------------------
#
# cloudpickle carries with a by-value function the submodules of the packages it uses whose
# every dotted part is in the code's co_names, and pickles them like any module. Two cases
# fail with cloudpickle 3.1.2, on load, with AttributeError:
#
# * issue 581: the submodule is reached as getattr(pkg, "sub") (the part is a str constant,
#   not a name), or from a nested function or lambda (its own co_names): it is not carried,
#   so the loader never imports it;
# * the submodule is registered (or listed) by value and its package is not: it is carried,
#   rebuilt from its namespace as a module bound nowhere, and `pkg.sub` on the loader's
#   package (by reference) does not find it; a loader with its own copy would run that one.
#
# skypickle counts nested code and identifier-like str constants as names, and writes a
# by-value submodule of a package pickled by reference as setattr(pkg, "sub", <by value>).

SUBMODULE_USERS = """
import concurrent.futures
import {pkg}.sub

def attr():
    return ({pkg}.WHERE, {pkg}.sub.func())

def by_getattr():
    return ({pkg}.WHERE, getattr({pkg}, "sub").func())

def nested():
    inner = lambda: {pkg}.sub.func()
    return ({pkg}.WHERE, inner())

def stdlib():
    return getattr(concurrent, "futures").ThreadPoolExecutor.__name__
"""

USER_NAMES = ("attr", "by_getattr", "nested")


@pytest.fixture
def split_package(tmp_path):
    """A package whose submodule ``sub`` exists here only: the child's copy of the package
    (``child_site``, which the child puts on its path) has no ``sub``."""
    name = f"percall_split_{uuid.uuid4().hex[:10]}"
    here, child = tmp_path / "site_here", tmp_path / "site_child"
    for site, where in ((here, "here"), (child, "child")):
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(f"WHERE = {where!r}\n")
    (here / name / "sub.py").write_text('def func():\n    return "marker-sub-sent"\n')
    sys.path.insert(0, str(here))
    importlib.invalidate_caches()
    try:
        pkg = importlib.import_module(name)
        sub = importlib.import_module(f"{name}.sub")
        users = make_namespace(SUBMODULE_USERS.format(pkg=name))
        yield types.SimpleNamespace(name=name, pkg=pkg, sub=sub, users=users, child=str(child))
    finally:
        sys.path.remove(str(here))
        for key in list(sys.modules):
            if key == name or key.startswith(name + "."):
                del sys.modules[key]


def call_in_child(run_in_subprocess, split, payloads, prelude=""):
    """Load each payload in a fresh interpreter whose package has no ``sub`` and call it."""
    return run_child(
        run_in_subprocess,
        prelude
        + textwrap.dedent(
            f"""
            sys.path.insert(0, {split.child!r})
            import {split.name}
            assert importlib.util.find_spec({split.name + ".sub"!r}) is None
            result = {{}}
            for key, data in pickle.loads(PAYLOAD).items():
                result[key] = outcome(lambda: pickle.loads(data)())
            result["bound"] = getattr(getattr({split.name}, "sub", None), "__name__", None)
            result["in sys.modules"] = {split.name + ".sub"!r} in sys.modules
            """
        ),
        payload=pack(**payloads),
    )


def test_cloudpickle_misses_submodules_reached_by_attribute(split_package, run_in_subprocess):
    """The failure, shown with cloudpickle 3.1.2 and its own registry."""
    split = split_package
    cloudpickle.register_pickle_by_value(split.sub)
    try:
        payloads = {n: cloudpickle.dumps(split.users[n]) for n in USER_NAMES}
    finally:
        cloudpickle.unregister_pickle_by_value(split.sub)
    payloads["stdlib"] = cloudpickle.dumps(split.users["stdlib"])
    got = call_in_child(run_in_subprocess, split, payloads)
    for name in (*USER_NAMES, "stdlib"):
        assert got[name][:2] == ("raise", "AttributeError"), name


SENT = ("ok", ("child", "marker-sub-sent"))


@pytest.mark.parametrize("how", ["registry", "cloudpickle_registry", "list", "list_by_name"])
def test_submodules_reached_by_attribute_travel_and_are_bound(
    split_package, run_in_subprocess, how
):
    split = split_package
    registries_before = registries()
    if how == "registry":
        skypickle.register_pickle_by_value(split.sub)
    elif how == "cloudpickle_registry":
        cloudpickle.register_pickle_by_value(split.sub)
    by_value = {"list": [split.sub], "list_by_name": [split.sub.__name__]}.get(how)
    try:
        payloads = {n: skypickle.dumps(split.users[n], by_value=by_value) for n in USER_NAMES}
    finally:
        if how == "registry":
            skypickle.unregister_pickle_by_value(split.sub)
        elif how == "cloudpickle_registry":
            cloudpickle.unregister_pickle_by_value(split.sub)
    assert registries() == registries_before
    for data in payloads.values():
        assert ("builtins", "setattr") in referenced(data)
        assert (split.name, "sub") not in referenced(data)
    payloads["stdlib"] = skypickle.dumps(split.users["stdlib"])
    assert b"concurrent.futures" in payloads["stdlib"]
    got = call_in_child(run_in_subprocess, split, payloads)
    assert got == {
        "attr": SENT,
        "by_getattr": SENT,
        "nested": SENT,
        "stdlib": ("ok", "ThreadPoolExecutor"),
        "bound": split.sub.__name__,
        "in sys.modules": False,
    }


def test_submodule_binding_in_compat_payloads_and_reduce_values(split_package, run_in_subprocess):
    """A cloudpickle loader (skypickle not importable) binds it too: the binding is a call of
    builtins.setattr. Pickler.reducer_override's reduce value carries the same binding, in
    both formats."""
    split = split_package
    reduce_value = skypickle.Pickler(io.BytesIO(), by_value=[split.sub]).reducer_override(
        split.users["attr"]
    )
    (binding,) = reduce_value[2][4]["_skypickle_submodules"]
    assert type(binding).__name__ == "_SubmoduleBinding"
    assert binding.__reduce__() == (setattr, (split.pkg, "sub", split.sub))

    def through_override(base, name):
        class Sub(base):
            def reducer_override(self, obj):
                return super().reducer_override(obj)

        file = io.BytesIO()
        Sub(file, by_value=[split.sub]).dump(split.users[name])
        return file.getvalue()

    expected = {
        **{n: SENT for n in USER_NAMES},
        "bound": split.sub.__name__,
        "in sys.modules": False,
    }
    own = {n: through_override(skypickle.Pickler, n) for n in USER_NAMES}
    assert call_in_child(run_in_subprocess, split, own) == expected
    for compat in (
        {n: skypickle.compat.dumps(split.users[n], by_value=[split.sub]) for n in USER_NAMES},
        {n: through_override(skypickle.compat.Pickler, n) for n in USER_NAMES},
    ):
        for data in compat.values():
            assert not any(module.startswith("skypickle") for module, _ in referenced(data))
        assert call_in_child(run_in_subprocess, split, compat, BLOCK_SKYPICKLE) == expected


def test_no_binding_unless_the_package_goes_by_reference_and_the_submodule_by_value(
    split_package,
):
    split = split_package
    attr = split.users["attr"]

    def carried(**kw):
        reduce_value = skypickle.Pickler(io.BytesIO(), **kw).reducer_override(attr)
        return list((reduce_value[2][4] or {}).get("_skypickle_submodules", []))

    # Neither by value: the submodule itself, imported on load.
    assert carried() == [split.sub]
    # The package by value: its namespace carries `sub` already.
    assert carried(by_value=[split.pkg]) == [split.sub]
    assert ("builtins", "setattr") not in referenced(skypickle.dumps(attr, by_value=[split.pkg]))
    # Only the submodule by value: bound in the package.
    assert type(carried(by_value=[split.sub])[0]).__name__ == "_SubmoduleBinding"
    # The package's attribute is something else here: the code does not reach the submodule
    # through it, and the loader's package is left alone.
    split.pkg.__dict__["sub"] = "shadow"
    try:
        assert carried(by_value=[split.sub]) == [split.sub]
    finally:
        split.pkg.__dict__["sub"] = split.sub


def test_submodule_names_from_nested_code_and_constants(split_package):
    """What counts as reaching a submodule: its parts among the code's names, the names of
    the code nested in it, or its identifier-like str constants (in tuples too); text with
    spaces (messages, docstrings) never names one."""
    split = split_package
    ns = make_namespace(
        f"""
        import {split.name}

        def in_tuple():
            return [getattr({split.name}, n) for n in ("sub", "other")]

        def in_docstring():
            "The sub module."
            return {split.name}

        def with_spaces():
            return {split.name}, "sub module"
        """
    )

    def carried(func):
        reduce_value = skypickle.Pickler(io.BytesIO()).reducer_override(func)
        return list((reduce_value[2][4] or {}).get("_skypickle_submodules", []))

    assert carried(ns["in_tuple"]) == [split.sub]
    assert carried(ns["in_docstring"]) == []
    assert carried(ns["with_spaces"]) == []
