"""Golden payloads: what a released skypickle wrote keeps loading, and behaving, with this one.

tests/golden/<3.X>/ holds payloads written by scripts/make_golden.py under CPython 3.X; each
interpreter of the test matrix checks its own version's. They are loaded with plain
``pickle.loads`` in fresh interpreters that do not import skypickle themselves (pickle must),
and each case's exercise (tests/golden/golden_cases.py) checks that the object behaves. The
payloads are never regenerated: a failure here means this build broke the wire format.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_wire_format import FROZEN_WIRE_NAMES

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))

import golden_cases as gc  # noqa: E402 - found through the path set just above

VERSION = "{}.{}".format(*sys.version_info[:2])
HERE = GOLDEN / VERSION
_MANIFEST_PATH = HERE / "manifest.json"
MANIFEST = json.loads(_MANIFEST_PATH.read_text()) if _MANIFEST_PATH.exists() else {"files": {}}
FILES = sorted(MANIFEST["files"])


def _last_json_line(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"the loader exited {proc.returncode}:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def loaded() -> dict:
    """Every golden payload of this version loaded and exercised: one fresh interpreter per
    protocol, two at a time (the machine has two cores)."""

    def run(protocol: int) -> dict:
        files = [
            [name, entry["case"]]
            for name, entry in MANIFEST["files"].items()
            if entry["protocol"] == protocol
        ]
        argv = gc.loader_command("exercise", str(HERE), json.dumps(files))
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=HERE)
        return _last_json_line(proc)

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(run, gc.PROTOCOLS))
    results = {}
    for report in reports:
        results.update(report["results"])
    return {"results": results, "preloaded": [r["skypickle_preloaded"] for r in reports]}


def test_this_version_has_golden_payloads():
    assert FILES, (
        f"no golden payloads for CPython {VERSION} in {HERE}: run scripts/make_golden.py "
        "with this interpreter"
    )


@pytest.mark.parametrize("name", FILES)
def test_golden_payload_loads_and_behaves(loaded, name):
    entry = MANIFEST["files"][name]
    outcome = loaded["results"].get(name, "not loaded")
    assert outcome == "ok", (
        f"case {entry['case']!r}, protocol {entry['protocol']} ({VERSION}/{name}, written by "
        f"skypickle {entry['skypickle']} on Python {entry['python']}):\n{outcome}"
    )


def test_pickle_imports_skypickle_by_itself(loaded):
    assert loaded["preloaded"] == [False] * len(gc.PROTOCOLS)


def test_manifest_describes_the_files():
    on_disk = sorted(p.name for p in HERE.glob("*.pkl"))
    assert on_disk == FILES
    for name in FILES:
        digest = hashlib.sha256((HERE / name).read_bytes()).hexdigest()
        assert digest == MANIFEST["files"][name]["sha256"], f"{name} was changed after release"


def test_the_payloads_call_every_released_op():
    """Read from the bytes (not trusted from the manifest): together, this version's payloads
    call each of the frozen reconstructors through ``_reconstruct``; and what the manifest
    records for each file is what the file calls, under the frozen numbering."""
    covered = set()
    for name in FILES:
        ops, named = gc.reconstructor_calls((HERE / name).read_bytes())
        entry = MANIFEST["files"][name]
        assert all(0 <= op < len(FROZEN_WIRE_NAMES) for op in ops), (name, ops)
        assert [FROZEN_WIRE_NAMES[op] for op in sorted(set(ops))] == entry["ops"], name
        assert sorted(set(named)) == sorted(entry.get("named", ())), name
        covered.update(ops)
    missing = [n for i, n in enumerate(FROZEN_WIRE_NAMES) if i not in covered]
    assert not missing, f"no {VERSION} golden payload calls {missing}"


def test_every_case_has_its_payloads():
    """A case added to golden_cases.py needs its payloads (for every protocol and version);
    a case whose payloads exist cannot be removed."""
    expected = {
        f"{case.name}.p{protocol}.pkl"
        for case in gc.CASES.values()
        if case.applies()
        for protocol in gc.PROTOCOLS
    }
    assert sorted(expected - set(FILES)) == []
    assert sorted({e["case"] for e in MANIFEST["files"].values()} - set(gc.CASES)) == []


def test_no_payload_holds_a_path_of_the_machine_that_wrote_it():
    """No exception: no /root, /work, /tmp, /home, /usr, site-packages or python3.X (the
    library directory) in any payload's bytes, no Python file name but neutral ``golden/...``
    ones, and not this machine's host name (the one that made them, when the test runs there)
    in any of their strings. The manifest records nothing of the machine either."""
    hostname = socket.gethostname()
    manifest = _MANIFEST_PATH.read_bytes()
    assert [word for word in gc.FORBIDDEN if word in manifest] == []
    leaks = {}
    for name in FILES:
        found = gc.machine_leaks((HERE / name).read_bytes(), hostname)
        if found:
            leaks[name] = found
    assert leaks == {}


def test_code_from_another_minor_version_is_refused_clearly():
    """A function's code object only loads on the CPython minor version that compiled it: a
    payload of another version's goldens fails with skypickle's ValueError naming both."""
    foreign = sorted(
        str(path) for path in GOLDEN.glob("3.*/fn_lambda.p5.pkl") if path.parent.name != VERSION
    )
    if not foreign:
        pytest.skip("no golden payloads of another CPython version")
    proc = subprocess.run(
        gc.loader_command("foreign", *foreign), capture_output=True, text=True, timeout=60
    )
    for path, raised in _last_json_line(proc).items():
        other = Path(path).parent.name
        assert raised["type"] == "ValueError", (path, raised)
        assert f"CPython {other}" in raised["message"], raised["message"]
        assert f"CPython {VERSION}" in raised["message"], raised["message"]
