"""The garbage collector may run at any allocation, including while a Pickler subclass
instance is being created (CPython allocates its ``__dict__`` before the Rust fields are set).
Regression test for a segfault: the collector traversed the half-built instance.

Run in a subprocess so that a crash fails this test instead of killing the test run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import gc, io, pickle, skypickle
    gc.set_threshold(1, 1, 1)  # collect at (almost) every allocation
    junk = []
    for i in range(20000):
        class Sub(skypickle.Pickler):
            def persistent_id(self, obj):
                return None
        p = Sub(io.BytesIO(), i % 6)
        p.cycle = p
        p.dump([i, {"a": [i]}, (lambda: i)])
        junk.append([junk])
        if len(junk) > 50:
            junk.clear()
    print("ok")
    """
)


def test_gc_during_pickler_subclass_allocation():
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"
