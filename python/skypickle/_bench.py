"""``python -m skypickle bench`` and ``benches/bench_dumps.py``: the command line of the
benchmark (skypickle vs pickle vs cloudpickle, protocol 5).

The parts: ``_bench_data`` (the data objects and the strict comparison), ``_bench_code`` (code
that travels by value), ``_bench_cases`` (the cases by name), ``_bench_timing`` (correctness
checks and interleaved timing; ``run()`` gives what ``--json`` prints) and ``_bench_report``
(the table).
"""

from __future__ import annotations

import argparse
import json
import sys

from ._bench_cases import CASES
from ._bench_report import all_correct, format_table
from ._bench_timing import run


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
