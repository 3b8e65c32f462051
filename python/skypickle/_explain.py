"""``explain(obj)``: what a payload of ``obj`` would carry, measured by pickling it once.

The measuring is done by the Rust pickler (``src/save/trace.rs``): it writes the payload
without keeping it and reports every part users ask about, each with its path in the graph (the
notation of skypickle's error notes) and the bytes written while inside it. This module turns
that report into an :class:`Explanation`: rows as data, a JSON-ready dict, and a readable report
whose layout ``skypickle inspect FILE`` shares (``_report``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from . import _report, _skypickle


@dataclass(frozen=True)
class Entry:
    """One measured part of a payload.

    ``bytes`` counts everything written while inside it (its children included), ``own``
    what is left without its children; ``parent`` is the index of the enclosing entry in
    :attr:`Explanation.entries` (None for a top-level one)."""

    path: str
    kind: str
    bytes: int
    own: int
    detail: str = ""
    parent: int | None = None


@dataclass(frozen=True)
class Import:
    """A global the payload names by reference: the loader imports ``module``."""

    module: str
    name: str
    needed_by: str


@dataclass
class Explanation:
    """What a payload carries. ``str()`` is a readable report (the 20 largest parts);
    :meth:`report` takes another count; :meth:`to_dict` gives JSON-ready data."""

    total: int
    protocol: int
    entries: list[Entry] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    what: str = "obj"

    @property
    def overhead(self) -> int:
        """Bytes written outside every entry (PROTO, STOP, frame headers, containers'
        opcodes): ``sum(e.own for e in entries) + overhead == total``."""
        return self.total - sum(e.own for e in self.entries)

    @property
    def buffers(self) -> list[Entry]:
        """The buffers (protocol 5 ``PickleBuffer``: numpy arrays, ...) and their sizes."""
        return [e for e in self.entries if e.kind == "buffer"]

    def largest(self, count: int = 20) -> list[Entry]:
        """The ``count`` largest entries, biggest first."""
        return sorted(self.entries, key=lambda e: (-e.bytes, e.path))[:count]

    def modules(self) -> dict[str, list[str]]:
        """Each module the loader imports, with what needs it (``path (name)``)."""
        found: dict[str, list[str]] = {}
        for imp in self.imports:
            reason = f"{imp.needed_by} ({imp.name})" if imp.name else imp.needed_by
            reasons = found.setdefault(imp.module, [])
            if reason not in reasons:
                reasons.append(reason)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "total": self.total,
            "protocol": self.protocol,
            "overhead": self.overhead,
            "entries": [asdict(e) for e in self.entries],
            "modules": self.modules(),
            "buffers": [asdict(e) for e in self.buffers],
            "warnings": list(self.warnings),
        }

    def report(self, top: int = 20) -> str:
        return _report.format_explanation(self, top)

    def __str__(self) -> str:
        return self.report()


def explain(
    obj: Any,
    *,
    protocol: int | None = None,
    compat: str | None = None,
    by_value: Any = None,
) -> Explanation:
    """What a payload of ``obj`` (``dumps(obj, protocol, compat=compat, by_value=by_value)``)
    would carry: every by-value function, class and module, captured global, closure cell,
    default, class attribute, instance state and buffer, with its path and size; the modules
    the loader imports and why; and warnings for the usual mistakes. ``obj`` is pickled once;
    nothing is kept but the measurements."""
    raw = _skypickle._explain(obj, protocol, compat, by_value)
    entries = [
        Entry(
            path=row["path"],
            kind=row["kind"],
            bytes=row["bytes"],
            own=row["own"],
            detail=row["detail"],
            parent=row["parent"],
        )
        for row in raw["entries"]
    ]
    imports = [Import(module, name, path) for module, name, path in raw["imports"]]
    proto = _skypickle.DEFAULT_PROTOCOL if protocol is None else protocol
    if proto < 0:
        proto = _skypickle.HIGHEST_PROTOCOL
    return Explanation(
        total=raw["total"],
        protocol=proto,
        entries=entries,
        imports=imports,
        warnings=list(raw["warnings"]),
        what=_describe(obj),
    )


def _describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None)
    if isinstance(name, str):
        return f"{getattr(obj, '__module__', '?')}.{name}"
    return f"a {type(obj).__name__}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="MODULE:OBJECT", help="the object to explain, e.g. mypkg.tasks:run"
    )
    parser.add_argument("--protocol", type=int, default=None, help="pickle protocol (default 5)")
    parser.add_argument("--compat", default=None, help="explain the compat= payload instead")
    parser.add_argument("--top", type=int, default=20, help="how many parts to show (20)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def resolve_target(target: str) -> Any:
    """``module:attr.attr``: import the module (the current directory first on the path, as
    ``python -m`` has it) and walk the attributes."""
    module_name, sep, attrs = target.partition(":")
    if not sep or not module_name or not attrs:
        raise ValueError(f"expected MODULE:OBJECT, got {target!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    obj: Any = importlib.import_module(module_name)
    for part in attrs.split("."):
        obj = getattr(obj, part)
    return obj


def run_from_args(args: argparse.Namespace) -> int:
    import json

    try:
        obj = resolve_target(args.target)
    except (ValueError, ImportError, AttributeError) as exc:
        print(f"error: {args.target}: {exc}", file=sys.stderr)
        return 2
    try:
        exp = explain(obj, protocol=args.protocol, compat=args.compat)
    except Exception as exc:  # the pickling error, with its note naming the path
        notes = "".join(f"\n  {n}" for n in getattr(exc, "__notes__", []))
        print(f"error: {args.target} cannot be pickled: {exc}{notes}", file=sys.stderr)
        return 1
    exp.what = args.target
    if args.json:
        print(json.dumps(exp.to_dict(), indent=2))
    else:
        print(exp.report(args.top), end="")
    return 0
