"""Tokens and cache keys from ``skypickle.fingerprint``: dask's ``tokenize`` after
``integrations.dask.install_tokenize()``, joblib's hash and ``Memory`` after
``integrations.joblib.install()`` / ``cache()``.

In this process: what is registered or patched and that uninstalling gives it back, one
fingerprint per function and no pickling by dask, tokens and keys that change with the code,
the closure, the globals and the defaults, and what is left to the engines. In fresh
interpreters run as ``__main__`` with different ``PYTHONHASHSEED``: the same tokens, and
joblib's cache found again, for a ``__main__`` function, a closure over a set of strings, a
``__main__`` class and a graph of lambdas.
"""

from __future__ import annotations

import functools
import json
import threading
import types

import pytest
from engines import run_script

pytest.importorskip("dask")
pytest.importorskip("joblib")

import dask  # noqa: E402
import dask.base  # noqa: E402

try:
    import dask.tokenize  # noqa: E402
except ImportError:  # pragma: no cover - dask before 2024.9 (the last one for CPython 3.9)
    # These tests read dask.tokenize's internals; tests/test_tokenize_layouts.py covers
    # install_tokenize() on the older layout (tokenize in dask.base) too.
    pytest.skip("dask.tokenize is missing (dask < 2024.9)", allow_module_level=True)
import joblib  # noqa: E402
import skypickle  # noqa: E402
import skypickle.integrations.dask as skydask  # noqa: E402
import skypickle.integrations.joblib as skyjoblib  # noqa: E402

tokenize = dask.base.tokenize
LOOKUP = dask.tokenize.normalize_token._lookup


def make_closure(k):
    # A set of strings: its iteration order follows the per-process str hash.
    names = {f"name{i}" for i in range(30)}
    return lambda v: (v * k, sorted(names)[0])


def make_local_class(rate):
    # Defined in a function: travels by value, like a __main__ class.
    class Account:
        def __init__(self, balance):
            self.balance = balance

        def interest(self):
            return self.balance * rate

    return Account


def make_graph(n):
    return {
        ("task", i): (eval(f"lambda x, k={i}: x + k"), i, ("task", i - 1) if i else None)
        for i in range(n)
    }


@pytest.fixture
def dask_tokenize():
    """install_tokenize() for the test, uninstalled after it whatever happens."""
    skydask.install_tokenize()
    try:
        yield
    finally:
        skydask.uninstall_tokenize()


@pytest.fixture
def fingerprint_calls(monkeypatch):
    """Counts the fingerprints each integration computes."""
    calls: list = []

    def counting(obj, **kw):
        calls.append(obj)
        return skypickle.fingerprint(obj, **kw)

    monkeypatch.setattr(skydask, "_fingerprint", counting)
    monkeypatch.setattr(skyjoblib, "_fingerprint", counting)
    return calls


# --------------------------------------------------------------------------------------------
# dask: registration and uninstall
# --------------------------------------------------------------------------------------------


def test_install_tokenize_registers_functions_and_classes_and_uninstall_restores():
    import abc

    class Meta(abc.ABC):
        @abc.abstractmethod
        def run(self): ...

    # Looked up once before: Dispatch then holds ABCMeta's own entry (dask's generic handler),
    # which install_tokenize must take over as well.
    tokenize(Meta)
    assert LOOKUP.get(abc.ABCMeta) is dask.tokenize.normalize_object
    before = dict(LOOKUP)
    dask_pickler = dask.tokenize.cloudpickle
    closure = make_closure(3)
    stock = tokenize(closure)

    registered = skydask.install_tokenize()
    try:
        assert {types.FunctionType, type, abc.ABCMeta} <= set(registered)
        assert skydask.tokenize_installed()
        handler = skydask._normalize_by_fingerprint
        assert dask.tokenize.normalize_token.dispatch(types.FunctionType) is handler
        assert dask.tokenize.normalize_token.dispatch(abc.ABCMeta) is handler
        import enum

        class Colour(enum.Enum):  # a metaclass first seen while installed
            RED = 1

        assert tokenize(Colour) == tokenize(Colour)
        assert dask.tokenize.normalize_token.dispatch(type(Colour)) is handler
        assert tokenize(closure) != stock
        # Calling it again keeps them (and lists the metaclass met since).
        assert set(registered) | {type(Colour)} == set(skydask.install_tokenize())
    finally:
        skydask.uninstall_tokenize()
    assert not skydask.tokenize_installed()
    assert skydask._normalize_by_fingerprint not in LOOKUP.values()
    assert {k: LOOKUP.get(k) for k in before} == before
    assert dask.tokenize.cloudpickle is dask_pickler
    assert tokenize(closure) == stock
    skydask.uninstall_tokenize()  # a second uninstall is a no-op


def test_a_handler_registered_by_someone_else_stays_theirs():
    class OwnMeta(type):
        pass

    class Thing(metaclass=OwnMeta):
        pass

    def theirs(cls):
        return "their token"

    dask.tokenize.normalize_token.register(OwnMeta, theirs)
    try:
        with_theirs = tokenize(Thing)
        skydask.install_tokenize()
        try:
            assert dask.tokenize.normalize_token.dispatch(OwnMeta) is theirs
            assert tokenize(Thing) == with_theirs
        finally:
            skydask.uninstall_tokenize()
        assert dask.tokenize.normalize_token.dispatch(OwnMeta) is theirs
    finally:
        del LOOKUP[OwnMeta]


def test_install_registers_tokenization_and_uninstall_removes_it(run_in_subprocess):
    # In a child: install() imports distributed, which installs tblib's exception reducers in
    # copyreg for the rest of the process.
    run_in_subprocess(
        """
        import sys

        import skypickle.integrations.dask as skydask

        # Importing the integration imports no distributed (install_tokenize() needs none).
        assert "distributed" not in sys.modules
        import dask.tokenize

        patched = skydask.install()
        assert dask.tokenize.__name__ in patched, patched
        assert skydask.tokenize_installed()
        skydask.uninstall()
        assert not skydask.tokenize_installed()
        assert dask.tokenize.cloudpickle.__name__ == "cloudpickle"
        """
    )


# --------------------------------------------------------------------------------------------
# dask: one fingerprint per object, and tokens that follow the code
# --------------------------------------------------------------------------------------------


def test_one_fingerprint_per_function_and_no_pickling_by_dask(
    dask_tokenize, fingerprint_calls, monkeypatch
):
    pickled = []
    real = dask.tokenize._normalize_pickle
    monkeypatch.setattr(dask.tokenize, "_normalize_pickle", lambda o: pickled.append(o) or real(o))
    account = make_local_class(0.1)
    graph = make_graph(50)
    objects = [lambda v: v + 1, make_closure(2), account, json.dumps, graph]
    tokens = [tokenize(o) for o in objects]
    assert fingerprint_calls[:4] == objects[:4]
    assert sorted(map(id, fingerprint_calls[4:])) == sorted(id(t[0]) for t in graph.values())
    assert len(fingerprint_calls) == 4 + 50
    assert pickled == []
    assert tokens == [tokenize(o) for o in objects]


def test_tokens_change_with_code_closure_globals_and_defaults(dask_tokenize):
    namespace = {"OFFSET": 1}
    exec("def f(x, k=2):\n    return x * k + OFFSET\n", namespace)
    f = namespace["f"]
    first = tokenize(f)
    assert tokenize(f) == first
    namespace["OFFSET"] = 2
    assert tokenize(f) != first
    namespace["OFFSET"] = 1
    assert tokenize(f) == first
    f.__defaults__ = (3,)
    assert tokenize(f) != first
    f.__defaults__ = (2,)
    exec("def f(x, k=2):\n    return x * k - OFFSET\n", namespace)
    assert tokenize(namespace["f"]) != first

    assert tokenize(make_closure(3)) == tokenize(make_closure(3))
    assert tokenize(make_closure(3)) != tokenize(make_closure(4))

    def counter():
        count = 0

        def bump():
            nonlocal count
            count += 1
            return count

        return bump

    bump = counter()
    before = tokenize(bump)
    bump()
    assert tokenize(bump) != before

    assert tokenize(make_local_class(0.1)) == tokenize(make_local_class(0.1))
    assert tokenize(make_local_class(0.1)) != tokenize(make_local_class(0.2))


def test_partial_methods_and_callable_instances(dask_tokenize, fingerprint_calls):
    # partial: dask tokenizes its func, args and keywords; the func is fingerprinted.
    assert tokenize(functools.partial(make_closure(3), 1)) != tokenize(
        functools.partial(make_closure(4), 1)
    )
    assert fingerprint_calls and isinstance(fingerprint_calls[0], types.FunctionType)
    # Instances keep dask's path (here through skypickle's deterministic pickler): a bound
    # method is its instance and its name, a callable instance its pickle.
    account_cls = make_local_class(0.1)
    account = account_cls(100)
    assert tokenize(account.interest) == tokenize(account.interest)
    assert tokenize(account.interest) != tokenize(account_cls(200).interest)
    assert tokenize(account) == tokenize(account)
    assert tokenize(account) != tokenize(make_local_class(0.2)(100))


def test_what_skypickle_cannot_pickle_gets_dasks_treatment(dask_tokenize):
    lock = threading.Lock()

    def locked():
        with lock:
            return 1

    # dask's fallback: a random token, or an error when determinism is required.
    assert tokenize(locked) != tokenize(locked)
    with pytest.raises(dask.tokenize.TokenizationError):
        tokenize(locked, ensure_deterministic=True)


def test_ensure_deterministic_compares_two_fingerprints(dask_tokenize, fingerprint_calls):
    class Drifting:
        n = 0

        def __reduce__(self):
            Drifting.n += 1
            return (int, (Drifting.n,))

    drifting = Drifting()

    def uses_drifting():
        return drifting

    tokenize(uses_drifting)
    assert len(fingerprint_calls) == 1
    with pytest.raises(dask.tokenize.TokenizationError, match="two pickles"):
        tokenize(uses_drifting, ensure_deterministic=True)
    with dask.config.set({"tokenize.ensure-deterministic": True}):
        with pytest.raises(dask.tokenize.TokenizationError):
            tokenize(uses_drifting)
        stable = make_closure(1)
        assert tokenize(stable) == tokenize(stable)


# --------------------------------------------------------------------------------------------
# joblib: hash, install, cache
# --------------------------------------------------------------------------------------------


def test_joblib_hash_keeps_joblibs_digests_for_what_it_hashes_by_name_or_value():
    import numpy as np

    for obj in (
        {"a": [1, 2.5, "x"], "b": {3, 4}},
        np.arange(10.0),
        json.dumps,
        json.JSONDecoder,
        functools.partial(json.dumps, indent=2),
        (1, b"bytes", None),
    ):
        assert skyjoblib.hash(obj) == joblib.hash(obj)
        assert skyjoblib.hash(obj, hash_name="sha1") == joblib.hash(obj, hash_name="sha1")
    with pytest.raises(ValueError):
        skyjoblib.hash(1, hash_name="sha256")


def test_joblib_hash_fingerprints_what_travels_by_value(fingerprint_calls):
    closure = make_closure(3)
    with pytest.raises(Exception, match="pickle"):
        joblib.hash(closure)  # joblib alone: not found under its name
    assert skyjoblib.hash(closure) == skyjoblib.hash(make_closure(3))
    assert skyjoblib.hash(closure) != skyjoblib.hash(make_closure(4))
    account = make_local_class(0.1)
    assert skyjoblib.hash(account) != skyjoblib.hash(make_local_class(0.2))
    assert skyjoblib.hash(account(1).interest) != skyjoblib.hash(make_local_class(0.2)(1).interest)
    fingerprint_calls.clear()
    # Inside containers, and twice in one argument: one fingerprint, then a memo reference.
    skyjoblib.hash({"f": closure, "again": [closure, closure]})
    assert fingerprint_calls == [closure]


def test_joblib_install_patches_joblib_hash_and_uninstall_restores():
    import joblib.hashing

    originals = (joblib.hash, joblib.hashing.hash)
    skyjoblib.install()
    try:
        assert skyjoblib.installed()
        closure = make_closure(3)
        assert joblib.hash(closure) == joblib.hashing.hash(closure) == skyjoblib.hash(closure)
        skyjoblib.install(normalize_paths=False)
        assert joblib.hash(closure) == skyjoblib.hash(closure, normalize_paths=False)
    finally:
        skyjoblib.uninstall()
    assert (joblib.hash, joblib.hashing.hash) == originals
    assert not skyjoblib.installed()


def test_joblib_cache_keys_calls_by_the_function_too(tmp_path, fingerprint_calls):
    memory = joblib.Memory(tmp_path / "cache", verbose=0)
    namespace = {"OFFSET": 1}
    exec("def shifted(x):\n    return x + OFFSET\n", namespace)
    shifted = skyjoblib.cache(memory, namespace["shifted"])
    assert isinstance(shifted, skyjoblib.FingerprintedFunc)
    assert shifted(1) == 2
    namespace["OFFSET"] = 100
    assert shifted(1) == 101  # joblib alone returns the cached 2
    namespace["OFFSET"] = 1
    assert shifted.check_call_in_cache(1)

    times3 = skyjoblib.cache(memory, make_closure(3))
    times4 = skyjoblib.cache(memory, make_closure(4))
    assert times3(2)[0] == 6
    assert times4(2)[0] == 8  # one factory, two closures: their own results

    # A lambda argument needs no install() with cache(); the decorator form.
    @skyjoblib.cache(memory, ignore=["verbose"])
    def apply(fn, x, verbose=False):
        return fn(x)

    assert apply(make_closure(2), 5)[0] == 10
    assert apply.check_call_in_cache(make_closure(2), 5, verbose=True)
    assert not apply.check_call_in_cache(make_closure(3), 5)
    # No location: joblib stores nothing and cache() changes nothing.
    assert not isinstance(skyjoblib.cache(joblib.Memory(None), len), skyjoblib.FingerprintedFunc)


# --------------------------------------------------------------------------------------------
# Fresh interpreters, different PYTHONHASHSEED
# --------------------------------------------------------------------------------------------

DASK_TOKENS = """
import dask.base
import skypickle.integrations.dask as skydask

LABELS = {{"low", "high", "mid", "unknown", "n/a", "other"}}


def scaled(x):
    return x * 2 + OFFSET


def make_labeller(extra):
    names = LABELS | {{f"extra{{i}}" for i in range(extra)}}
    return lambda v: (v, sorted(names))


GRAPH = {{
    ("task", i): (eval(f"lambda x, k={{i}}: scaled(x) + k"), i, ("task", i - 1) if i else None)
    for i in range(200)
}}

if __name__ == "__main__":
    objects = {{
        "function": scaled,
        "closure": make_labeller(30),
        "class": Point,
        "graph": GRAPH,
        "instance": Point(3),
        "method": Point(3).moved,
        "partial": __import__("functools").partial(scaled, 1),
    }}
    stock = {{name: dask.base.tokenize(obj) for name, obj in objects.items()}}
    skydask.install_tokenize({kwargs})
    ours = {{name: dask.base.tokenize(obj) for name, obj in objects.items()}}
    report(stock=stock, ours=ours)
"""


def test_dask_tokens_agree_across_processes_and_hash_seeds(tmp_path):
    runs = [
        run_script(tmp_path, DASK_TOKENS.format(kwargs=""), {"PYTHONHASHSEED": seed})
        for seed in ("1", "2")
    ]
    assert runs[0]["ours"] == runs[1]["ours"]
    # The same objects by dask alone: a __main__ class has a random id, the set's order
    # follows the hash seed.
    assert runs[0]["stock"]["class"] != runs[1]["stock"]["class"]
    assert runs[0]["stock"]["closure"] != runs[1]["stock"]["closure"]
    # normalize_paths: the same tokens from another directory.
    other = tmp_path / "elsewhere"
    other.mkdir()
    moved = [
        run_script(d, DASK_TOKENS.format(kwargs="normalize_paths=True"), {"PYTHONHASHSEED": s})
        for d, s in ((tmp_path, "3"), (other, "4"))
    ]
    assert moved[0]["ours"] == moved[1]["ours"]


JOBLIB_MEMORY = """
import joblib
import skypickle.integrations.joblib as skyjoblib

TAGS = {{"red", "green", "blue", "cyan", "magenta", "yellow", "black", "white"}}


def apply(fn, x):
    with open("calls.log", "a") as log:
        log.write("apply\\n")
    return fn(x)


def make_tagger(k):
    tags = TAGS | {{f"t{{i}}" for i in range(20)}}
    return lambda v: (v * k, sorted(tags))


def tag_count(x):
    with open("calls.log", "a") as log:
        log.write("tag_count\\n")
    return x + len(TAGS)


if __name__ == "__main__":
    try:
        joblib.hash(make_tagger(1))
        alone = "hashed"
    except Exception as exc:
        alone = type(exc).__name__
    skyjoblib.install()
    memory = joblib.Memory("cache", verbose=0)
    cached_apply = memory.cache(apply)
    fn = make_tagger({k})
    hit_before = cached_apply.check_call_in_cache(fn, 3)
    value = cached_apply(fn, 3)
    counted = skyjoblib.cache(memory, tag_count)
    counted_hit_before = counted.check_call_in_cache(5)
    counted_value = counted(5)
    report(
        alone=alone,
        hit_before=hit_before,
        value=value[0],
        counted_hit_before=counted_hit_before,
        counted_value=counted_value,
    )
"""


def test_joblib_memory_finds_a_lambda_argument_across_processes(tmp_path):
    def run(k, seed):
        return run_script(tmp_path, JOBLIB_MEMORY.format(k=k), {"PYTHONHASHSEED": seed})

    def calls():
        return (tmp_path / "calls.log").read_text().split()

    first = run(3, "1")
    assert first["alone"] == "PicklingError"
    assert (first["hit_before"], first["value"]) == (False, 9)
    assert first["counted_hit_before"] is False
    assert calls() == ["apply", "tag_count"]
    second = run(3, "2")
    assert (second["hit_before"], second["value"]) == (True, 9)
    assert second["counted_hit_before"] is True
    assert calls() == ["apply", "tag_count"]
    # Another lambda (the factory's argument changed): a miss. The script's source changed,
    # not the cached functions' own source: joblib keeps their caches.
    third = run(4, "3")
    assert (third["hit_before"], third["value"]) == (False, 12)
    assert third["counted_hit_before"] is True
    assert calls() == ["apply", "tag_count", "apply"]
