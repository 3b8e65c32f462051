"""Helpers for the by-value tests: namespaces that no loader can import, and a child-process
protocol that sends plain results back to the test.

Every by-value case is loaded in a FRESH interpreter (``run_in_subprocess``) where the defining
code does not exist: the child script first checks that none of the test modules can be found,
loads the payload with plain ``pickle``, computes a ``result`` made of plain data (numbers,
strings, tuples, dicts, builtin types) and sends it back, pickled by the stdlib, after a marker
line on stdout. The test then compares it with the values computed in the test process.
"""

import base64
import pickle
import textwrap

import skypickle
from helpers import reconstructors

RESULT_MARK = "@@byvalue-result@@"

ALL_PROTOCOLS = tuple(range(pickle.HIGHEST_PROTOCOL + 1))

# Modules of the test suite: none of them may be importable in the child.
TEST_MODULES = (
    "conftest",
    "helpers",
    "objects",
    "byvalue_helpers",
    "byvalue_class_corpus",
    "test_by_value_functions",
    "test_by_value_modules",
    "test_classes_abc_slots_subclass",
    "test_classes_basic",
    "test_classes_determinism",
    "test_classes_differential",
    "test_classes_enum",
    "test_classes_stdlib",
    "test_classes_tracking",
    "test_submodule_cache",
    "test_deterministic",
    "deterministic_corpus",
    "deterministic_registered",
    "deterministic_exercise",
)

# Tools available to the child's code, and exec'd in the test process too (``compare_in_child``).
CHILD_TOOLS = """\
import base64
import pickle
import sys


def outcome(fn, *args, **kwargs):
    \"\"\"("ok", value) or ("raise", exception type name, message).\"\"\"
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:
        return ("raise", type(exc).__name__, str(exc))


def is_empty_cell(cell):
    try:
        cell.cell_contents
    except ValueError:
        return True
    return False


def run_async(coro):
    import asyncio

    return asyncio.run(coro)


async def drain_async_gen(agen):
    return [item async for item in agen]

"""

CHILD_PRELUDE = (
    CHILD_TOOLS
    + f"""
import importlib.util

for _name in {TEST_MODULES!r}:
    assert importlib.util.find_spec(_name) is None, f"{{_name}} is importable in the child"

if len(sys.argv) > 1:
    with open(sys.argv[1], "rb") as _f:
        PAYLOAD = _f.read()
else:
    PAYLOAD = None

"""
)

CHILD_EPILOGUE = f"""

for _name in {TEST_MODULES!r}:
    assert _name not in sys.modules, f"{{_name}} was imported by loading"
sys.stdout.write("\\n{RESULT_MARK}" + base64.b64encode(pickle.dumps(result, protocol=2)).decode())
"""


def _result_of(proc):
    """(result, text printed before it) from a child's output."""
    head, sep, tail = proc.stdout.rpartition(RESULT_MARK)
    assert sep, (
        f"child sent no result\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )
    return pickle.loads(base64.b64decode(tail.strip())), head


def run_child(run_in_subprocess, body, payload=None, **kw):
    """Run ``body`` (which must set ``result``) in a fresh interpreter; return ``result``.

    ``body`` sees ``PAYLOAD`` (the payload bytes, or None), ``outcome``, ``is_empty_cell``,
    ``run_async`` and ``drain_async_gen`` from the prelude.
    """
    code = CHILD_PRELUDE + textwrap.dedent(body) + CHILD_EPILOGUE
    proc = run_in_subprocess(code, payload=payload, **kw)
    return _result_of(proc)[0]


def child_output(run_in_subprocess, body, payload=None):
    """Like ``run_child`` but return (result, printed text before the result)."""
    code = CHILD_PRELUDE + textwrap.dedent(body) + CHILD_EPILOGUE
    proc = run_in_subprocess(code, payload=payload)
    return _result_of(proc)


_ns_counter = iter(range(10**9))


def make_namespace(source, module_name=None):
    """Execute ``source`` in a new globals dict whose ``__name__`` names no module.

    Its functions behave like those of a script or notebook: their ``__module__`` does not
    resolve to them, so they go by value, and they use real module-level globals.
    """
    if module_name is None:
        module_name = f"byvalue_namespace_{next(_ns_counter)}"
    namespace = {"__name__": module_name}
    code = compile(textwrap.dedent(source), f"<{module_name}>", "exec")
    exec(code, namespace)
    return namespace


def compare_in_child(run_in_subprocess, obj, body, *, protocol=None, dumps=None):
    """Run ``body`` on ``obj`` here and on its by-value copy in a fresh interpreter.

    ``body`` sees the object as ``OBJ`` and must set ``result`` (plain data). The payload is
    made first, so whatever ``body`` does to the originals here cannot leak into the child.
    Returns ``(expected, got, payload)``: the result here, the result there, and the bytes.
    """
    payload = (dumps or skypickle.dumps)(obj, protocol=protocol)
    got = run_child(
        run_in_subprocess, "OBJ = pickle.loads(PAYLOAD)\n" + textwrap.dedent(body), payload
    )
    namespace = {}
    exec(CHILD_TOOLS, namespace)
    namespace["OBJ"] = obj
    exec(textwrap.dedent(body), namespace)
    return namespace["result"], got, payload


def pack(**payloads):
    """Several payloads in one file for a child (a dict of bytes, pickled by the stdlib)."""
    return pickle.dumps(payloads)


def plain_call(fn, *args, **kwargs):
    """("ok", value) or ("raise", exception type name): like the child's ``outcome``."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:
        return ("raise", type(exc).__name__)


SKELETONS = ("_make_skeleton_class", "_make_skeleton_enum")


def count_skeletons(payload):
    calls = reconstructors(payload)
    return sum(calls[name] for name in SKELETONS)


def is_class_by_value(payload):
    return count_skeletons(payload) > 0
