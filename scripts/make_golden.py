#!/usr/bin/env python
"""Write the golden payloads of the running CPython into tests/golden/<3.X>/.

    python scripts/make_golden.py            # add the payloads that do not exist yet
    python scripts/make_golden.py --force    # also overwrite existing ones (see below)

Run it once per CPython minor version (3.9-3.13), each with skypickle built for that
interpreter. Every case of tests/golden/golden_cases.py is built from its source text (compiled
as ``golden/<case>.py`` in a namespace named ``__main__``, so nothing of this machine's paths
ends up in a payload) and dumped at protocols 2 to 5, one file per case and protocol:
``<case>.p<protocol>.pkl``. Functions of the standard library that travel by value with a case's
object (namedtuple's and dataclasses' generated methods, ...) are given the neutral file name
``golden/<module>.py`` while it is dumped (``neutral_file_names``).

Golden payloads are a record of what a release wrote: later releases must keep loading them.
So existing files are never rewritten (the script keeps them and says so) unless ``--force`` is
given, which is only for a golden that was never released. New cases (for a new reconstructor
or a new kind of object) are added by adding the case and running this script again on every
interpreter: only the new files are written.

The script then

* refuses payloads that contain a path of this machine or its host name;
* writes ``manifest.json``: for each file its case, protocol, sha256, size, the reconstructors
  it calls (``_reconstruct`` op numbers and their names, and reconstructors called by their
  attribute name), the Python and skypickle versions that wrote it; and the union of the ops
  covered;
* fails when some entry of ``_WIRE_NAMES`` is called by no payload of this version;
* loads every payload in a fresh interpreter with plain ``pickle.loads`` and runs its case's
  exercise, and fails if one does not behave.

Not every reconstructor is written by skypickle's everyday ``dumps``; the cases reach the others
the way a program can:

* ``_make_function`` (op 1) and ``_function_setstate`` (op 2) are what a function's reduce value
  holds: a ``Pickler`` subclass whose ``reducer_override`` returns
  ``super().reducer_override(obj)`` (as Ray's and Dask's picklers do) writes them; ``dumps``
  writes functions with ``_new_function``/``_restore_function`` (ops 22, 21) instead.
* ``_make_cell`` (op 4) is never written by today's dumper: a cell is written empty and filled by
  ``_cell_set`` afterwards, so that it may contain something that refers back to it. It stays
  part of the wire format (cloudpickle-style reduce values and shims use it), so the
  ``override_cells_code`` case writes it from a ``reducer_override`` that returns
  ``(_make_cell, (contents,))`` for cells; the same pickler writes code objects through
  ``_code_reduce``, the other form of ``_make_code``: ``(version, args)`` as one tuple.
* Reconstructors by attribute name (``skypickle._skypickle._make_skeleton_class`` instead of
  ``_reconstruct(9, ...)``): the dumper writes reduce values' reconstructors that way while
  ``copyreg``'s extension registry is not empty. The ``named`` case registers an extension for a
  name no payload uses while it is dumped, and sends code objects and cells through their reduce
  values too. ``_new_function`` and ``_restore_function`` (ops 22, 21) are only ever written as
  ``_reconstruct`` calls, and ``_make_cell`` by name is left out (cells there go as
  ``_make_empty_cell`` + ``_cell_set``, by name).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copyreg
import functools
import hashlib
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
sys.path.insert(0, str(GOLDEN))

import golden_cases as gc  # noqa: E402 - found through the path set just above
import skypickle  # noqa: E402
from skypickle import _skypickle  # noqa: E402

#: An extension code for a name nothing pickles: only there to make the registry non-empty.
EXTENSION = ("golden_no_such_module", "nothing", 0x5EED)


class OverridePickler(skypickle.Pickler):
    """Functions and classes through the reduce values of ``super().reducer_override``."""

    def reducer_override(self, obj):
        return super().reducer_override(obj)


class CellsCodePickler(OverridePickler):
    """Also cells as ``_make_cell(contents)`` and code objects as ``_make_code(version, args)``,
    the forms today's dumper does not write by itself (see the module docstring)."""

    def reducer_override(self, obj):
        if type(obj) is types.CellType:
            try:
                return (_skypickle._make_cell, (obj.cell_contents,))
            except ValueError:  # an empty cell: nothing for _make_cell to hold
                pass
        if type(obj) is types.CodeType:
            return _skypickle._code_reduce(obj)
        return super().reducer_override(obj)


@contextlib.contextmanager
def built(case: gc.Case):
    """The case's object, made from its source text, with what it needs while it is dumped."""
    saved_cwd = os.getcwd()
    with contextlib.ExitStack() as cleanup:
        if case.module_source is not None:
            module = types.ModuleType(gc.MODULE_NAME)
            code = compile(
                case.module_source, f"golden/{gc.MODULE_NAME}.py", "exec", dont_inherit=True
            )
            exec(code, module.__dict__)
            sys.modules[gc.MODULE_NAME] = module
            cleanup.callback(sys.modules.pop, gc.MODULE_NAME, None)
            skypickle.register_pickle_by_value(module)
            cleanup.callback(skypickle.unregister_pickle_by_value, module)
        if case.file_text is not None:
            # Opened by a relative name: a file's name travels with it.
            scratch = cleanup.enter_context(tempfile.TemporaryDirectory())
            Path(scratch, gc.INPUT_FILE).write_text(case.file_text, encoding="utf-8")
            os.chdir(scratch)
            cleanup.callback(os.chdir, saved_cwd)
        # The case runs as the program's __main__ module, a fresh one without __file__ (as in
        # a notebook): code that looks its module up (dataclasses' generated methods take
        # sys.modules[cls.__module__] as their globals) finds the case's namespace, not this
        # script's, whose __file__ would travel with them.
        main = types.ModuleType("__main__")
        saved_main = sys.modules["__main__"]
        sys.modules["__main__"] = main
        cleanup.callback(sys.modules.__setitem__, "__main__", saved_main)
        # dont_inherit: this file's `from __future__ import annotations` must not turn the
        # case's annotations into strings.
        code = compile(case.source, f"golden/{case.name}.py", "exec", dont_inherit=True)
        exec(code, main.__dict__)
        for value in vars(main).values():
            if isinstance(value, io.IOBase):  # the files a case opened
                cleanup.callback(value.close)
        renamed = cleanup.enter_context(neutral_file_names(main.OBJ))
        if renamed:
            print(f"{case.name}: neutral file names for {', '.join(renamed)}")
        yield main.OBJ


# --------------------------------------------------------------------------------------------
# Neutral file names for the standard library's code that travels by value
# --------------------------------------------------------------------------------------------

#: Where the code of a case comes from: ``golden/<case>.py``, ``golden/<module>.py``.
NEUTRAL_PREFIX = "golden/"


def class_maker(cls: type) -> str | None:
    """The standard-library module whose machinery made ``cls``'s generated methods: their code
    is compiled from text (``co_filename`` is ``"<string>"``), so it does not say itself."""
    namespace = vars(cls)
    if "__dataclass_fields__" in namespace:
        return "dataclasses"
    if issubclass(cls, tuple) and "_fields" in namespace:
        return "collections"  # collections.namedtuple, which typing.NamedTuple calls
    return None


def module_of_file(filename: str) -> str | None:
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return None


def with_file_name(code: types.CodeType, filename: str) -> types.CodeType:
    """``code`` and the code objects nested in it, compiled from ``filename``."""
    consts = tuple(
        with_file_name(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def referenced_names(code: types.CodeType):
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from referenced_names(const)


#: What makes a function a ``functools.singledispatch`` one for the dumper.
SINGLEDISPATCH_ATTRIBUTES = {"registry", "dispatch", "register", "_clear_cache", "__wrapped__"}


def by_value_functions(root) -> list[tuple[types.FunctionType, str | None]]:
    """The functions that travel by value with ``root`` and whose code does not come from a
    case (its file name is not ``golden/...``), each with the module that made the class it
    was found in (``class_maker``). Walks what the dumper sends by value: containers, the
    namespaces of by-value classes and modules (their classmethods, staticmethods and
    properties), functions' closures, defaults, attributes (``__wrapped__``) and the globals
    their code names, bound methods, ``functools`` wrappers (what their reduce values hold),
    instances' state. Functions and classes that are pickled by reference are not entered."""
    by_reference = _skypickle._should_pickle_by_reference
    found: list[tuple[types.FunctionType, str | None]] = []
    seen: set[int] = set()
    todo: list[tuple[object, str | None]] = [(root, None)]
    while todo:
        obj, maker = todo.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
            continue
        seen.add(id(obj))
        children: list = []
        if isinstance(obj, types.FunctionType) and SINGLEDISPATCH_ATTRIBUTES <= set(obj.__dict__):
            # A singledispatch function travels as _make_singledispatch(default, registry):
            # not its wrapper, its dispatch and register closures (functools' code).
            children += [obj.__dict__["__wrapped__"], obj.__dict__["registry"]]
        elif isinstance(obj, types.FunctionType):
            if by_reference(obj):
                continue
            if not obj.__code__.co_filename.startswith(NEUTRAL_PREFIX):
                found.append((obj, maker))
            children += [c.cell_contents for c in obj.__closure__ or () if not _empty(c)]
            children += [obj.__defaults__, obj.__kwdefaults__, obj.__dict__]
            children += [obj.__annotations__, getattr(obj, "__type_params__", None)]
            children += [
                obj.__globals__[name]
                for name in set(referenced_names(obj.__code__))
                if name in obj.__globals__
            ]
        elif isinstance(obj, type):
            if by_reference(obj):
                continue
            maker = class_maker(obj) or maker
            children += [vars(obj), obj.__bases__]
        elif isinstance(obj, types.ModuleType):
            if by_reference(obj):
                continue
            children.append(vars(obj))
        elif isinstance(obj, (dict, types.MappingProxyType)):
            children += list(obj.keys()) + list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children += list(obj)
        elif isinstance(obj, (classmethod, staticmethod)):
            children.append(obj.__func__)
        elif isinstance(obj, property):
            children += [obj.fget, obj.fset, obj.fdel]
        elif isinstance(obj, types.MethodType):
            children += [obj.__func__, obj.__self__]
        elif isinstance(obj, types.CellType):
            if not _empty(obj):
                children.append(obj.cell_contents)
        elif isinstance(obj, functools.partial):
            children += [obj.func, obj.args, obj.keywords]
        elif isinstance(obj, functools.cached_property):
            children.append(obj.func)
        elif isinstance(obj, functools._lru_cache_wrapper):
            children.append(obj.__wrapped__)  # _make_lru_cache(function, maxsize, typed)
        else:
            children.append(type(obj))
            state = getattr(obj, "__dict__", None)
            if isinstance(state, dict):
                children.append(state)
        todo.extend((child, maker) for child in children)
    return found


def _empty(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - reading it is the check
    except ValueError:
        return True
    return False


@contextlib.contextmanager
def neutral_file_names(obj):
    """While ``obj`` is dumped, the functions of the standard library that travel by value
    with it (the methods ``collections.namedtuple`` and ``dataclasses`` generate, the
    recursive-repr guard of a dataclass's ``__repr__``, ``enum.Flag._iter_member_by_def_``
    bound in a Flag whose members are not in ascending order, ...) carry a neutral file name,
    ``golden/<module>.py``, as the functions of the cases do (``golden/<case>.py``): their code
    (and the code nested in it) gets that ``co_filename``, and their module's ``__file__`` and
    ``__path__``, which the dumper sends with a by-value function's globals, read as neutral
    names too. The payload is still what today's dumper writes for such an object: only the
    file names in it are not this machine's. Everything is put back afterwards.

    Yields the names given, sorted."""
    neutral_names = []
    for func, maker in by_value_functions(obj):
        filename = func.__code__.co_filename
        module = module_of_file(filename) or maker
        if module is None:
            raise SystemExit(
                f"{func.__qualname__} travels by value, compiled from {filename!r}: which "
                "module made it? (see class_maker in scripts/make_golden.py)"
            )
        neutral_names.append((func, f"{NEUTRAL_PREFIX}{module}.py"))
    with contextlib.ExitStack() as restore:
        for func, neutral in neutral_names:
            restore.callback(setattr, func, "__code__", func.__code__)
            func.__code__ = with_file_name(func.__code__, neutral)
            namespace = func.__globals__
            for key, value in (("__file__", neutral), ("__path__", [neutral[: -len(".py")]])):
                if key in namespace and namespace[key] != value:
                    restore.callback(namespace.__setitem__, key, namespace[key])
                    namespace[key] = value
        yield sorted({neutral for _func, neutral in neutral_names})


class NamedPickler(OverridePickler):
    """Code objects through ``_code_reduce``, cells through a reducer of their own in the
    dispatch table (the dumper writes cells directly only for the default reducer): with an
    extension registered, every reconstructor of a reduce value is written by its name."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dispatch_table = collections.ChainMap(
            {types.CellType: lambda cell: _skypickle._cell_reduce(cell)},
            skypickle.Pickler.dispatch_table,
        )

    def reducer_override(self, obj):
        if type(obj) is types.CodeType:
            return _skypickle._code_reduce(obj)
        return super().reducer_override(obj)


PICKLERS = {
    "override": OverridePickler,
    "override_cells_code": CellsCodePickler,
    "named": NamedPickler,
}


def dump(case: gc.Case, obj, protocol: int) -> bytes:
    if case.mode == "dumps":
        return skypickle.dumps(obj, protocol=protocol)
    buffer = io.BytesIO()
    with contextlib.ExitStack() as cleanup:
        if case.mode == "named":
            copyreg.add_extension(*EXTENSION)
            cleanup.callback(copyreg.remove_extension, *EXTENSION)
        PICKLERS[case.mode](buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()


def file_name(case_name: str, protocol: int) -> str:
    return f"{case_name}.p{protocol}.pkl"


def parse_file_name(name: str) -> tuple[str, int]:
    stem = name[: -len(".pkl")]
    case_name, _, protocol = stem.rpartition(".p")
    return case_name, int(protocol)


def describe(data: bytes, wire: tuple) -> dict:
    ops, named = gc.reconstructor_calls(data)
    numbers = sorted(set(ops))
    unknown = [n for n in numbers if not 0 <= n < len(wire)]
    if unknown:
        raise SystemExit(f"payload calls _reconstruct with unknown ops {unknown}")
    entry = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "ops": [wire[n] for n in numbers],
    }
    if named:
        entry["named"] = sorted(set(named), key=wire.index)
    return entry


def verify_loads(directory: Path, entries: dict) -> list[str]:
    """Load every payload in fresh interpreters (one per protocol): the failures."""
    failures = []
    for protocol in gc.PROTOCOLS:
        files = [[name, e["case"]] for name, e in entries.items() if e["protocol"] == protocol]
        if not files:
            continue
        argv = gc.loader_command("exercise", str(directory), json.dumps(files))
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=directory)
        if proc.returncode != 0:
            failures.append(f"protocol {protocol}: loader exited {proc.returncode}\n{proc.stderr}")
            continue
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        if report["skypickle_preloaded"]:
            failures.append(f"protocol {protocol}: skypickle was imported before loading")
        for name, outcome in report["results"].items():
            if outcome != "ok":
                failures.append(f"{name}: {outcome}")
    return failures


def manifest_text(manifest: dict) -> str:
    """The manifest as JSON, one line per file (a diff shows which files were added)."""
    head = {k: v for k, v in manifest.items() if k != "files"}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in sorted(head.items())]
    entries = [
        f"    {json.dumps(name)}: {json.dumps(entry, sort_keys=True)}"
        for name, entry in sorted(manifest["files"].items())
    ]
    return "{\n" + "\n".join(lines) + '\n  "files": {\n' + ",\n".join(entries) + "\n  }\n}\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite existing golden files (only for goldens that were never released)",
    )
    parser.add_argument("--out", type=Path, default=GOLDEN, help="default: tests/golden")
    args = parser.parse_args(argv)

    wire = tuple(_skypickle._WIRE_NAMES)
    version = "{}.{}".format(*sys.version_info[:2])
    out = args.out / version
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"files": {}}
    hostname = socket.gethostname()

    written: dict[str, dict] = {}
    kept: list[str] = []
    for case in gc.CASES.values():
        if not case.applies():
            continue
        todo = []
        for protocol in gc.PROTOCOLS:
            path = out / file_name(case.name, protocol)
            if path.exists() and not args.force:
                kept.append(path.name)
            else:
                todo.append((protocol, path))
        if not todo:
            continue
        with built(case) as obj:
            for protocol, path in todo:
                data = dump(case, obj, protocol)
                leaks = gc.machine_leaks(data, hostname)
                if leaks:
                    raise SystemExit(f"{path.name} would name this machine: {', '.join(leaks)}")
                path.write_bytes(data)
                written[path.name] = {
                    "python": platform.python_version(),
                    "skypickle": skypickle.__version__,
                }

    files: dict[str, dict] = {}
    for path in sorted(out.glob("*.pkl")):
        data = path.read_bytes()
        case_name, protocol = parse_file_name(path.name)
        if case_name not in gc.CASES:
            raise SystemExit(f"{path.name}: no case {case_name!r} in golden_cases.py")
        case = gc.CASES[case_name]
        entry = {"case": case_name, "protocol": protocol}
        entry.update(describe(data, wire))
        if path.name in written:
            entry.update(written[path.name])
        else:
            previous = old["files"].get(path.name)
            if previous is None:
                raise SystemExit(f"{path.name} is in no manifest: where does it come from?")
            if previous["sha256"] != entry["sha256"]:
                raise SystemExit(
                    f"{path.name} differs from the manifest's sha256: golden payloads are never "
                    "changed (restore it from git)"
                )
            for key in ("python", "skypickle"):
                if key in previous:
                    entry[key] = previous[key]
        leaks = gc.machine_leaks(data, hostname)
        if leaks:
            raise SystemExit(f"{path.name} names this machine: {', '.join(leaks)}")
        files[path.name] = entry

    covered = sorted({wire.index(name) for e in files.values() for name in e["ops"]})
    named = sorted({n for e in files.values() for n in e.get("named", ())}, key=wire.index)
    manifest = {
        "python_minor": version,
        "protocols": list(gc.PROTOCOLS),
        "wire_names": list(wire),
        "ops_covered": [wire[n] for n in covered],
        "named_covered": named,
        "files": files,
    }
    manifest_path.write_text(manifest_text(manifest))

    print(f"CPython {version}: {len(written)} written, {len(kept)} kept, {len(files)} in all")
    missing = [name for n, name in enumerate(wire) if n not in covered]
    if missing:
        print(f"no payload calls these reconstructors: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"ops covered: all {len(wire)}; by attribute name too: {', '.join(named)}")
    failures = verify_loads(out, files)
    if failures:
        print("payloads that do not load and behave:", *failures, sep="\n", file=sys.stderr)
        return 1
    total = sum(e["size"] for e in files.values())
    print(f"all {len(files)} load and behave in a fresh interpreter ({total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
