"""``integrations.dask.install_tokenize()`` on whatever dask is installed: ``dask.tokenize``
(dask 2024.9 and later) or the older layout with ``normalize_token`` in ``dask.base`` (dask
2024.8, the last release for CPython 3.9). Checked in fresh interpreters run as ``__main__``
under two hash seeds: the same tokens for a lambda, a closure over a set and a class, a new one
when the code changes, and dask's own handlers back after ``uninstall_tokenize()``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("dask")

SCRIPT = """
import json
import dask.base
import skypickle.integrations.dask as skydask

def make(k):
    names = {f"name{i}" for i in range(20)}
    return lambda v: (v * k, sorted(names)[0])

class Account:
    rate = 3
    def interest(self, x):
        return x * self.rate

module = skydask._tokenize_module()
before = module.normalize_token.dispatch(type(make))
skydask.install_tokenize()
tokens = {
    "lambda": dask.base.tokenize(lambda x: x + 1),
    "closure": dask.base.tokenize(make(2)),
    "class": dask.base.tokenize(Account),
    "graph": dask.base.tokenize({("t", i): (make(i), i) for i in range(5)}),
    "changed": dask.base.tokenize(lambda x: x + 2),
}
skydask.uninstall_tokenize()
restored = module.normalize_token.dispatch(type(make)) is before
print(json.dumps({"tokens": tokens, "restored": restored, "layout": module.__name__}))
"""


def run(seed: str, tmp_path) -> dict:
    script = tmp_path / "tokens_main.py"
    script.write_text(SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script)],
        env=dict(os.environ, PYTHONHASHSEED=seed),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_install_tokenize_on_this_dask(tmp_path):
    first, second = run("1", tmp_path), run("2", tmp_path)
    assert first["layout"] in ("dask.tokenize", "dask.base")
    assert first["tokens"] == second["tokens"]
    assert first["tokens"]["lambda"] != first["tokens"]["changed"]
    assert first["restored"] and second["restored"]
