"""Time skypickle's dumps (and pickle.loads of its output) against pickle and cloudpickle.

    python benches/bench_dumps.py [--quick] [--json] [--cases dicts_20k,numpy_8mb] [--repeat N]

The command line is ``skypickle._bench`` (shared with ``python -m skypickle bench``; the
engine is ``skypickle._bench_timing``); this script only forwards its arguments.  Progress
goes to stderr, the table (or JSON with ``--json``) to stdout.
"""

from __future__ import annotations

import sys

try:
    from skypickle import _bench
except ImportError as exc:  # pragma: no cover - only without a build
    sys.exit(f"cannot import skypickle ({exc}); build it first: make build")


if __name__ == "__main__":
    sys.exit(_bench.main(sys.argv[1:]))
