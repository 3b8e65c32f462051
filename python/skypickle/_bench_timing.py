"""The benchmark's timing engine.

Each competitor (stdlib ``pickle``, ``cloudpickle`` when it is importable, and ``skypickle``)
pickles each case's object with protocol 5.  For each case the engine

* checks correctness first: the competitor's output is loaded with the standard library's
  ``pickle.loads`` and compared *strictly* (types included) with the original, so a fast but
  wrong pickler is flagged rather than celebrated;
* times ``dumps`` with the competitors interleaved (A, B, C, A, B, C, ...) in time slices, so
  that noise on a busy machine is shared fairly, with the garbage collector disabled;
* times ``pickle.loads`` of each competitor's own output the same way;
* records the payload sizes (in-band bytes, plus out-of-band buffer bytes where used).

skypickle also runs in deterministic mode (``sky-det``: ``dumps(..., deterministic=True)``) on
every case, against its normal mode (dumps only). The ``fingerprint`` cases
(``_bench_fingerprint``) time hashers instead of picklers, with the same interleaving.

``run()`` returns a list of plain dicts (what ``--json`` prints); ``_bench_report`` renders them.
"""

from __future__ import annotations

import functools
import gc
import math
import pickle
import platform
import statistics
import sys
import time
from typing import Any, Callable, NamedTuple

from . import _bench_fingerprint
from ._bench_cases import CASES, CODE_CASES, DATA_CASES, Case
from ._bench_data import importable
from ._bench_fingerprint import CASES as FINGERPRINT_CASES

PROTOCOL = 5

# Per competitor and per case: how long each timing phase (dumps, loads) should run, and how
# many interleaved rounds that time is cut into.
TARGET_S = 0.3
QUICK_TARGET_S = 0.06
ROUNDS = 12
QUICK_ROUNDS = 4
# A single timed sample should last at least this long; faster calls are timed in batches.
MIN_SAMPLE_NS = 20_000


# --------------------------------------------------------------------------------------------
# Competitors
# --------------------------------------------------------------------------------------------


#: The competitor that is skypickle writing for cloudpickle loaders (``compat="cloudpickle"``).
COMPAT = "sky-compat"
#: skypickle in deterministic mode (``deterministic=True``): dumps timed on every case, against
#: the normal mode; its loads are pickle's, of the same opcodes, and are not timed again.
DETERMINISTIC = "sky-det"


class Competitor(NamedTuple):
    name: str
    version: str
    dumps: Callable[..., bytes]


def competitors() -> list[Competitor]:
    """stdlib pickle always; cloudpickle and skypickle when they can be imported, and skypickle
    writing cloudpickle-compatible payloads (``compat="cloudpickle"``, timed on code cases)."""
    out = [Competitor("pickle", f"C, Python {platform.python_version()}", pickle.dumps)]
    try:
        import cloudpickle
    except ImportError:
        pass
    else:
        out.append(Competitor("cloudpickle", cloudpickle.__version__, cloudpickle.dumps))
    try:
        import skypickle
    except ImportError as exc:
        print(f"warning: skypickle is not importable ({exc}); timing without it", file=sys.stderr)
    else:
        version = getattr(skypickle, "__version__", "?")
        out.append(Competitor("skypickle", version, skypickle.dumps))
        out.append(
            Competitor(COMPAT, version, functools.partial(skypickle.dumps, compat="cloudpickle"))
        )
        out.append(
            Competitor(
                DETERMINISTIC, version, functools.partial(skypickle.dumps, deterministic=True)
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def _dumps_thunk(comp: Competitor, obj: Any, oob: bool) -> Callable[[], Any]:
    dumps = comp.dumps
    if oob:

        def call():
            buffers = []
            return dumps(obj, protocol=PROTOCOL, buffer_callback=buffers.append)

    else:

        def call():
            return dumps(obj, protocol=PROTOCOL)

    return call


def _loads_thunk(data: bytes, buffers: list | None) -> Callable[[], Any]:
    loads = pickle.loads
    if buffers is not None:
        return lambda: loads(data, buffers=buffers)
    return lambda: loads(data)


def _time_interleaved(
    thunks: dict[str, Callable[[], Any]],
    target_s: float,
    rounds: int,
    repeat: int | None,
    contexts: dict[str, tuple[Callable[[], Any] | None, Callable[[], Any] | None]] | None = None,
) -> dict[str, list[float]]:
    """Per-call times in ns, per competitor.

    Competitors take turns: in each round every competitor runs for about
    ``target_s / rounds`` seconds (at least one sample), so all of them see the same machine
    noise.  With ``repeat`` set, each round is exactly one sample per competitor instead.
    A sample times a batch of calls when one call is shorter than ``MIN_SAMPLE_NS``.
    ``contexts``: per competitor, ``(enter, exit)`` called around each of its turns, untimed
    (the fingerprint cases switch dask's tokenize registration there).
    """
    pc = time.perf_counter_ns
    names = list(thunks)
    contexts = contexts or {}

    def enter(name: str) -> None:
        fn = contexts.get(name, (None, None))[0]
        if fn is not None:
            fn()

    def leave(name: str) -> None:
        fn = contexts.get(name, (None, None))[1]
        if fn is not None:
            fn()

    # Estimate one call's cost: the best of three warm-up calls (one slow call from a noisy
    # neighbour would otherwise shrink the number of samples per round).
    batch: dict[str, int] = {}
    per_round: dict[str, int] = {}
    for name in names:
        fn = thunks[name]
        est = None
        enter(name)
        try:
            for _ in range(3):
                t0 = pc()
                fn()
                dt = max(pc() - t0, 1)
                est = dt if est is None else min(est, dt)
        finally:
            leave(name)
        batch[name] = max(1, math.ceil(MIN_SAMPLE_NS / est))
        if repeat is None:
            slice_ns = target_s * 1e9 / rounds
            per_round[name] = max(1, round(slice_ns / (est * batch[name])))
        else:
            per_round[name] = 1
    n_rounds = repeat if repeat is not None else rounds
    samples: dict[str, list[float]] = {n: [] for n in names}
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(n_rounds):
            # Rotate who goes first so no competitor always runs right after the same one.
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                fn = thunks[name]
                b = batch[name]
                out = samples[name]
                enter(name)
                try:
                    for _ in range(per_round[name]):
                        if b == 1:
                            t0 = pc()
                            fn()
                            out.append(pc() - t0)
                        else:
                            t0 = pc()
                            for _ in range(b):
                                fn()
                            out.append((pc() - t0) / b)
                finally:
                    leave(name)
            # Garbage from loads (e.g. 20k dicts) is freed by refcounting; cycles wait till now.
            gc.collect()
    finally:
        if was_enabled:
            gc.enable()
    return samples


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _progress(enabled: bool, msg: str) -> None:
    if enabled:
        print(msg, file=sys.stderr, flush=True)


def run_case(
    case: Case,
    comps: list[Competitor],
    quick: bool = False,
    repeat: int | None = None,
    progress: bool = True,
) -> dict:
    target = QUICK_TARGET_S if quick else TARGET_S
    rounds = QUICK_ROUNDS if quick else ROUNDS
    result: dict[str, Any] = {
        "case": case.name,
        "description": case.description,
        "protocol": PROTOCOL,
        "out_of_band": case.out_of_band,
        "skipped": None,
        "competitors": {},
        "ratios": {},
    }
    if case.requires is not None and not importable(case.requires):
        result["skipped"] = f"{case.requires} is not installed"
        _progress(progress, f"{case.name}: skipped ({case.requires} is not installed)")
        return result

    obj = case.build()
    reference: bytes | None = None
    dumps_thunks: dict[str, Callable[[], Any]] = {}
    loads_thunks: dict[str, Callable[[], Any]] = {}

    # 1. One call each: the output to check, measure and later load.
    for comp in comps:
        if case.code and comp.name == "pickle":
            continue
        # Without by-value objects compat output is skypickle's own: timed on code cases only.
        if not case.code and comp.name == COMPAT:
            continue
        _progress(progress, f"{case.name}: {comp.name}: dumps + check")
        entry: dict[str, Any] = {
            "version": comp.version,
            "correct": False,
            "error": None,
            "size": None,
            "oob_bytes": None,
            "same_bytes_as_pickle": None,
        }
        result["competitors"][comp.name] = entry
        buffers: list | None = [] if case.out_of_band else None
        try:
            if buffers is not None:
                data = comp.dumps(obj, protocol=PROTOCOL, buffer_callback=buffers.append)
            else:
                data = comp.dumps(obj, protocol=PROTOCOL)
        except Exception as exc:  # a competitor that cannot pickle the case is reported, not fatal
            entry["error"] = f"dumps raised {type(exc).__name__}: {exc}"
            continue
        entry["size"] = len(data)
        if buffers is not None:
            entry["oob_bytes"] = sum(memoryview(b).nbytes for b in buffers)
        if comp.name == "pickle":
            reference = data
        elif reference is not None:
            entry["same_bytes_as_pickle"] = data == reference
        try:
            back = (
                pickle.loads(data, buffers=buffers) if buffers is not None else pickle.loads(data)
            )
        except Exception as exc:
            entry["error"] = f"pickle.loads raised {type(exc).__name__}: {exc}"
            continue
        try:
            entry["correct"] = bool(case.check(obj, back))
        except Exception as exc:
            entry["error"] = f"comparison raised {type(exc).__name__}: {exc}"
        if not entry["correct"] and entry["error"] is None:
            entry["error"] = "pickle.loads(output) differs from the original"
        del back
        dumps_thunks[comp.name] = _dumps_thunk(comp, obj, case.out_of_band)
        if comp.name != DETERMINISTIC:
            loads_thunks[comp.name] = _loads_thunk(data, buffers)

    # 2. Interleaved timing of dumps, then of loads (of each competitor's own output).
    for phase, thunks in (("dumps", dumps_thunks), ("loads", loads_thunks)):
        if not thunks:
            continue
        _progress(progress, f"{case.name}: timing {phase} ({', '.join(thunks)}, interleaved)")
        samples = _time_interleaved(thunks, target, rounds, repeat)
        for name, ns in samples.items():
            entry = result["competitors"][name]
            entry[f"{phase}_min_us"] = min(ns) / 1e3
            entry[f"{phase}_median_us"] = statistics.median(ns) / 1e3
            entry[f"{phase}_samples"] = len(ns)
    del dumps_thunks, loads_thunks, obj
    gc.collect()

    comp_results = result["competitors"]
    sky = comp_results.get("skypickle", {})
    for phase in ("dumps", "loads"):
        for other in ("pickle", "cloudpickle"):
            for stat in ("min", "median"):
                key = f"{phase}_{stat}_us"
                result["ratios"][f"{phase}_{stat}_sky_vs_{other}"] = _ratio(
                    sky.get(key), comp_results.get(other, {}).get(key)
                )
        for stat in ("min", "median"):
            key = f"{phase}_{stat}_us"
            result["ratios"][f"{phase}_{stat}_compat_vs_cloudpickle"] = _ratio(
                comp_results.get(COMPAT, {}).get(key),
                comp_results.get("cloudpickle", {}).get(key),
            )
    for stat in ("min", "median"):
        key = f"dumps_{stat}_us"
        result["ratios"][f"dumps_{stat}_det_vs_sky"] = _ratio(
            comp_results.get(DETERMINISTIC, {}).get(key), sky.get(key)
        )
    return result


def run(
    cases: list[str] | None = None,
    quick: bool = False,
    progress: bool = True,
    repeat: int | None = None,
) -> list[dict]:
    """Run the named cases (all by default) and return one result dict per case."""
    names: list[str] = []
    groups = {"data": DATA_CASES, "code": CODE_CASES, "fingerprint": list(FINGERPRINT_CASES)}
    for name in cases or [*CASES, *FINGERPRINT_CASES]:
        # Group names select whole families: "data" (vs pickle), "code" (by value) and
        # "fingerprint" (hashers: skypickle.fingerprint vs dask's tokenize).
        names += groups.get(name, [name])
    known = [*CASES, *FINGERPRINT_CASES]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; known: {', '.join(known)}")
    comps = competitors()
    _progress(progress, "competitors: " + ", ".join(f"{c.name} {c.version}" for c in comps))
    hashers = None
    results = []
    for i, name in enumerate(names, 1):
        _progress(progress, f"[{i}/{len(names)}] {name}")
        if name in FINGERPRINT_CASES:
            if hashers is None:
                hashers = _bench_fingerprint.hashers()
                _progress(
                    progress, "hashers: " + ", ".join(f"{h.name} {h.version}" for h in hashers)
                )
            results.append(
                _bench_fingerprint.run_case(
                    FINGERPRINT_CASES[name],
                    hashers,
                    _time_interleaved,
                    QUICK_TARGET_S if quick else TARGET_S,
                    QUICK_ROUNDS if quick else ROUNDS,
                    repeat,
                    functools.partial(_progress, progress),
                )
            )
            continue
        results.append(run_case(CASES[name], comps, quick=quick, repeat=repeat, progress=progress))
    return results
