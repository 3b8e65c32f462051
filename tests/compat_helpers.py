"""Helpers for tests/test_compat_wire.py (issue #11, compat wire mode).

- worker virtualenvs that have cloudpickle (or joblib) and NOT skypickle, made once and cached;
- ``payload_globals``: every global a pickle would look up, read without executing it;
- the scripts of the two kinds of child: the dumping child (the project's interpreter, the
  corpus executed as its ``__main__``) and the loading child (a worker env's interpreter,
  plain ``pickle.loads``).

Everything a child sends back is plain data pickled by the standard library.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import pickletools
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CORPUS_FILE = TESTS / "compat_corpus.py"
EXERCISES_FILE = TESTS / "compat_exercises.py"

# cloudpickle 3.x's reconstructors, the only names a compat payload may use from the target
# module (issue #11). Anything else from cloudpickle would tie the payload to one release.
COMPAT_NAMES = frozenset(
    {
        "_make_function",
        "_function_setstate",
        "_builtin_type",
        "_make_skeleton_class",
        "_make_skeleton_enum",
        "_class_setstate",
        "_make_typevar",
        "_make_cell",
        "_make_empty_cell",
        "subimport",
        "dynamic_subimport",
        "_make_dict_keys",
        "_make_dict_values",
        "_make_dict_items",
        "_file_reconstructor",
        "_get_dataclass_field_type_sentinel",
    }
)

# compat= values for the vendored copies, and the module each one names.
VENDORED_TARGETS = (
    "pyspark.cloudpickle.cloudpickle",
    "ray.cloudpickle.cloudpickle",
    "joblib.externals.cloudpickle.cloudpickle",
    "modal._vendor.cloudpickle",
)


def target_module(compat: str) -> str:
    """The module whose reconstructors a payload written with ``compat=`` names."""
    return "cloudpickle.cloudpickle" if compat == "cloudpickle" else compat


# Standard-library modules a compat payload may name globals from, each with what needs it
# (cloudpickle's own payloads of the corpus use each, on some CPython 3.9-3.13). Extend it
# when a new kind of object needs a module; never with __main__ or a module outside the
# standard library.
STDLIB_GLOBAL_MODULES = {
    "builtins": "type, object, getattr, classmethod, property, base classes",
    "__builtin__": "builtins under its Python 2 name, as pickle writes it at protocols 0-2",
    "_codecs": "bytes at protocols 0-2 (_codecs.encode)",
    "copy_reg": "copyreg under its Python 2 name, as pickle writes it at protocols 0-2",
    "itertools": "map under its Python 2 name (itertools.imap) at protocols 0-2",
    "thread": "_thread under its Python 2 name at protocols 0-2",
    "copyreg": "instances at protocols 0-1 (copyreg._reconstructor)",
    "types": "the types module's classes (CodeType, CellType, MethodType, ...)",
    "functools": "partial; lru_cache, singledispatch, cached_property rebuilt faithfully",
    "enum": "Enum, IntEnum, Flag bases; Enum.__new__ in an enum's namespace",
    "abc": "ABC, ABCMeta",
    "dataclasses": "Field, InitVar, _DataclassParams, MISSING and friends",
    "typing": "Generic, ClassVar, NamedTuple in bases and annotations",
    "collections": "OrderedDict; the NamedTuple field getters (3.12+)",
    "_collections": "the NamedTuple field getters (3.9-3.11)",
    "io": "StringIO of a pickled text file",
    "_io": "StringIO of a pickled text file (its __module__)",
    "operator": "typing's generic aliases reduce to operator.getitem",
    "_operator": "typing's generic aliases reduce to operator.getitem (its __module__)",
    "logging": "getLogger",
    "_frozen_importlib": "__spec__ of a module sent by value (kept in its vars)",
    "_frozen_importlib_external": "__loader__ of a module sent by value (kept in its vars)",
    "_thread": "get_ident, in 3.13's dataclass __repr__ recursion guard",
}


# ---------------------------------------------------------------------------------------------
# Reading the globals of a payload
# ---------------------------------------------------------------------------------------------

_UNKNOWN = object()  # a stack item the scan does not track
_MARK = object()
_TEXT_OPS = frozenset(
    {"UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING",
     "SHORT_BINSTRING"}
)  # fmt: skip
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})


def payload_globals(data: bytes) -> list[tuple[str, str]]:
    """Every ``(module, qualified name)`` that loading ``data`` looks up, in stream order.

    GLOBAL and INST carry the names in their argument. STACK_GLOBAL pops two strings that may
    have been pushed much earlier and fetched from the memo, so the scan keeps a model of the
    stack and the memo (strings as themselves, everything else as opaque items); a
    STACK_GLOBAL whose operands are not both known strings is an error, never skipped.
    """
    stack: list = []
    memo: dict = {}
    found: list[tuple[str, str]] = []
    for op, arg, pos in pickletools.genops(data):
        name = op.name
        if name == "STACK_GLOBAL":
            qualname, module = stack.pop(), stack.pop()
            if not (isinstance(module, str) and isinstance(qualname, str)):
                raise AssertionError(f"STACK_GLOBAL at byte {pos}: operands are not strings")
            found.append((module, qualname))
            stack.append(_UNKNOWN)
            continue
        if name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
            continue
        if name in _PUT_OPS:
            memo[arg] = stack[-1]
            continue
        if name in _GET_OPS:
            stack.append(memo[arg])
            continue
        if name in _TEXT_OPS:
            stack.append(arg)
            continue
        if name in ("GLOBAL", "INST"):
            module, _, qualname = arg.partition(" ")
            found.append((module, qualname))
        # Every other opcode: pop what it consumes (through the topmost mark when it takes a
        # slice), push opaque results. Only the shape matters to find STACK_GLOBAL's operands.
        before = op.stack_before
        if pickletools.markobject in before:
            while stack.pop() is not _MARK:
                pass
            below = before.index(pickletools.markobject)
        else:
            below = len(before)
        if below:
            del stack[-below:]
        stack.extend(
            _MARK if item is pickletools.markobject else _UNKNOWN for item in op.stack_after
        )
    return found


def payload_strings(data: bytes) -> list[str]:
    """Every text argument in ``data`` (names, attribute keys, docstrings, paths)."""
    return [arg for op, arg, _ in pickletools.genops(data) if op.name in _TEXT_OPS]


def disallowed_globals(found: list[tuple[str, str]], target: str) -> list[str]:
    """The globals of ``found`` that a payload written for ``target`` must not name."""
    bad = []
    for module, qualname in found:
        if module == target and qualname in COMPAT_NAMES:
            continue
        if module in STDLIB_GLOBAL_MODULES:
            continue
        bad.append(f"{module}.{qualname}")
    return bad


# ---------------------------------------------------------------------------------------------
# Worker environments
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerEnv:
    """A virtualenv of the base interpreter with ``requirements`` only (never skypickle)."""

    name: str
    requirements: tuple[str, ...]
    compat: str  # the compat= value whose payloads this env loads
    distributions: dict = field(default_factory=dict)  # distribution -> version installed
    absent: tuple[str, ...] = ("skypickle",)  # top-level modules that must not import there


ENVS = (
    WorkerEnv(
        "cloudpickle-3.0.0", ("cloudpickle==3.0.0",), "cloudpickle", {"cloudpickle": "3.0.0"}
    ),
    WorkerEnv(
        "cloudpickle-3.1.2", ("cloudpickle==3.1.2",), "cloudpickle", {"cloudpickle": "3.1.2"}
    ),
    # joblib 1.5.3 vendors cloudpickle 3.1.2; no top-level cloudpickle may hide a payload that
    # names the wrong module.
    WorkerEnv(
        "joblib-1.5.3",
        ("joblib==1.5.3",),
        "joblib.externals.cloudpickle.cloudpickle",
        {"joblib": "1.5.3", "cloudpickle": None},
        ("skypickle", "cloudpickle"),
    ),
)


def envs_root() -> Path:
    """Where worker envs are cached: $SKYPICKLE_COMPAT_ENVS, else tests/.compat-envs/."""
    override = os.environ.get("SKYPICKLE_COMPAT_ENVS")
    return Path(override) if override else TESTS / ".compat-envs"


def _base_interpreter() -> str:
    # The project's interpreter is itself a venv; worker envs are made from its base, the same
    # CPython, so that code objects load there.
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _env_stamp(env: WorkerEnv) -> dict:
    return {
        "requirements": list(env.requirements),
        "python": sys.version,
        "base": _base_interpreter(),
    }


def env_dir(env: WorkerEnv) -> Path:
    stamp = json.dumps(_env_stamp(env), sort_keys=True).encode()
    key = hashlib.sha256(stamp).hexdigest()[:10]
    return envs_root() / f"py{sys.version_info[0]}.{sys.version_info[1]}-{env.name}-{key}"


def env_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


_READY = "compat-env-ready.json"


def _is_ready(path: Path, env: WorkerEnv) -> bool:
    try:
        stamp = json.loads((path / _READY).read_text())
    except (OSError, ValueError):
        return False
    return stamp == _env_stamp(env) and env_python(path).exists()


def _run_step(argv: list, timeout: float) -> str | None:
    """None on success, else a short description of the failure."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{argv[1:4]}: {exc!r}"
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-6:]
        return f"{' '.join(map(str, argv[1:5]))} exited {proc.returncode}: " + " | ".join(tail)
    return None


def _create_env(env: WorkerEnv) -> tuple[Path | None, str | None]:
    final = env_dir(env)
    if _is_ready(final, env):
        return final, None
    final.parent.mkdir(parents=True, exist_ok=True)
    # Build under a private name and rename into place, so that a session that dies half way
    # or two sessions building at once never leave a half-made env that looks ready.
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    error = _run_step([sys.executable, "-m", "venv", str(tmp)], timeout=180)
    if error is None:
        error = _run_step(
            [
                str(env_python(tmp)),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                *env.requirements,
            ],
            timeout=600,
        )
    if error is not None:
        shutil.rmtree(tmp, ignore_errors=True)
        return None, error
    (tmp / _READY).write_text(json.dumps(_env_stamp(env), sort_keys=True))
    if final.exists() and not _is_ready(final, env):
        shutil.rmtree(final, ignore_errors=True)  # stale: another interpreter or a broken build
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another session finished first
        if not _is_ready(final, env):
            return None, f"could not move {tmp} to {final}"
    return final, None


def ensure_envs(envs=ENVS) -> tuple[dict, dict]:
    """``({env name: python path}, {env name: error})``: builds the missing envs in parallel."""
    with ThreadPoolExecutor(len(envs)) as pool:
        made = list(pool.map(_create_env, envs))
    pythons, errors = {}, {}
    for env, (path, error) in zip(envs, made):
        if error is None:
            pythons[env.name] = env_python(path)
        else:
            errors[env.name] = error
    return pythons, errors


def corpus_case_names() -> list[str]:
    """The keys of ``CASES`` in compat_corpus.py, read from its source (never executed here)."""
    tree = ast.parse(CORPUS_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "CASES"
        ]:
            return [ast.literal_eval(key) for key in node.value.keys]
    raise AssertionError("compat_corpus.py defines no CASES dict")


# ---------------------------------------------------------------------------------------------
# The children
# ---------------------------------------------------------------------------------------------

# The shared tail of both children: an exercise's outcome as plain data.
_OUTCOME = r'''
def plain_outcome(fn, *args):
    """("ok", value) or ("raise", type name, message); a value the standard library cannot
    pickle (an exercise that returned a loaded object by mistake) becomes ("unplain", repr)."""
    try:
        value = fn(*args)
    except Exception as exc:
        return ("raise", type(exc).__name__, str(exc))
    try:
        pickle.dumps(value)
    except Exception:
        return ("unplain", repr(value))
    return ("ok", value)
'''

# argv: workdir, corpus path, exercises path, manifest path. Runs with the project's
# interpreter. The corpus is executed as this process's __main__ (compiled under a neutral file
# name, so no payload holds a path of the machine's checkout).
DUMPER_SCRIPT = (
    r"""
import os as _os
import pickle
import sys as _sys

_workdir, _corpus_path, _exercises_path, _manifest_path = _sys.argv[1:5]
_SELFTEST = _os.environ.get("COMPAT_HARNESS_SELFTEST") == "1"
_before = set(globals())
with open(_corpus_path) as _fh:
    exec(compile(_fh.read(), "compat_corpus.py", "exec"), globals())
# what the corpus defines (its imports are modules every loader may have too)
_corpus_names = sorted(
    n for n in set(globals()) - _before - {"_before"} if not isinstance(globals()[n], type(_os))
)
"""
    + _OUTCOME
    + r"""

def _drive():
    import cloudpickle

    import skypickle

    vendored = None
    if _SELFTEST:
        # joblib stopped vendoring cloudpickle in 1.6; the self-test's stand-in for the joblib
        # target is the copy in the worker env's joblib 1.5.3, imported from its site-packages
        # (this throwaway process may shadow the project's own joblib).
        _sys.path.insert(0, _os.environ["COMPAT_SELFTEST_JOBLIB_SITE"])
        for name in [m for m in _sys.modules if m.split(".")[0] == "joblib"]:
            del _sys.modules[name]
        import joblib.externals.cloudpickle as vendored

        del _sys.path[0]

    for module in BY_VALUE_MODULES:
        skypickle.register_pickle_by_value(module)
        cloudpickle.register_pickle_by_value(module)
        if vendored is not None:
            vendored.register_pickle_by_value(module)

    def compat_dumper(target, stand_in):
        # The self-test writes the "compat" payloads with cloudpickle itself (stand_in): the
        # loaders, exercises and assertions are then checked against a known-good encoder.
        if _SELFTEST:
            return stand_in
        return lambda obj: skypickle.dumps(obj, compat=target)

    dumpers = {
        "cloudpickle": compat_dumper("cloudpickle", cloudpickle.dumps),
        "joblib.externals.cloudpickle.cloudpickle": compat_dumper(
            "joblib.externals.cloudpickle.cloudpickle",
            vendored.dumps if vendored is not None else None,
        ),
        "reference": cloudpickle.dumps,
    }
    payloads = {kind: {} for kind in dumpers}
    for kind, dumps in dumpers.items():
        for case, obj in CASES.items():
            try:
                payloads[kind][case] = dumps(obj)
            except Exception as exc:
                payloads[kind][case] = ("dump-error", type(exc).__name__, str(exc))

    # The originals are exercised after every payload is written: exercises change state
    # (counters, caches, file positions) that must not leak into the payloads.
    namespace = {"__name__": "compat_exercises"}
    with open(_exercises_path) as fh:
        exec(compile(fh.read(), "compat_exercises.py", "exec"), namespace)
    original = {case: plain_outcome(namespace["EXERCISES"][case], CASES[case]) for case in CASES}
    manifest = {
        "cases": list(CASES),
        "exercises": sorted(namespace["EXERCISES"]),
        "payloads": payloads,
        "original": original,
        "by_value_modules": [module.__name__ for module in BY_VALUE_MODULES],
        "corpus_names": _corpus_names,
        "selftest": _SELFTEST,
        "workdir": _workdir,
        "cloudpickle": cloudpickle.__version__,
        "vendored": getattr(vendored, "__version__", None),
    }
    with open(_manifest_path, "wb") as fh:
        pickle.dump(manifest, fh)


_drive()
"""
)

# argv: manifest path, exercises path, payload kind, report path. Runs with -I in a worker env
# (or, for the reverse direction, the project's interpreter).
LOADER_SCRIPT = (
    r"""
import importlib.metadata
import importlib.util
import pickle
import sys

manifest_path, exercises_path, kind, report_path = sys.argv[1:5]
report = {"python": sys.version, "executable": sys.executable}

# Before anything is loaded: is skypickle there at all?
try:
    import skypickle  # noqa: F401
except ModuleNotFoundError as exc:
    report["skypickle_import"] = ("ModuleNotFoundError", exc.name)
else:
    report["skypickle_import"] = ("imported", skypickle.__file__)
    del skypickle

with open(manifest_path, "rb") as fh:
    manifest = pickle.load(fh)
report["importable_before"] = {
    name: importlib.util.find_spec(name) is not None
    for name in manifest["by_value_modules"] + ["cloudpickle", "joblib"]
}
main_globals = vars(sys.modules["__main__"])
report["corpus_names_here"] = sorted(n for n in manifest["corpus_names"] if n in main_globals)
"""
    + _OUTCOME
    + r"""

namespace = {"__name__": "compat_exercises"}
with open(exercises_path) as fh:
    exec(compile(fh.read(), "compat_exercises.py", "exec"), namespace)
exercises = namespace["EXERCISES"]

results = {}
for case in manifest["cases"]:
    entry = manifest["payloads"][kind][case]
    if not isinstance(entry, bytes):
        results[case] = entry  # the dump failed; the error is the outcome
        continue
    try:
        obj = pickle.loads(entry)
    except Exception as exc:
        results[case] = ("load-error", type(exc).__name__, str(exc))
        continue
    results[case] = plain_outcome(exercises[case], obj)
report["results"] = results

report["skypickle_modules_after"] = sorted(
    m for m in sys.modules if m.split(".")[0] in ("skypickle", "_skypickle")
)
report["cloudpickle_modules_after"] = sorted(m for m in sys.modules if "cloudpickle" in m)
versions = {}
for dist in ("cloudpickle", "joblib", "skypickle"):
    try:
        versions[dist] = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        versions[dist] = None
report["distributions"] = versions
vendored = sys.modules.get("joblib.externals.cloudpickle")
report["vendored_cloudpickle"] = getattr(vendored, "__version__", None)
with open(report_path, "wb") as fh:
    pickle.dump(report, fh)
"""
)


def clean_child_env() -> dict:
    """The environment for children: nothing that could put the project on a worker's path."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTHON") and k not in ("VIRTUAL_ENV", "CONDA_PREFIX")
    }


def site_packages(python: Path) -> str:
    """The site-packages directory of the venv whose interpreter is ``python``."""
    out = subprocess.run(
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


# Run first in a child that loads: `import skypickle` fails there (a worker without it).
BLOCK_SKYPICKLE = """\
import sys
class _NoSkypickle:
    def find_spec(self, name, path=None, target=None):
        if name == "skypickle" or name.startswith("skypickle."):
            raise ImportError("skypickle is not installed on this worker")
        return None
sys.meta_path.insert(0, _NoSkypickle())
"""
