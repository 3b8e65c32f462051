"""``python -m skypickle inspect FILE``: what a pickle contains, read **without executing it**.

The pickle's opcodes are run on a symbolic machine (``pickletools.genops`` decodes them): it
builds plain values for data, :class:`Global` for every name the pickle would import, and
:class:`Call` for every call it would make, but never imports or calls anything. From those it
reports the protocol, size, the modules and globals loading would import, the functions and
classes carried by value (skypickle's and cloudpickle's reconstructors are recognised), the
globals each function captures with the size of their pickled form, and out-of-band buffers.
"""

from __future__ import annotations

import argparse
import io
import pickletools
import sys
from dataclasses import dataclass, field
from typing import Any


class InspectError(Exception):
    """The input is not a pickle this reader understands."""


@dataclass(eq=False)
class Global:
    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class Call:
    """`func(*args)` as the loader would make it (REDUCE, NEWOBJ, INST, OBJ)."""

    func: Any
    args: Any
    kwargs: Any = None
    state: Any = None  # from BUILD


@dataclass(eq=False)
class Buffer:
    """An out-of-band buffer (NEXT_BUFFER)."""

    index: int


@dataclass(eq=False)
class Persistent:
    pid: Any


@dataclass(eq=False)
class SymDict:
    """A dict under construction: items kept in order, with the byte span of each value."""

    items: list = field(default_factory=list)  # (key, value, size in bytes)

    def get(self, key: str) -> Any:
        for k, v, _ in self.items:
            if k == key:
                return v
        return None


@dataclass(eq=False)
class SymSet:
    items: list = field(default_factory=list)
    frozen: bool = False


_MARK = object()


class Machine:
    """Runs a pickle's opcodes symbolically. ``calls`` lists every call in load order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.stack: list = []  # (value, start offset)
        self.marks: list = []  # stack depth and offset at each MARK
        self.memo: dict = {}
        self.calls: list[Call] = []
        self.globals: list[Global] = []
        self.buffers = 0
        self.protocol = 0
        self.persistent_ids = 0

    # -- stack helpers -----------------------------------------------------------------------
    def push(self, value: Any, start: int) -> None:
        self.stack.append((value, start))

    def pop(self) -> tuple:
        if not self.stack:
            raise InspectError("the pickle pops from an empty stack")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise InspectError("the pickle reads an empty stack")
        return self.stack[-1][0]

    def pop_mark(self) -> tuple[list, int]:
        """The items above the last MARK (with their offsets), and the MARK's offset."""
        if not self.marks:
            raise InspectError("the pickle uses a MARK it never set")
        depth, start = self.marks.pop()
        items = self.stack[depth:]
        del self.stack[depth:]
        return items, start

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> Any:
        try:
            ops = list(pickletools.genops(self.data))
        except Exception as exc:  # pickletools raises ValueError and friends on bad input
            raise InspectError(f"not a valid pickle: {exc}") from None
        if not ops:
            raise InspectError("empty input")
        result = None
        for index, (opcode, arg, pos) in enumerate(ops):
            end = ops[index + 1][2] if index + 1 < len(ops) else len(self.data)
            name = opcode.name
            if name == "STOP":
                result = self.pop()[0]
                break
            handler = getattr(self, "op_" + name, None)
            if handler is None:
                raise InspectError(f"unsupported opcode {name} at byte {pos}")
            handler(arg, pos, end)
        else:
            raise InspectError("the pickle ends without STOP")
        return result

    # -- opcodes -------------------------------------------------------------------------------
    def op_PROTO(self, arg, pos, end):
        self.protocol = arg

    def op_FRAME(self, arg, pos, end):
        pass

    def _push_arg(self, arg, pos, end):
        self.push(arg, pos)

    op_INT = op_BININT = op_BININT1 = op_BININT2 = op_LONG = op_LONG1 = op_LONG4 = _push_arg
    op_FLOAT = op_BINFLOAT = _push_arg
    op_STRING = op_BINSTRING = op_SHORT_BINSTRING = _push_arg
    op_UNICODE = op_SHORT_BINUNICODE = op_BINUNICODE = op_BINUNICODE8 = _push_arg
    op_BINBYTES = op_SHORT_BINBYTES = op_BINBYTES8 = op_BYTEARRAY8 = _push_arg

    def op_NONE(self, arg, pos, end):
        self.push(None, pos)

    def op_NEWTRUE(self, arg, pos, end):
        self.push(True, pos)

    def op_NEWFALSE(self, arg, pos, end):
        self.push(False, pos)

    def op_NEXT_BUFFER(self, arg, pos, end):
        self.push(Buffer(self.buffers), pos)
        self.buffers += 1

    def op_READONLY_BUFFER(self, arg, pos, end):
        pass

    def op_MARK(self, arg, pos, end):
        self.marks.append((len(self.stack), pos))

    def op_POP(self, arg, pos, end):
        if self.marks and self.marks[-1][0] == len(self.stack):
            self.marks.pop()  # POP on a MARK removes the mark
        else:
            self.pop()

    def op_POP_MARK(self, arg, pos, end):
        self.pop_mark()

    def op_DUP(self, arg, pos, end):
        self.push(self.top(), pos)

    # memo
    def _put(self, index):
        self.memo[index] = self.top()

    def op_PUT(self, arg, pos, end):
        self._put(arg)

    op_BINPUT = op_LONG_BINPUT = op_PUT

    def op_MEMOIZE(self, arg, pos, end):
        self._put(len(self.memo))

    def op_GET(self, arg, pos, end):
        if arg not in self.memo:
            raise InspectError(f"memo entry {arg} read before it was written (byte {pos})")
        self.push(self.memo[arg], pos)

    op_BINGET = op_LONG_BINGET = op_GET

    # containers
    def op_EMPTY_LIST(self, arg, pos, end):
        self.push([], pos)

    def op_EMPTY_TUPLE(self, arg, pos, end):
        self.push((), pos)

    def op_EMPTY_DICT(self, arg, pos, end):
        self.push(SymDict(), pos)

    def op_EMPTY_SET(self, arg, pos, end):
        self.push(SymSet(), pos)

    def op_LIST(self, arg, pos, end):
        items, start = self.pop_mark()
        self.push([v for v, _ in items], start)

    def op_TUPLE(self, arg, pos, end):
        items, start = self.pop_mark()
        self.push(tuple(v for v, _ in items), start)

    def _tuple_n(self, n, pos):
        items = [self.pop() for _ in range(n)][::-1]
        start = items[0][1] if items else pos
        self.push(tuple(v for v, _ in items), start)

    def op_TUPLE1(self, arg, pos, end):
        self._tuple_n(1, pos)

    def op_TUPLE2(self, arg, pos, end):
        self._tuple_n(2, pos)

    def op_TUPLE3(self, arg, pos, end):
        self._tuple_n(3, pos)

    def op_DICT(self, arg, pos, end):
        items, start = self.pop_mark()
        d = SymDict()
        self._add_items(d, items, pos)
        self.push(d, start)

    def _add_items(self, target, items, pos):
        if len(items) % 2:
            raise InspectError(f"odd number of items for a dict at byte {pos}")
        if not isinstance(target, (SymDict, Call)):
            raise InspectError(f"SETITEM(S) on a {type(target).__name__} at byte {pos}")
        for i in range(0, len(items), 2):
            (key, _), (value, vstart) = items[i], items[i + 1]
            if isinstance(target, SymDict):
                target.items.append((key, value, pos - vstart))

    def op_SETITEM(self, arg, pos, end):
        value = self.pop()
        key = self.pop()
        self._add_items(self.top(), [key, value], pos)

    def op_SETITEMS(self, arg, pos, end):
        items, _ = self.pop_mark()
        self._add_items(self.top(), items, pos)

    def op_APPEND(self, arg, pos, end):
        value, _ = self.pop()
        target = self.top()
        if isinstance(target, list):
            target.append(value)

    def op_APPENDS(self, arg, pos, end):
        items, _ = self.pop_mark()
        target = self.top()
        if isinstance(target, list):
            target.extend(v for v, _ in items)

    def op_ADDITEMS(self, arg, pos, end):
        items, _ = self.pop_mark()
        target = self.top()
        if isinstance(target, SymSet):
            target.items.extend(v for v, _ in items)

    def op_FROZENSET(self, arg, pos, end):
        items, start = self.pop_mark()
        self.push(SymSet([v for v, _ in items], frozen=True), start)

    # globals and calls
    def _global(self, module, name, pos):
        g = Global(str(module), str(name))
        self.globals.append(g)
        self.push(g, pos)

    def op_GLOBAL(self, arg, pos, end):
        module, _, name = arg.partition(" ")
        self._global(module, name, pos)

    def op_STACK_GLOBAL(self, arg, pos, end):
        (name, _), (module, start) = self.pop(), self.pop()
        if not isinstance(module, str) or not isinstance(name, str):
            raise InspectError(f"STACK_GLOBAL needs two str at byte {pos}")
        self._global(module, name, start)

    def op_EXT1(self, arg, pos, end):
        import copyreg

        key = copyreg._inverted_registry.get(arg)
        if key is None:
            self.push(Global("<extension>", str(arg)), pos)
        else:
            self._global(key[0], key[1], pos)

    op_EXT2 = op_EXT4 = op_EXT1

    def _call(self, func, args, start, kwargs=None):
        call = Call(func, args, kwargs)
        self.calls.append(call)
        self.push(call, start)

    def op_REDUCE(self, arg, pos, end):
        (args, _), (func, start) = self.pop(), self.pop()
        self._call(func, args, start)

    def op_NEWOBJ(self, arg, pos, end):
        (args, _), (cls, start) = self.pop(), self.pop()
        self._call(cls, args, start)

    def op_NEWOBJ_EX(self, arg, pos, end):
        (kwargs, _), (args, _), (cls, start) = self.pop(), self.pop(), self.pop()
        self._call(cls, args, start, kwargs)

    def op_INST(self, arg, pos, end):
        items, start = self.pop_mark()
        module, _, name = arg.partition(" ")
        g = Global(module, name)
        self.globals.append(g)
        self._call(g, tuple(v for v, _ in items), start)

    def op_OBJ(self, arg, pos, end):
        items, start = self.pop_mark()
        if not items:
            raise InspectError(f"OBJ without a class at byte {pos}")
        self._call(items[0][0], tuple(v for v, _ in items[1:]), start)

    def op_BUILD(self, arg, pos, end):
        state, _ = self.pop()
        target = self.top()
        if isinstance(target, Call):
            target.state = state

    def op_PERSID(self, arg, pos, end):
        self.persistent_ids += 1
        self.push(Persistent(arg), pos)

    def op_BINPERSID(self, arg, pos, end):
        pid, start = self.pop()
        self.persistent_ids += 1
        self.push(Persistent(pid), start)


# --------------------------------------------------------------------------------------------
# Interpretation: skypickle's and cloudpickle's reconstructors
# --------------------------------------------------------------------------------------------

SKY = "skypickle._skypickle"


def _wire_names() -> tuple:
    try:
        from . import _skypickle

        return tuple(_skypickle._WIRE_NAMES)
    except Exception:  # pragma: no cover - inspect without the compiled module
        return ()


def reconstructor(call: Call, wire: tuple) -> tuple[str, tuple]:
    """(name, args) of a call of skypickle's reconstructors, or ("", ()) for any other."""
    func, args = call.func, call.args if isinstance(call.args, tuple) else ()
    if not isinstance(func, Global):
        return "", ()
    if func.module == SKY and func.name == "_reconstruct" and args:
        op = args[0]
        if isinstance(op, int) and 0 <= op < len(wire):
            return wire[op], args[1:]
        return f"<op {op!r}>", args[1:]
    if func.module in (SKY, "skypickle") or func.module.startswith("cloudpickle"):
        return func.name, args
    return "", ()


def describe(value: Any, wire: tuple = ()) -> str:
    """A short description of a symbolic value."""
    if isinstance(value, Global):
        return f"global {value}"
    if isinstance(value, Call):
        name, args = reconstructor(value, wire)
        if name in ("_subimport", "subimport") and args:
            return f"module {args[0]}"
        if name in ("_dynamic_subimport", "dynamic_subimport") and args:
            return f"module {args[0]} (by value)"
        if name in ("_new_function", "_make_function") and args:
            return f"function {code_info(args[0], wire).qualname} (by value)"
        if name in ("_make_skeleton_class", "_make_skeleton_enum") and len(args) > 1:
            return f"class {args[1]} (by value)"
        if name:
            return f"{name}(...)"
        if isinstance(value.func, Global):
            return f"{value.func}(...) result"
        return "object"
    if isinstance(value, SymDict):
        return f"dict of {len(value.items)}"
    if isinstance(value, SymSet):
        return f"{'frozenset' if value.frozen else 'set'} of {len(value.items)}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, (str, bytes)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return repr(value) if value is None or isinstance(value, (bool, int, float)) else "object"


@dataclass
class CodeInfo:
    name: str = "?"
    qualname: str = "?"
    filename: str = "?"
    firstlineno: Any = "?"
    python: str = "unknown"


def code_info(value: Any, wire: tuple) -> CodeInfo:
    info = CodeInfo()
    if not isinstance(value, Call):
        return info
    name, args = reconstructor(value, wire)
    if name == "_make_code" and args:
        version, rest = args[0], args[1:]
        if len(rest) == 1 and isinstance(rest[0], tuple):
            rest = rest[0]
        info.python = str(version)
        _read_code_args(info, rest)
        return info
    func = value.func
    is_code_type = isinstance(func, Global) and func.name == "CodeType"
    if isinstance(func, Call) and isinstance(func.func, Global):
        # cloudpickle: _builtin_type("CodeType")(*args).
        is_code_type = func.func.name == "_builtin_type" and func.args == ("CodeType",)
    if is_code_type:
        _read_code_args(info, value.args)
    return info


def _read_code_args(info: CodeInfo, args: Any) -> None:
    """Name, qualname, file and first line from ``CodeType``'s positional arguments: 10 is
    the file name, 11 the name, then (3.11+) the qualified name, then the first line."""
    if not isinstance(args, tuple) or len(args) < 13:
        return
    info.filename, info.name = str(args[10]), str(args[11])
    if isinstance(args[12], str):
        info.qualname, info.firstlineno = args[12], args[13]
    else:
        info.qualname, info.firstlineno = info.name, args[12]


def analyse(data: bytes) -> dict:
    """Everything ``inspect`` reports, as plain data."""
    machine = Machine(data)
    machine.run()
    wire = _wire_names()
    functions: dict[int, dict] = {}
    classes = []
    for call in machine.calls:
        name, args = reconstructor(call, wire)
        if name in ("_new_function", "_make_function") and len(args) >= 2:
            info = code_info(args[0], wire)
            entry = {
                "name": info.name,
                "qualname": info.qualname,
                "file": info.filename,
                "line": info.firstlineno,
                "python": info.python,
                "globals": [],
            }
            if name == "_new_function" and len(args) >= 4 and isinstance(args[3], SymDict):
                entry["globals"] += _globals_of(args[3], wire)
            functions[id(call)] = entry
        elif name in ("_restore_function", "_function_setstate") and args:
            entry = functions.get(id(args[0]))
            if entry is None:
                continue
            state = args[1] if len(args) > 1 else None
            attrs = None
            if name == "_restore_function":
                if isinstance(state, SymDict):
                    entry["globals"] += _globals_of(state, wire)
                attrs = args[5] if len(args) > 5 else None
            elif name == "_function_setstate" and isinstance(state, tuple) and state:
                if len(state) == 6 and isinstance(state[0], SymDict):
                    entry["globals"] += _globals_of(state[0], wire)
                    attrs = state[4]
                elif len(state) == 2 and isinstance(state[1], SymDict):
                    slot = state[1].get("__globals__")
                    if isinstance(slot, SymDict):
                        entry["globals"] += _globals_of(slot, wire)
                    attrs = state[1]
            if isinstance(attrs, SymDict):
                # Set when they differ from what the code object gives (always, for a method's
                # __qualname__ before CPython 3.11, whose code objects have no co_qualname).
                for key in ("name", "qualname"):
                    value = attrs.get(f"__{key}__")
                    if isinstance(value, str):
                        entry[key] = value
        elif name in ("_make_skeleton_class", "_make_skeleton_enum") and len(args) >= 2:
            if name == "_make_skeleton_class":
                cls_name = args[1]
                kwargs = args[3] if len(args) > 3 else None
                module = kwargs.get("__module__") if isinstance(kwargs, SymDict) else None
            else:
                cls_name = args[1]
                module = args[4] if len(args) > 4 else None
            kind = "enum" if name.endswith("enum") else "class"
            classes.append({"name": str(cls_name), "module": module, "kind": kind, "call": call})
    # A class's methods: the by-value functions in its state; its place in the source: theirs.
    for cls in classes:
        call = cls.pop("call")
        methods = []
        for other in machine.calls:
            name, args = reconstructor(other, wire)
            if name == "_class_setstate" and args and args[0] is call and len(args) > 1:
                state = args[1]
                if isinstance(state, tuple) and state and isinstance(state[0], SymDict):
                    places = []
                    for key, value, _ in state[0].items:
                        if isinstance(value, Call) and id(value) in functions:
                            methods.append(key)
                            fn = functions[id(value)]
                            places.append((fn["file"] == "<string>", fn["file"], fn["line"]))
                    if places:
                        # Generated methods (dataclasses: "<string>") say least about where
                        # the class was written.
                        _, cls["file"], cls["line"] = min(places, key=lambda p: p[0])
                    qualname = state[0].get("__qualname__")
                    if isinstance(qualname, str):
                        cls["qualname"] = qualname
        cls["methods"] = methods
        cls.setdefault("qualname", cls["name"])
    seen = []
    for g in machine.globals:
        text = str(g)
        if text not in seen:
            seen.append(text)
    modules = []
    for g in machine.globals:
        if g.module not in modules:
            modules.append(g.module)
    for call in machine.calls:
        name, args = reconstructor(call, wire)
        if name in ("_subimport", "subimport") and args and isinstance(args[0], str):
            if args[0] not in modules:
                modules.append(args[0])
    return {
        "size": len(data),
        "protocol": machine.protocol,
        "out_of_band_buffers": machine.buffers,
        "persistent_ids": machine.persistent_ids,
        "modules": modules,
        "globals": seen,
        "functions": list(functions.values()),
        "classes": classes,
    }


def _globals_of(d: SymDict, wire: tuple = ()) -> list:
    return [
        {"name": str(k), "kind": describe(v, wire), "size": size}
        for k, v, size in d.items
        if not (isinstance(k, str) and k.startswith("__") and k.endswith("__"))
    ]


def format_report(path: str, report: dict) -> str:
    from . import _report

    out = io.StringIO()
    w = out.write
    extra = f", {report['out_of_band_buffers']} out-of-band buffer(s)"
    if report["persistent_ids"]:
        extra += f", {report['persistent_ids']} persistent id(s)"
    w(_report.header(f"inspect {path}", report["size"], report["protocol"], extra))
    w(_report.modules_section(report["modules"]))
    w("\nGlobals looked up by name:\n")
    for g in report["globals"] or ["(none)"]:
        w(f"  {g}\n")
    w(f"\nFunctions carried by value: {len(report['functions'])}\n")
    for fn in report["functions"]:
        w(f"  {fn['qualname']}  ({fn['file']}, line {fn['line']}; code for CPython ")
        w(f"{fn['python']})\n")
        for g in fn["globals"]:
            w(f"      global {g['name']}: {g['kind']}, {_report.human_size(g['size'])}\n")
    w(f"\nClasses carried by value: {len(report['classes'])}\n")
    for cls in report["classes"]:
        where = f"{cls.get('file', '?')}, line {cls.get('line', '?')}"
        w(f"  {cls['qualname']} ({cls['kind']}, module {cls['module']}; {where})")
        if cls["methods"]:
            w(f": methods {', '.join(cls['methods'])}")
        w("\n")
    w("\nNothing was executed: this report comes from reading the opcodes.\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="skypickle inspect",
        description="Describe a pickle without loading it (nothing in it is executed).",
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the pickle to read ('-' for standard input)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run_from_args(args: argparse.Namespace) -> int:
    import json

    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as f:
                data = f.read()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        report = analyse(data)
    except InspectError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 1
    except RecursionError:
        print(f"error: {args.file}: nested too deeply to inspect", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_report(args.file, report), end="")
    return 0
