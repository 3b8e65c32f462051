"""Benchmark engine behind ``python -m skypickle bench`` and ``benches/bench_dumps.py``.

Every case builds one object; each competitor (stdlib ``pickle``, ``cloudpickle`` when it is
importable, and ``skypickle``) pickles it with protocol 5.  For each case the engine

* checks correctness first: the competitor's output is loaded with the standard library's
  ``pickle.loads`` and compared *strictly* (types included) with the original, so a fast but
  wrong pickler is flagged rather than celebrated;
* times ``dumps`` with the competitors interleaved (A, B, C, A, B, C, ...) in time slices, so
  that noise on a busy machine is shared fairly, with the garbage collector disabled;
* times ``pickle.loads`` of each competitor's own output the same way;
* records the payload sizes (in-band bytes, plus out-of-band buffer bytes where used).

``run()`` returns a list of plain dicts (what ``--json`` prints); ``format_table()`` renders them.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import operator
import pickle
import platform
import statistics
import sys
import time
from typing import Any, Callable, NamedTuple

from . import _bench_code as codecases

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
# Objects used by the cases
# --------------------------------------------------------------------------------------------


class Point:
    """A plain, importable class: pickled by reference by every competitor."""

    def __init__(self, x, y, label):
        self.x = x
        self.y = y
        self.label = label

    def __repr__(self):
        return f"Point({self.x!r}, {self.y!r}, {self.label!r})"


def _have_numpy() -> bool:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def make_dicts_20k():
    return [
        {"id": i, "name": f"user{i}", "score": i * 0.5, "active": i % 2 == 0} for i in range(20_000)
    ]


def make_instances_10k():
    return [Point(i, i * 0.25, f"p{i}") for i in range(10_000)]


def make_partials_1k():
    return [functools.partial(operator.add, i) for i in range(1_000)]


def make_numpy_8mb():
    import numpy as np

    return np.arange(1_000_000, dtype=np.float64)


def make_bytes_1mb():
    return bytes(range(256)) * 4096


def make_str_list():
    words = ["alpha", "beta", "gamma", "ünïcødé", "日本語", "emoji 🐍", "", "x" * 300]
    return [f"{words[i % len(words)]}-{i}" for i in range(50_000)]


def make_nested():
    shared = ["shared", 1, 2.5, None]

    def node(depth, index):
        if depth == 0:
            return {
                "leaf": index,
                "value": index * 1.5,
                "tags": ("a", "b", index % 7),
                "flags": {True, False} if index % 2 else frozenset({index}),
                "blob": b"\x00\x01" * (index % 5),
                "big": 2**70 + index,
                "neg": -index - 1,
                "nothing": None,
                "shared": shared,
            }
        return {
            "depth": depth,
            "name": f"node-{depth}-{index}",
            "children": [node(depth - 1, index * 4 + k) for k in range(4)],
            "meta": {"weights": [index / 3, -index, 1e300], "ok": index % 3 == 0},
        }

    return {"version": 3, "root": node(6, 0), "shared_again": shared}


def make_ints_floats():
    out = []
    for i in range(100_000):
        kind = i % 5
        if kind == 0:
            out.append(i % 256)  # fits one byte
        elif kind == 1:
            out.append(i * 7)  # two or four bytes
        elif kind == 2:
            out.append(-i * 100_003)  # negative, 32-bit and beyond
        elif kind == 3:
            out.append(i << 33)  # needs more than 32 bits
        else:
            out.append(i / 3)
    return out


# --------------------------------------------------------------------------------------------
# Strict comparison: equal values *and* equal types, recursively
# --------------------------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """True if ``b`` is a faithful copy of ``a``: ``1 == True == 1.0`` does not pass here."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        # Key order is part of a dict's value for a pickle round trip.
        for (ka, va), (kb, vb) in zip(a.items(), b.items()):
            if not same(ka, kb) or not same(va, vb):
                return False
        return True
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, Point):
        return same(a.__dict__, b.__dict__)
    if isinstance(a, functools.partial):
        # Not via ``a.__dict__``: reading it would create an empty dict on the original object,
        # which then changes its pickle.  ``__reduce__`` reports func, args, keywords and dict.
        return a.func is b.func and same(a.__reduce__(), b.__reduce__())
    return a == b


def same_arrays(a, b) -> bool:
    import numpy as np

    return (
        type(a) is type(b)
        and a.dtype == b.dtype
        and a.shape == b.shape
        and bool(np.array_equal(a, b))
    )


def same_nested(a, b) -> bool:
    # The shared list must come back as one object, referenced from everywhere (memo at work).
    if not same(a, b):
        return False
    first = b["shared_again"]

    def leaves(n):
        if "leaf" in n:
            yield n
        else:
            for c in n["children"]:
                yield from leaves(c)

    return all(leaf["shared"] is first for leaf in leaves(b["root"]))


def same_partials(a, b) -> bool:
    return same(a, b) and all(p(1) == i + 1 for i, p in enumerate(b))


# --------------------------------------------------------------------------------------------
# Cases and competitors
# --------------------------------------------------------------------------------------------


class Case(NamedTuple):
    name: str
    description: str
    build: Callable[[], Any]
    check: Callable[[Any, Any], bool]
    out_of_band: bool = False
    needs_numpy: bool = False
    # Code by value: stdlib pickle cannot take part; skypickle is compared with cloudpickle.
    code: bool = False


CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case("dicts_20k", "20,000 small dicts (4 keys)", make_dicts_20k, same),
        Case("instances_10k", "10,000 instances of a plain class", make_instances_10k, same),
        Case("partials_1k", "1,000 partial(operator.add, i)", make_partials_1k, same_partials),
        Case("numpy_8mb", "float64 array, 8 MB, in-band", make_numpy_8mb, same_arrays, False, True),
        Case(
            "numpy_8mb_oob",
            "float64 array, 8 MB, buffer_callback",
            make_numpy_8mb,
            same_arrays,
            True,
            True,
        ),
        Case("bytes_1mb", "one 1 MiB bytes object", make_bytes_1mb, same),
        Case("str_list", "50,000 short str (some non-ASCII)", make_str_list, same),
        Case("nested", "deep dict/list tree, shared leaf", make_nested, same_nested),
        Case("ints_floats", "100,000 mixed ints and floats", make_ints_floats, same),
        *[
            Case(name, description, build, check, code=True)
            for name, description, build, check in (
                ("lambda", "a __main__ lambda", codecases.make_lambda, codecases.check_lambda),
                (
                    "closure",
                    "closure over globals and modules",
                    codecases.make_closure,
                    codecases.check_closure,
                ),
                (
                    "class",
                    "__main__ class with methods",
                    codecases.make_class,
                    codecases.check_class,
                ),
                (
                    "dataclass_enum",
                    "__main__ dataclass + enum",
                    codecases.make_dataclass_enum,
                    codecases.check_dataclass_enum,
                ),
                (
                    "task_graph",
                    "2,000 tasks, one lambda each",
                    codecases.make_task_graph,
                    codecases.check_task_graph,
                ),
                (
                    "dyn_instances_10k",
                    "10,000 instances of a __main__ class",
                    codecases.make_dynamic_instances,
                    codecases.check_dynamic_instances,
                ),
            )
        ],
    ]
}

DATA_CASES = [name for name, case in CASES.items() if not case.code]
CODE_CASES = [name for name, case in CASES.items() if case.code]


class Competitor(NamedTuple):
    name: str
    version: str
    dumps: Callable[..., bytes]


def competitors() -> list[Competitor]:
    """stdlib pickle always; cloudpickle and skypickle when they can be imported."""
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
        out.append(Competitor("skypickle", getattr(skypickle, "__version__", "?"), skypickle.dumps))
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
    thunks: dict[str, Callable[[], Any]], target_s: float, rounds: int, repeat: int | None
) -> dict[str, list[float]]:
    """Per-call times in ns, per competitor.

    Competitors take turns: in each round every competitor runs for about
    ``target_s / rounds`` seconds (at least one sample), so all of them see the same machine
    noise.  With ``repeat`` set, each round is exactly one sample per competitor instead.
    A sample times a batch of calls when one call is shorter than ``MIN_SAMPLE_NS``.
    """
    pc = time.perf_counter_ns
    names = list(thunks)
    # Estimate one call's cost: the best of three warm-up calls (one slow call from a noisy
    # neighbour would otherwise shrink the number of samples per round).
    batch: dict[str, int] = {}
    per_round: dict[str, int] = {}
    for name in names:
        fn = thunks[name]
        est = None
        for _ in range(3):
            t0 = pc()
            fn()
            dt = max(pc() - t0, 1)
            est = dt if est is None else min(est, dt)
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
    if case.needs_numpy and not _have_numpy():
        result["skipped"] = "numpy is not installed"
        _progress(progress, f"{case.name}: skipped (numpy is not installed)")
        return result

    obj = case.build()
    reference: bytes | None = None
    dumps_thunks: dict[str, Callable[[], Any]] = {}
    loads_thunks: dict[str, Callable[[], Any]] = {}

    # 1. One call each: the output to check, measure and later load.
    for comp in comps:
        if case.code and comp.name == "pickle":
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
    return result


def run(
    cases: list[str] | None = None,
    quick: bool = False,
    progress: bool = True,
    repeat: int | None = None,
) -> list[dict]:
    """Run the named cases (all by default) and return one result dict per case."""
    names: list[str] = []
    for name in cases or list(CASES):
        # Two group names select whole families: "data" (vs pickle) and "code" (by value).
        names += {"data": DATA_CASES, "code": CODE_CASES}.get(name, [name])
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    comps = competitors()
    _progress(progress, "competitors: " + ", ".join(f"{c.name} {c.version}" for c in comps))
    results = []
    for i, name in enumerate(names, 1):
        _progress(progress, f"[{i}/{len(names)}] {name}")
        results.append(run_case(CASES[name], comps, quick=quick, repeat=repeat, progress=progress))
    return results


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100_000:
        return f"{v / 1e3:,.0f}ms"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def _fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f}M"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.0f}K"
    return f"{n}B"


def _fmt_sizes(comps: dict[str, dict]) -> str:
    sizes = [c.get("size") for c in comps.values()]
    oob = [c.get("oob_bytes") for c in comps.values()]
    text = _fmt_size(sizes[0]) if len(set(sizes)) == 1 else "/".join(_fmt_size(s) for s in sizes)
    if any(oob):
        text += " +" + (
            _fmt_size(oob[0]) if len(set(oob)) == 1 else "/".join(_fmt_size(s) for s in oob)
        )
        text += " oob"
    return text


def _fmt_correct(comps: dict[str, dict]) -> str:
    wrong = [n for n, c in comps.items() if not c.get("correct") and "raised" not in c["error"]]
    failed = [n for n, c in comps.items() if not c.get("correct") and "raised" in c["error"]]
    parts = (["WRONG: " + ",".join(wrong)] if wrong else []) + (
        ["FAILED: " + ",".join(failed)] if failed else []
    )
    return "; ".join(parts) or "ok"


def format_table(results: list[dict]) -> str:
    """A plain-text table: per-call dumps time (min / median, µs), ratios, sizes, correctness."""
    names: list[str] = []
    for r in results:
        for n in r["competitors"]:
            if n not in names:
                names.append(n)
    short = {"pickle": "pickle", "cloudpickle": "cloudpickle", "skypickle": "skypickle"}
    header = ["case"] + [f"{short.get(n, n)} µs" for n in names]
    header += ["sky/pickle", "sky/cloud", "loads s/p", "loads s/c", "size", "correct"]
    rows = []
    for r in results:
        if r["skipped"]:
            rows.append([r["case"]] + ["-"] * (len(header) - 2) + [f"skipped: {r['skipped']}"])
            continue
        comps = r["competitors"]
        row = [r["case"]]
        for n in names:
            c = comps.get(n)
            if c is None or c.get("dumps_min_us") is None:
                row.append("error" if c and c.get("error") else "-")
            else:
                row.append(f"{_fmt_us(c['dumps_min_us'])} / {_fmt_us(c['dumps_median_us'])}")
        ratios = r["ratios"]
        row += [
            _fmt_ratio(ratios.get("dumps_min_sky_vs_pickle")),
            _fmt_ratio(ratios.get("dumps_min_sky_vs_cloudpickle")),
            _fmt_ratio(ratios.get("loads_min_sky_vs_pickle")),
            _fmt_ratio(ratios.get("loads_min_sky_vs_cloudpickle")),
            _fmt_sizes(comps),
            _fmt_correct(comps),
        ]
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    # Left-align the text columns (case, size, correct); right-align the numbers.
    left = {0, len(header) - 2, len(header) - 1}

    def line(cells):
        return "  ".join(
            str(c).ljust(w) if i in left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    notes = [
        "",
        "dumps per call, protocol 5: min / median in µs (lower is better); "
        "ratios are of the minima (< 1.00x: skypickle is faster).",
        "loads s/p, s/c: pickle.loads of skypickle's output vs of pickle's (cloudpickle's) "
        "output.  Code cases (by value) have no stdlib pickle column.  "
        "size: pickle payload (pickle/cloudpickle/skypickle if they differ).",
    ]
    for r in results:
        for name, c in r["competitors"].items():
            if c.get("error"):
                notes.append(f"{r['case']}: {name}: {c['error']}")
    return "\n".join(out + notes)


def all_correct(results: list[dict]) -> bool:
    return all(c.get("correct") for r in results for c in r["competitors"].values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="skypickle bench",
        description="Time dumps/loads of skypickle against pickle and cloudpickle (protocol 5).",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_from_args(args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="shorter timing (about 5x faster)")
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    parser.add_argument(
        "--cases",
        default=None,
        help="comma-separated case names, or the groups 'data' and 'code' (default: all): "
        + ",".join(CASES),
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        metavar="N",
        help="exactly N timed samples per competitor and phase instead of a time budget",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")


def run_from_args(args: argparse.Namespace) -> int:
    cases = [c.strip() for c in args.cases.split(",") if c.strip()] if args.cases else None
    if args.repeat is not None and args.repeat < 1:
        print("--repeat must be at least 1", file=sys.stderr)
        return 2
    try:
        results = run(cases, quick=args.quick, progress=not args.no_progress, repeat=args.repeat)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_table(results))
    if not all_correct(results):
        print("error: some competitor produced a wrong or failing pickle", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
