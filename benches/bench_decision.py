"""The by-reference decision's cost with and without cloudpickle copies imported.

    python benches/bench_decision.py [--copies none|empty|registered] [--repeat N]

Dumps one list of ~1,000 distinct importable functions and classes (each pickled by reference,
so each goes through the decision, whose last step reads the by-value registries: skypickle's
and, since issue #11, those of the cloudpickle copies imported) and prints the best and median
time per object, in nanoseconds.

``--copies none``: no copy imported (the common case; the copies' part is one length check).
``--copies empty``: cloudpickle imported, its registry empty. ``--copies registered``:
cloudpickle's registry holds an unrelated module. Run it under each build to compare; one
process per setting, since a copy once imported stays imported.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import statistics
import sys
import time

MODULES = (
    "os",
    "posixpath",
    "json",
    "re",
    "collections",
    "functools",
    "itertools",
    "inspect",
    "textwrap",
    "string",
    "shutil",
    "tempfile",
    "subprocess",
    "threading",
    "logging",
    "argparse",
    "email.utils",
    "urllib.parse",
    "http.client",
    "xml.dom.minidom",
    "decimal",
    "fractions",
    "statistics",
    "random",
    "typing",
    "dataclasses",
    "enum",
    "pathlib",
    "zipfile",
    "tarfile",
    "csv",
    "difflib",
    "pprint",
    "calendar",
    "datetime",
    "ast",
    "dis",
    "tokenize",
    "unittest.case",
    "asyncio.tasks",
)


def objects() -> list:
    """Distinct functions and classes defined in the modules above (where they are importable
    under their qualified name)."""
    seen: dict[int, object] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if not (inspect.isfunction(value) or inspect.isclass(value)):
                continue
            if getattr(value, "__module__", None) != name:
                continue
            seen.setdefault(id(value), value)
    return list(seen.values())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", choices=("none", "empty", "registered"), default="none")
    parser.add_argument("--repeat", type=int, default=400)
    args = parser.parse_args(argv)

    import skypickle

    objs = objects()
    if args.copies != "none":
        import cloudpickle

        if args.copies == "registered":
            import fractions

            # Registered, but none of the objects dumped comes from it: still by reference.
            cloudpickle.register_pickle_by_value(fractions)
            objs = [o for o in objs if o.__module__ != "fractions"]
    skypickle.dumps(objs)  # warm up: caches, memo table
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter_ns()
        skypickle.dumps(objs)
        times.append(time.perf_counter_ns() - start)
    per = [t / len(objs) for t in times]
    loaded = sorted(n for n in sys.modules if "cloudpickle" in n)
    print(
        f"{args.copies:10} objects={len(objs)} best={min(per):.1f} ns/object "
        f"median={statistics.median(per):.1f} ns/object copies_loaded={loaded}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
