"""The benchmark's ``fingerprint`` cases: hashing code the way dask's ``tokenize`` does.

Each case's object (a ``__main__`` lambda, a ``__main__`` class, a closure, a Dask-style graph
of 2,000 lambdas: the builders of ``_bench_code``) is hashed, interleaved in one process, by

* ``fingerprint``: ``skypickle.fingerprint(obj)``;
* ``tokenize``: ``dask.base.tokenize(obj)`` as dask does it alone: skypickle's registration is
  checked to be absent during each of its samples;
* ``tokenize+sky``: the same call with ``integrations.dask.install_tokenize()`` in force
  (installed before each of its samples, uninstalled after: the switch is not timed);
* ``sha256(cloudpickle)``: ``hashlib.sha256(cloudpickle.dumps(obj)).hexdigest()``.

What each measures is what a user gets when tokenizing the same object again: dask 2026.8
keeps no token cache for functions or classes, so every ``tokenize`` call pickles again; a
dask that has a per-function cache (``function_cache``, in older releases) has it emptied
before each ``tokenize`` sample, so that it cannot serve a cached token. The caches every
competitor keeps per code object (cloudpickle's code-globals cache, skypickle's
``CodeInfo``) are warm, as for any code tokenized twice: tokenizing 300 fresh lambdas once
each cost 20-40% more per call than one lambda again, for every competitor alike.

Correctness here is determinism in this process: each competitor gives the same value twice,
and ``tokenize`` differs from ``tokenize+sky`` (proof that the switch switches).
"""

from __future__ import annotations

import hashlib
import importlib
import statistics
from typing import Any, Callable, NamedTuple

from . import _bench_code as codecases


class FingerprintCase(NamedTuple):
    name: str
    description: str
    build: Callable[[], Any]


CASES: dict[str, FingerprintCase] = {
    c.name: c
    for c in [
        FingerprintCase("fp_lambda", "a __main__ lambda", codecases.make_lambda),
        FingerprintCase("fp_closure", "closure over globals and modules", codecases.make_closure),
        FingerprintCase("fp_class", "__main__ class with methods", codecases.make_class),
        FingerprintCase("fp_task_graph", "2,000 tasks, one lambda each", codecases.make_task_graph),
    ]
}

FINGERPRINT = "fingerprint"
TOKENIZE = "tokenize"
TOKENIZE_SKY = "tokenize+sky"
SHA_CLOUDPICKLE = "sha256(cloudpickle)"


class Hasher(NamedTuple):
    name: str
    version: str
    hash: Callable[[Any], str]
    # Called before and after each of this competitor's turns (not timed).
    enter: Callable[[], None] | None = None
    exit: Callable[[], None] | None = None


def _stock_tokenize_enter() -> None:
    from .integrations import dask as skydask

    skydask.uninstall_tokenize()
    import dask.base

    # Older dask cached function tokens by function object: emptied, so that each sample
    # measures the pickling users get for a function not tokenized before.
    for module_name in ("dask.tokenize", "dask.base"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # dask before 2024.9 has no dask.tokenize
            continue
        cache = getattr(module, "function_cache", None)
        if isinstance(cache, dict):
            cache.clear()
    handler = dask.base.normalize_token.dispatch(type(_stock_tokenize_enter))
    if handler is skydask._normalize_by_fingerprint:
        raise RuntimeError("skypickle's tokenize registration is still in force")


def _sky_tokenize_enter() -> None:
    from .integrations import dask as skydask

    skydask.install_tokenize()


def _sky_tokenize_exit() -> None:
    from .integrations import dask as skydask

    skydask.uninstall_tokenize()


def hashers() -> list[Hasher]:
    import skypickle

    out = [Hasher(FINGERPRINT, skypickle.__version__, skypickle.fingerprint)]
    try:
        import dask
        import dask.base
    except ImportError:
        pass
    else:
        out.append(Hasher(TOKENIZE, dask.__version__, dask.base.tokenize, _stock_tokenize_enter))
        out.append(
            Hasher(
                TOKENIZE_SKY,
                dask.__version__,
                dask.base.tokenize,
                _sky_tokenize_enter,
                _sky_tokenize_exit,
            )
        )
    try:
        import cloudpickle
    except ImportError:
        pass
    else:
        dumps = cloudpickle.dumps

        def sha_cloudpickle(obj):
            return hashlib.sha256(dumps(obj)).hexdigest()

        out.append(Hasher(SHA_CLOUDPICKLE, cloudpickle.__version__, sha_cloudpickle))
    return out


def _in_context(hasher: Hasher, fn: Callable[[], Any]) -> Any:
    if hasher.enter is not None:
        hasher.enter()
    try:
        return fn()
    finally:
        if hasher.exit is not None:
            hasher.exit()


def run_case(
    case: FingerprintCase,
    competitors: list[Hasher],
    time_interleaved: Callable[..., dict[str, list[float]]],
    target: float,
    rounds: int,
    repeat: int | None,
    progress: Callable[[str], None],
) -> dict:
    result: dict[str, Any] = {
        "case": case.name,
        "kind": "fingerprint",
        "description": case.description,
        "skipped": None,
        "competitors": {},
        "ratios": {},
    }
    obj = case.build()
    thunks: dict[str, Callable[[], Any]] = {}
    contexts: dict[str, tuple[Any, Any]] = {}
    values: dict[str, str] = {}
    for hasher in competitors:
        progress(f"{case.name}: {hasher.name}: hash twice")
        entry: dict[str, Any] = {"version": hasher.version, "correct": False, "error": None}
        result["competitors"][hasher.name] = entry
        try:
            first, second = _in_context(hasher, lambda h=hasher: (h.hash(obj), h.hash(obj)))
        except Exception as exc:  # a competitor that cannot hash the case is reported
            entry["error"] = f"raised {type(exc).__name__}: {exc}"
            continue
        entry["correct"] = first == second
        if not entry["correct"]:
            entry["error"] = "two calls gave different values"
        values[hasher.name] = first
        thunks[hasher.name] = lambda h=hasher.hash: h(obj)
        contexts[hasher.name] = (hasher.enter, hasher.exit)
    if TOKENIZE in values and TOKENIZE_SKY in values and values[TOKENIZE] == values[TOKENIZE_SKY]:
        entry = result["competitors"][TOKENIZE_SKY]
        entry["correct"] = False
        entry["error"] = "same token as dask alone: the registration was not in force"
    if thunks:
        progress(f"{case.name}: timing ({', '.join(thunks)}, interleaved)")
        samples = time_interleaved(thunks, target, rounds, repeat, contexts)
        for name, ns in samples.items():
            entry = result["competitors"][name]
            entry["min_us"] = min(ns) / 1e3
            entry["median_us"] = statistics.median(ns) / 1e3
            entry["samples"] = len(ns)
    comps = result["competitors"]

    def ratio(a: str, b: str) -> float | None:
        x, y = comps.get(a, {}).get("min_us"), comps.get(b, {}).get("min_us")
        return None if x is None or not y else x / y

    result["ratios"] = {
        "fingerprint_vs_tokenize": ratio(FINGERPRINT, TOKENIZE),
        "tokenize_sky_vs_tokenize": ratio(TOKENIZE_SKY, TOKENIZE),
        "fingerprint_vs_sha_cloudpickle": ratio(FINGERPRINT, SHA_CLOUDPICKLE),
    }
    return result
