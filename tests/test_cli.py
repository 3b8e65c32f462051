"""The command line: ``python -m skypickle`` / ``skypickle`` (inspect, bench, demo's parts)."""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import subprocess
import sys

import pytest
import skypickle
from byvalue_helpers import make_namespace

SOURCE = """
import math

RATE = 0.25


def interest(balance):
    return math.floor(balance * RATE)


class Account:
    fee = 2

    def __init__(self, balance):
        self.balance = balance

    def yearly(self):
        return interest(self.balance) - self.fee
"""


def cli(*args: str, stdin: bytes | None = None, timeout: int = 300):
    return subprocess.run(
        [sys.executable, "-m", "skypickle", *args],
        capture_output=True,
        input=stdin,
        timeout=timeout,
    )


@pytest.fixture
def payloads(tmp_path):
    ns = make_namespace(SOURCE, "__main__")
    files = {}
    for name, obj in {
        "function": ns["interest"],
        "class": ns["Account"],
        "data": {"x": [1, 2.5, "three"], "b": b"\x00" * 10},
    }.items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(skypickle.dumps(obj))
        files[name] = path
    return files


def test_inspect_reports_code_carried_by_value(payloads):
    proc = cli("inspect", "--json", str(payloads["function"]))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["protocol"] == 5
    assert report["size"] == payloads["function"].stat().st_size
    assert "math" in report["modules"]
    assert report["globals"] == ["skypickle._skypickle._reconstruct"]
    (fn,) = report["functions"]
    assert (fn["name"], fn["qualname"]) == ("interest", "interest")
    assert fn["file"].startswith("<") and fn["line"] == 7
    assert {g["name"]: g["kind"] for g in fn["globals"]} == {
        "math": "module math",
        "RATE": "0.25",
    }
    assert all(g["size"] > 0 for g in fn["globals"])


def test_inspect_reports_classes_and_their_methods(payloads):
    proc = cli("inspect", "--json", str(payloads["class"]))
    report = json.loads(proc.stdout)
    (cls,) = report["classes"]
    assert (cls["name"], cls["kind"], cls["module"]) == ("Account", "class", "__main__")
    assert cls["methods"] == ["__init__", "yearly"]
    assert cls["line"] == 14  # its first method's line
    names = sorted(f["qualname"] for f in report["functions"])
    assert names == ["Account.__init__", "Account.yearly", "interest"]


def test_inspect_text_report_and_stdin(payloads):
    proc = cli("inspect", "-", stdin=payloads["class"].read_bytes())
    assert proc.returncode == 0
    text = proc.stdout.decode()
    assert "Classes carried by value: 1" in text and "Account" in text
    assert "Nothing was executed" in text


def test_inspect_never_executes(tmp_path):
    """A pickle that would run code when loaded: inspect only reports the call."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Evil()))
    proc = cli("inspect", "--json", str(path))
    assert proc.returncode == 0
    assert not marker.exists()
    report = json.loads(proc.stdout)
    assert report["globals"] in (["posix.system"], ["nt.system"])


def test_inspect_out_of_band_buffers(tmp_path):
    data = skypickle.dumps(
        [pickle.PickleBuffer(b"abc"), pickle.PickleBuffer(b"def")],
        buffer_callback=lambda b: False,
    )
    path = tmp_path / "oob.pkl"
    path.write_bytes(data)
    report = json.loads(cli("inspect", "--json", str(path)).stdout)
    assert report["out_of_band_buffers"] == 2


@pytest.mark.parametrize(
    "garbage",
    [b"", b"not a pickle at all", b"\x80\x05garbage", b"\x80\x05\x95" + b"\xff" * 20, b"(((("],
)
def test_inspect_rejects_garbage_cleanly(tmp_path, garbage):
    path = tmp_path / "bad.pkl"
    path.write_bytes(garbage)
    proc = cli("inspect", str(path))
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr and proc.stderr.startswith(b"error:")


def test_inspect_missing_file():
    proc = cli("inspect", "/nonexistent/skypickle.pkl")
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr


def test_inspect_survives_mutated_payloads(payloads):
    """Random byte flips and truncations of real payloads: a report or a clean error, never
    a traceback (run in-process for speed, through the same entry point)."""
    from skypickle import _inspect

    rng = random.Random(1234)
    base = payloads["class"].read_bytes()
    outcomes = set()
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)) :]
        try:
            _inspect.analyse(bytes(data))
            outcomes.add("report")
        except _inspect.InspectError:
            outcomes.add("error")
    assert outcomes <= {"report", "error"} and "error" in outcomes


def test_bench_quick_json():
    proc = cli("bench", "--quick", "--json", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    names = {r["case"] for r in results}
    assert {"dicts_20k", "lambda", "task_graph", "fp_lambda", "fp_task_graph"} <= names
    for r in results:
        if r["skipped"]:
            continue
        if r.get("kind") == "fingerprint":
            # Hashers: each deterministic here, dask's tokenize with and without skypickle's
            # registration (which must give different tokens, or the switch did not switch).
            assert all(c["correct"] for c in r["competitors"].values()), r
            assert r["ratios"]["fingerprint_vs_tokenize"] is not None
            assert r["ratios"]["tokenize_sky_vs_tokenize"] is not None
            continue
        assert r["competitors"]["skypickle"]["correct"], r["case"]
        assert r["competitors"]["sky-det"]["correct"], r["case"]
        assert r["ratios"]["dumps_min_sky_vs_cloudpickle"] is not None
        assert r["ratios"]["dumps_min_det_vs_sky"] is not None


def test_bench_shows_progress():
    proc = cli("bench", "--quick", "--cases", "lambda")
    assert proc.returncode == 0
    assert b"lambda: timing dumps" in proc.stderr
    assert b"lambda" in proc.stdout


def test_console_script_is_installed():
    exe = shutil.which("skypickle", path=os.path.dirname(sys.executable))
    assert exe, "the `skypickle` command is not installed next to this interpreter"
    proc = subprocess.run([exe, "--help"], capture_output=True, timeout=60)
    assert proc.returncode == 0 and b"inspect" in proc.stdout
