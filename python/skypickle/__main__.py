"""``python -m skypickle`` (also the ``skypickle`` command): ``demo`` (what ``make demo`` runs),
``bench`` and ``inspect``.

The demo's closure, lambda and class are defined at the top of this module, which is
``__main__`` when run as ``python -m skypickle``: the workers cannot import them, so they travel
by value, as a script's or a notebook's would.
"""

from __future__ import annotations

import argparse
import io
import pickle
import platform
import sys
import time

import skypickle

from . import (
    _bench,
    _bench_cases,
    _bench_data,
    _bench_report,
    _bench_timing,
    _explain,
    _inspect,
)

# --------------------------------------------------------------------------------------------
# What the demo ships: defined in __main__, so workers cannot import any of it
# --------------------------------------------------------------------------------------------

OFFSET = 10


def make_scaler(k):
    """A closure over ``k`` and the global ``OFFSET``."""

    def scale(v):
        return v * k + OFFSET

    return scale


class Point:
    """A class defined in ``__main__``: its instances come back from the workers."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def moved(self, dx, dy):
        return Point(self.x + dx, self.y + dy)

    def __repr__(self):
        return f"Point({self.x}, {self.y})"


def _worker_pickler():
    import sys as _sys

    return _sys.modules["distributed.protocol.pickle"].cloudpickle.__name__


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} B"


def _orders() -> dict:
    """A dict of records, the kind of thing a task ships to a worker: order id -> order."""
    statuses = ["new", "paid", "shipped", "delivered", "returned"]
    cities = ["Lyon", "Zürich", "São Paulo", "Kraków", "Osaka"]
    orders = {}
    for i in range(5_000):
        orders[f"ORD-{100_000 + i}"] = {
            "customer": {
                "id": 7_000 + i % 900,
                "name": f"customer {i % 900}",
                "city": cities[i % 5],
            },
            "items": [
                (f"SKU-{(i * 7 + k) % 1_000:04d}", 1 + k, round(9.99 + k * 3.5, 2))
                for k in range(i % 4 + 1)
            ],
            "total": round(sum(9.99 + k * 3.5 for k in range(i % 4 + 1)), 2),
            "status": statuses[i % 5],
            "paid": i % 5 != 0,
            "note": None if i % 3 else "leave at the door",
        }
    return orders


def _payloads() -> list[tuple[str, object, bool]]:
    """(label, object, out_of_band) triples shown by the demo."""
    items: list[tuple[str, object, bool]] = [
        ("user records: list of 20,000 dicts", _bench_data.make_dicts_20k(), False),
        ("orders: dict of 5,000 nested records", _orders(), False),
        ("mixed ints and floats: list of 100,000", _bench_data.make_ints_floats(), False),
    ]
    if _bench_data.have_numpy():
        arr = _bench_data.make_numpy_8mb()
        items.append(("numpy float64 array, 1M items, in-band", arr, False))
        items.append(("same array, out-of-band (buffer_callback)", arr, True))
    return items


def _round_trips() -> bool:
    print("   Round trips: skypickle.dumps -> the standard library's pickle.loads")
    print("   (protocol 5; every result is compared with the original, types included)")
    print()
    rows = [("payload", "skypickle", "pickle", "dumps sky", "dumps pickle", "round trip")]
    ok = True
    for label, obj, oob in _payloads():
        check = (
            _bench_data.same_arrays if oob or type(obj).__module__ == "numpy" else _bench_data.same
        )
        buffers: list = []
        kwargs = {"buffer_callback": buffers.append} if oob else {}
        try:
            t0 = time.perf_counter()
            data = skypickle.dumps(obj, protocol=5, **kwargs)
            t_sky = time.perf_counter() - t0
            back = pickle.loads(data, buffers=buffers) if oob else pickle.loads(data)
            equal = check(obj, back)
        except Exception as exc:
            rows.append((label, "-", "-", "-", "-", f"FAILED: {type(exc).__name__}: {exc}"))
            ok = False
            continue
        ref_buffers: list = []
        ref_kwargs = {"buffer_callback": ref_buffers.append} if oob else {}
        t0 = time.perf_counter()
        ref = pickle.dumps(obj, protocol=5, **ref_kwargs)
        t_pickle = time.perf_counter() - t0
        sky_size = _size(len(data))
        ref_size = _size(len(ref))
        if oob:
            sky_size += f" + {len(buffers)} buf {_size(sum(memoryview(b).nbytes for b in buffers))}"
            ref_size += f" + {len(ref_buffers)} buf"
        rows.append(
            (
                label,
                sky_size,
                ref_size,
                f"{t_sky * 1e3:.1f} ms",
                f"{t_pickle * 1e3:.1f} ms",
                "equal" if equal else "DIFFERENT",
            )
        )
        ok = ok and equal

    # dump() to a file object and pickle.load() back.
    label = "skypickle.dump(file) -> pickle.load(file)"
    obj = {"records": _bench_data.make_dicts_20k()[:1_000], "meta": ("v1", 3, None)}
    try:
        f = io.BytesIO()
        skypickle.dump(obj, f, protocol=5)
        n = f.tell()
        f.seek(0)
        equal = _bench_data.same(obj, pickle.load(f))
        rows.append(
            (
                label,
                _size(n),
                _size(len(pickle.dumps(obj, 5))),
                "",
                "",
                "equal" if equal else "DIFFERENT",
            )
        )
        ok = ok and equal
    except Exception as exc:
        rows.append((label, "-", "-", "", "", f"FAILED: {type(exc).__name__}: {exc}"))
        ok = False

    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for j, r in enumerate(rows):
        cells = [
            c.ljust(w) if i in (0, 5) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
        ]
        print("   " + "  ".join(cells).rstrip())
        if j == 0:
            print("   " + "  ".join("-" * w for w in widths))
    print("   (single-call times here are cold and rough; the table below is the measurement)")
    print()
    return ok


def _ship_to_dask(address: str | None) -> bool:
    """Part 1: a closure, a lambda and a class from __main__ run on Dask workers."""
    try:
        from distributed import Client, LocalCluster

        import skypickle.integrations.dask as skydask
    except ImportError:
        print("1. Dask is not installed (pip install 'dask[distributed]'): using a process pool")
        return _ship_to_pool()
    skydask.install()
    where = f"the cluster at {address}" if address else "a local cluster of 2 worker processes"
    print(f"1. Shipping code from __main__ to {where} (skypickle.integrations.dask.install())")
    print()
    scale = make_scaler(3)
    square_plus_one = lambda v: v * v + 1  # noqa: E731 - the point is to ship a lambda
    t0 = time.perf_counter()
    cluster = None
    try:
        if address:
            client = Client(address)
            skydask.install(client)
        else:
            cluster = LocalCluster(
                n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
            )
            client = Client(cluster)
        with client:
            started = time.perf_counter() - t0
            scaled = client.gather(client.map(scale, range(5)))
            squared = client.gather(client.map(square_plus_one, range(5)))
            points = client.gather(
                client.map(lambda p: p.moved(1, 1), [Point(i, -i) for i in range(3)])
            )
            pickler = sorted(set(client.run(_worker_pickler).values()))
    finally:
        if cluster is not None:
            cluster.close()
    ok = (
        scaled == [v * 3 + OFFSET for v in range(5)]
        and squared == [v * v + 1 for v in range(5)]
        and all(isinstance(p, Point) for p in points)
    )
    print(f"   closure  make_scaler(3) over range(5)  -> {scaled}")
    print(f"   lambda   v * v + 1 over range(5)       -> {squared}")
    print(f"   class    Point(i, -i).moved(1, 1)      -> {points}")
    print(f"   results are instances of this Point: {all(isinstance(p, Point) for p in points)}")
    print(f"   workers pickle with: {', '.join(pickler)}")
    print(f"   (cluster ready in {started:.1f} s)")
    print()
    return ok


def _ship_to_pool() -> bool:
    from . import pools

    scale = make_scaler(3)
    with pools.ProcessPoolExecutor(2, mp_context="spawn") as ex:
        scaled = list(ex.map(scale, range(5)))
        points = list(ex.map(lambda p: p.moved(1, 1), [Point(i, -i) for i in range(3)]))
    print(f"   closure -> {scaled}; class -> {points}")
    print()
    return scaled == [v * 3 + OFFSET for v in range(5)] and all(
        isinstance(p, Point) for p in points
    )


def demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        import cloudpickle

        cp = f"cloudpickle {cloudpickle.__version__}"
    except ImportError:
        cp = "cloudpickle not installed"
    print(f"skypickle {skypickle.__version__} demo: cloudpickle's job, done by a pickler in Rust")
    print(f"Python {platform.python_version()} ({platform.machine()}), {cp}")
    print()
    ok = _ship_to_dask(args.scheduler)

    print("2. How long pickling code takes: skypickle vs cloudpickle (dumps, interleaved,")
    print("   quick run; `python -m skypickle bench` for the full table)")
    print()
    results = _bench_timing.run(cases=_bench_cases.CODE_CASES, quick=True, progress=args.progress)
    for line in _bench_report.format_table(results).splitlines():
        print("   " + line if line else "")
    ok = ok and _bench_report.all_correct(results)
    print()
    print("3. Data: " + ("" if args.data else "(skipped; --data to include)"))
    if args.data:
        print()
        ok = _round_trips() and ok
    print()
    print(f"{'OK' if ok else 'FAILED'}: demo finished in {time.perf_counter() - start:.1f} s")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skypickle", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="{demo,bench,inspect,explain}")
    p_demo = sub.add_parser(
        "demo", help="ship a closure, a lambda and a class to Dask workers; time the pickling"
    )
    p_demo.add_argument(
        "--scheduler", metavar="ADDRESS", help="use this Dask scheduler instead of a local cluster"
    )
    p_demo.add_argument("--data", action="store_true", help="also show data round trips")
    p_demo.add_argument("--progress", action="store_true", help="progress lines on stderr")
    p_bench = sub.add_parser("bench", help="benchmark dumps/loads against pickle and cloudpickle")
    _bench.add_arguments(p_bench)
    p_inspect = sub.add_parser(
        "inspect", help="describe a pickle without executing it (imports, code carried, ...)"
    )
    _inspect.add_arguments(p_inspect)
    p_explain = sub.add_parser(
        "explain", help="what a payload of MODULE:OBJECT would carry (paths and sizes)"
    )
    _explain.add_arguments(p_explain)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args)
    if args.command == "bench":
        return _bench.run_from_args(args)
    if args.command == "inspect":
        return _inspect.run_from_args(args)
    if args.command == "explain":
        return _explain.run_from_args(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
