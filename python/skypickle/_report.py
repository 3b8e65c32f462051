"""The report layout shared by ``explain`` (a payload about to be written) and ``inspect`` (a
payload on disk): a header line, then sections, sizes human-readable."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ._explain import Explanation


def human_size(n: int) -> str:
    """``1,234 B``, ``12.1 KiB``, ``3.0 MiB``, ``1.2 GiB``."""
    if n < 1024:
        return f"{n:,} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
    return f"{n:.1f} GiB"  # pragma: no cover


def header(label: str, size: int, protocol: int | None, extra: str = "") -> str:
    proto = f", pickle protocol {protocol}" if protocol is not None else ""
    return f"{label}: {human_size(size)} ({size:,} bytes){proto}{extra}\n"


def modules_section(modules: dict[str, list[str]] | list[str]) -> str:
    """``Modules imported on load:`` with, when known, what needs each."""
    out = io.StringIO()
    out.write("\nModules imported on load:\n")
    if not modules:
        out.write("  (none)\n")
    if isinstance(modules, dict):
        for module, reasons in modules.items():
            shown = ", ".join(reasons[:3])
            more = f" and {len(reasons) - 3} more" if len(reasons) > 3 else ""
            out.write(f"  {module}  <- {shown}{more}\n")
    else:
        for module in modules:
            out.write(f"  {module}\n")
    return out.getvalue()


def format_explanation(exp: Explanation, top: int = 20) -> str:
    out = io.StringIO()
    w = out.write
    shown = exp.largest(top)
    w(header(f"explain {exp.what}", exp.total, exp.protocol))
    w(f"\nLargest parts ({len(shown)} of {len(exp.entries)}; size includes what is nested):\n")
    if not shown:
        w("  (no functions, classes, globals or state: plain data)\n")
    chosen = {id(e) for e in shown}
    index = {id(e): i for i, e in enumerate(exp.entries)}
    children: dict[int | None, list] = {}
    for e in shown:
        # Nested under its nearest shown ancestor, else at the top.
        parent = e.parent
        while parent is not None and id(exp.entries[parent]) not in chosen:
            parent = exp.entries[parent].parent
        children.setdefault(parent, []).append(e)

    def walk(parent: int | None, depth: int) -> None:
        for e in sorted(children.get(parent, []), key=lambda e: (-e.bytes, e.path)):
            detail = f"  {e.detail}" if e.detail else ""
            w(f"  {human_size(e.bytes):>10}  {'  ' * depth}{e.path}  [{e.kind}]{detail}\n")
            walk(index[id(e)], depth + 1)

    walk(None, 0)
    w(f"  {human_size(exp.overhead):>10}  (opcodes outside these parts)\n")
    w(modules_section(exp.modules()))
    buffers = exp.buffers
    if buffers:
        w("\nBuffers:\n")
        for b in buffers:
            w(f"  {human_size(b.bytes):>10}  {b.path}  ({b.detail})\n")
    if exp.warnings:
        w("\nWarnings:\n")
        for warning in exp.warnings:
            w(f"  - {warning}\n")
    return out.getvalue()
