"""Deterministic mode (issue #12): ``dumps(..., deterministic=True)``, ``normalize_paths`` and
``fingerprint``.

1. ``deterministic_corpus.py`` (functions, closures, generators, classes, dataclasses, enums,
   NamedTuple, TypeVar/Generic, a module registered by value, globals holding sets) is run as
   a script in fresh interpreters: hash seeds 0, 1, 2 and random, another working directory,
   and a copy of the script in another directory. Every protocol's payloads and fingerprints
   agree between runs (the copy agrees with ``normalize_paths=True`` only); the fingerprints
   are the BLAKE3 digests of the payloads; the payloads, loaded in an interpreter that has
   neither the script nor its module, behave like the originals. ``compat="cloudpickle"``
   payloads agree too, and load where skypickle cannot be imported.
2. A definition executed again (a re-run notebook cell) gives the same bytes; a changed one
   a new tracker id; two distinct classes of identical definition load as one class.
3. The memo: str and bytes by content, every other object by identity.
4. Hypothesis: sets built in any insertion order, under any hash seed, give the same bytes
   and load back equal with plain ``pickle``.
5. Sensitivity: a changed constant, default, global, closure value or class attribute
   changes the fingerprint; moving code in its file changes it unless ``normalize_paths``.

Every by-value payload is loaded and exercised in a fresh interpreter. Nothing is timed.
"""

import hashlib
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
import skypickle
from byvalue_helpers import run_child

HERE = Path(__file__).parent
PROTOCOLS = tuple(range(pickle.HIGHEST_PROTOCOL + 1))
TRACKER_ID = re.compile(r"[0-9a-f]{32}")


def det(obj, protocol=None, **kw):
    return skypickle.dumps(obj, protocol, deterministic=True, **kw)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def tracker_ids(payload):
    """The tracker ids (32 hex digits) a payload names, in order of appearance."""
    import pickletools

    return [
        arg
        for _, arg, _ in pickletools.genops(payload)
        if isinstance(arg, str) and TRACKER_ID.fullmatch(arg)
    ]


# --------------------------------------------------------------------------------------------
# 1. The corpus script under several hash seeds, working directories and locations
# --------------------------------------------------------------------------------------------

CORPUS_SCRIPT = "deterministic_corpus.py"
CORPUS_FILES = (CORPUS_SCRIPT, "deterministic_registered.py", "deterministic_exercise.py")

# name: (copy of the script, working directory, PYTHONHASHSEED). "seed 0" runs first, alone:
# it compiles the registered module and writes its .pyc, which the others load; "copied" runs
# a second copy of the files, in another directory (so compiled afresh too).
RUNS = {
    "seed 0": ("a", ".", "0"),
    "seed 1": ("a", ".", "1"),
    "seed 2": ("a", ".", "2"),
    "seed random": ("a", ".", "random"),
    "other cwd": ("a", "elsewhere", "random"),
    "copied": ("moved/b", "moved/b", "random"),
}


def _start(root, name):
    copy, cwd, seed = RUNS[name]
    env = dict(os.environ, PYTHONHASHSEED=seed)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = root / f"{name.replace(' ', '_')}.pkl"
    argv = [sys.executable, str(root / copy / CORPUS_SCRIPT), str(out)]
    if name == "seed 0":
        argv.append("--exercise")
    proc = subprocess.Popen(
        argv, cwd=root / cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return proc, out


def _finish(name, proc, out):
    stdout, stderr = proc.communicate(timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"corpus run {name!r} exited with {proc.returncode}\n{stdout}\n{stderr}")
    with open(out, "rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """{run name: what the corpus script wrote}, plus "dirs": the two copies' directories."""
    root = tmp_path_factory.mktemp("deterministic")
    for copy in ("a", "moved/b"):
        (root / copy).mkdir(parents=True)
        for name in CORPUS_FILES:
            shutil.copy(HERE / name, root / copy / name)
    (root / "elsewhere").mkdir()
    runs = {"seed 0": _finish("seed 0", *_start(root, "seed 0"))}
    started = {name: _start(root, name) for name in RUNS if name != "seed 0"}
    runs.update((name, _finish(name, *started[name])) for name in started)
    runs["dirs"] = (root / "a", root / "moved" / "b")
    return runs


def _digests(run, normalize):
    """{(case, protocol): sha256 or the error's text} for one normalize_paths setting."""
    return {
        key[:2]: sha(value) if isinstance(value, bytes) else value
        for key, value in run["payloads"].items()
        if key[2] is normalize
    }


def _differences(a, b):
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def test_corpus_covers_every_case_and_protocol(corpus):
    import deterministic_corpus

    run = corpus["seed 0"]
    names = set(deterministic_corpus.cases())
    assert {key[0] for key in run["payloads"]} == names
    assert {key[1] for key in run["payloads"]} == set(PROTOCOLS)
    assert set(run["exercised"]) == names
    assert set(run["compat"]) == set(deterministic_corpus.COMPAT_CASES)
    # Some objects have no pickle below protocol 2 (dataclass fields have __slots__ and no
    # __getstate__): the same error in every run (compared below), and only there.
    errors = {key: v for key, v in run["payloads"].items() if isinstance(v, str)}
    assert all(key[1] < 2 for key in errors), sorted(errors)
    assert all("__slots__" in message for message in errors.values()), set(errors.values())
    assert ("dataclasses", 0, True) in errors
    assert sum(isinstance(v, bytes) for v in run["payloads"].values()) > 250


@pytest.mark.parametrize("name", [n for n in RUNS if n not in ("seed 0", "copied")])
def test_same_bytes_across_hash_seeds_and_working_directories(corpus, name):
    reference, run = corpus["seed 0"], corpus[name]
    for normalize in (False, True):
        differ = _differences(_digests(reference, normalize), _digests(run, normalize))
        assert not differ, f"{name}, normalize_paths={normalize}: payloads differ for {differ}"
    assert run["fingerprints"] == reference["fingerprints"]
    assert {k: sha(v) for k, v in run["compat"].items()} == {
        k: sha(v) for k, v in reference["compat"].items()
    }


def test_copied_script_same_bytes_with_normalize_paths_only(corpus):
    import deterministic_corpus

    reference, copied = corpus["seed 0"], corpus["copied"]
    dir_a, dir_b = (str(d).encode() for d in corpus["dirs"])
    assert copied["script"] != reference["script"]
    differ = _differences(_digests(reference, True), _digests(copied, True))
    assert not differ, f"normalize_paths=True: payloads differ for {differ}"
    fingerprints = {k: v for k, v in reference["fingerprints"].items() if k[2]}
    assert {k: v for k, v in copied["fingerprints"].items() if k[2]} == fingerprints
    for key, payload in reference["payloads"].items():
        if not isinstance(payload, bytes):
            continue
        other = copied["payloads"][key]
        name, _, normalize = key
        if normalize:
            assert dir_a not in payload and dir_b not in other, key
        elif name in deterministic_corpus.DATA_CASES:
            assert payload == other, key
        else:
            # The option does something: without it each copy's payload names its own path.
            assert dir_a in payload and dir_b in other, key
            assert payload != other, key
            assert reference["fingerprints"][key] != copied["fingerprints"][key], key


def test_fingerprint_is_blake3_of_the_deterministic_bytes(corpus):
    checked = 0
    for run in (corpus["seed 0"], corpus["copied"]):
        for key, payload in run["payloads"].items():
            if isinstance(payload, bytes):
                assert run["fingerprints"][key] == blake3.blake3(payload).hexdigest(), key
                checked += 1
            else:
                assert key not in run["fingerprints"]
    assert checked > 500


def test_dump_pickler_and_repeat_give_the_same_bytes(corpus):
    for name in RUNS:
        checks = corpus[name]["same_by_dump"]
        assert checks and all(all(v) for v in checks.values()), (name, checks)


# The child loads every payload and runs deterministic_exercise on it (keys end with (case,
# protocol, normalize_paths)): the exercise code is
# sent as text (the child has no file of the test suite).
LOAD_CORPUS = """
exec(EXERCISE_SOURCE, globals())
payloads = pickle.loads(PAYLOAD)
result = {}
for key, data in payloads.items():
    result[key] = outcome(lambda: exercise(key[-3], pickle.loads(data)))
"""


def _exercise_source():
    return (HERE / "deterministic_exercise.py").read_text()


def test_payloads_load_and_behave_in_a_fresh_interpreter(corpus, run_in_subprocess):
    reference = corpus["seed 0"]
    payloads = {k: v for k, v in reference["payloads"].items() if isinstance(v, bytes)}
    # The copy's payloads without normalize_paths name another file: they load the same.
    payloads.update(
        (("copied",) + key, value)
        for key, value in corpus["copied"]["payloads"].items()
        if key[1] == pickle.HIGHEST_PROTOCOL and not key[2]
    )
    body = f"EXERCISE_SOURCE = {_exercise_source()!r}\n" + LOAD_CORPUS
    got = run_child(run_in_subprocess, body, pickle.dumps(payloads))
    expected = reference["exercised"]
    assert set(got) == set(payloads)
    for key, result in got.items():
        name = key[-3]
        assert result == ("ok", expected[name]), key
    # Spot checks against literal values: the comparison above is not vacuous.
    assert expected["recursive"] == [1, 1, 2, 6, 24, 120, 720, 5040]
    assert expected["classes"]["describe"] == "child/child:3"
    assert expected["classes"]["isinstance"] == (True, True)
    assert expected["generator"][0] == ([0, 1, 4, 9, 16], "squares done")
    assert expected["closure"] == ((11, 11), (16, 16), (17, 17))
    assert expected["abc"]["registered"] == (True, True, False, True)
    assert expected["enum"]["identity"] == (True, True, "blue")
    assert expected["mixed_set"]["token_in_set"] is True


COMPAT_LOAD = """
class _RefuseSkypickle:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "skypickle":
            raise ImportError("skypickle is not available in this interpreter")


sys.meta_path.insert(0, _RefuseSkypickle())
exec(EXERCISE_SOURCE, globals())
payloads = pickle.loads(PAYLOAD)
result = {
    name: outcome(lambda: exercise(name, pickle.loads(data))) for name, data in payloads.items()
}
assert "skypickle" not in sys.modules
result["cloudpickle"] = sys.modules["cloudpickle"].__version__
"""


def test_compat_payloads_load_with_cloudpickle_only(corpus, run_in_subprocess):
    reference = corpus["seed 0"]
    for payload in reference["compat"].values():
        assert b"skypickle" not in payload
    body = f"EXERCISE_SOURCE = {_exercise_source()!r}\n" + COMPAT_LOAD
    got = run_child(run_in_subprocess, body, pickle.dumps(reference["compat"]))
    assert got.pop("cloudpickle") == "3.1.2"
    assert got == {name: ("ok", reference["exercised"][name]) for name in reference["compat"]}
