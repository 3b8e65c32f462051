"""Shared pytest configuration for the skypickle test suite.

Hypothesis profiles: ``fast`` (the default, keeps the whole suite well under a few minutes on two
cores) and ``slow`` (many more examples), selected with ``HYPOTHESIS_PROFILE=slow``.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "fast",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "slow",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

_counter = itertools.count()


def _run_in_subprocess(
    workdir: Path,
    code: str,
    *,
    payload: bytes | None = None,
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (``sys.executable``).

    The script runs from ``workdir`` (a temporary directory), so the test modules (and
    ``tests/objects.py``) are NOT importable there. ``payload`` bytes, if given, are written to a
    temporary file whose path is passed as ``sys.argv[1]``. With ``check`` (the default) a non-zero
    return code (a negative one means the interpreter died from a signal, e.g. a C stack
    overflow) fails the test with the child's output.
    """
    n = next(_counter)
    script = workdir / f"child_{n}.py"
    script.write_text(textwrap.dedent(code))
    argv = [sys.executable, str(script)]
    if payload is not None:
        pfile = workdir / f"payload_{n}.pkl"
        pfile.write_bytes(payload)
        argv.append(str(pfile))
    proc = subprocess.run(
        argv, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"subprocess exited with {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture
def run_in_subprocess(tmp_path):
    """``run_in_subprocess(code, payload=None, timeout=120, check=True)``: see above."""

    def run(code: str, **kw) -> subprocess.CompletedProcess:
        return _run_in_subprocess(tmp_path, code, **kw)

    return run
