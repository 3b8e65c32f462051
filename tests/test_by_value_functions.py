"""Functions by value: what skypickle does for functions the loader cannot import by name.

Lambdas, nested functions and closures, functions of ``__main__`` and functions whose
``__qualname__``/``__module__`` do not lead back to them are pickled BY VALUE (code, the globals
they use, closure cells and attributes); importable functions by reference. Every by-value case
is loaded with plain ``pickle`` in a fresh interpreter where the defining code does not exist
(``byvalue_helpers.run_child`` checks that the test modules cannot be imported there) and its
behaviour is checked there.
"""

import functools
import json
import math
import os
import pickle
import struct
import sys
import threading
import types

import cloudpickle
import pytest
import skypickle
from byvalue_helpers import child_output, compare_in_child, make_namespace, run_child
from helpers import by_value_functions, reconstructors

PROTOCOLS = tuple(range(pickle.HIGHEST_PROTOCOL + 1))
PYTHON_TAG = f"{sys.version_info[0]}.{sys.version_info[1]}"


def is_by_value(payload):
    return by_value_functions(payload) > 0


# --------------------------------------------------------------------------------------------
# Module-level functions used by the tests. None of them may use a global of this module that
# would go by reference (this module does not exist in the child).
# --------------------------------------------------------------------------------------------


def importable_function(x):
    return x + 1


module_lambda = lambda x: x * 3


def renamed_function(x):
    return x - 1


renamed_function.__qualname__ = "no_such_attribute_here"


def shadowed(x):
    return ("original", x)


shadowed_original = shadowed


def shadowed(x):  # noqa: F811 - the original no longer resolves by its qualname
    return ("replacement", x)


def missing_module_function(x):
    return x * 10


missing_module_function.__module__ = "byvalue_no_such_module"

module_none_lambda = lambda x: -x
module_none_lambda.__module__ = None


def make_nested():
    def inner(x):
        return x * x

    return inner


def make_adder(k):
    def add(x):
        return x + k

    return add


# --------------------------------------------------------------------------------------------
# By reference or by value
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "func",
    [importable_function, shadowed, os.path.join, json.dumps, functools.reduce, len],
    ids=["module_function", "shadowing_function", "os.path.join", "json.dumps", "reduce", "len"],
)
@pytest.mark.parametrize("proto", PROTOCOLS)
def test_importable_functions_go_by_reference(func, proto):
    payload = skypickle.dumps(func, protocol=proto)
    assert not is_by_value(payload)
    assert pickle.loads(payload) is func
    if isinstance(func, types.FunctionType):
        assert skypickle._should_pickle_by_reference(func) is True


BY_VALUE_CASES = {
    "module_lambda": (module_lambda, (2,)),
    "renamed_qualname": (renamed_function, (5,)),
    "shadowed_original": (shadowed_original, (1,)),
    "missing_module": (missing_module_function, (4,)),
    "module_none": (module_none_lambda, (8,)),
    "nested": (make_nested(), (6,)),
    "closure": (make_adder(10), (5,)),
    "inline_lambda": (lambda a, b: (b, a), (1, 2)),
}


@pytest.mark.parametrize("name", list(BY_VALUE_CASES))
def test_non_importable_functions_go_by_value(name):
    func, args = BY_VALUE_CASES[name]
    assert skypickle._should_pickle_by_reference(func) is False
    payload = skypickle.dumps(func)
    assert is_by_value(payload)
    loaded = pickle.loads(payload)
    assert loaded is not func
    assert loaded(*args) == func(*args)


def test_by_value_functions_work_in_fresh_interpreter(run_in_subprocess):
    expected, got, _ = compare_in_child(
        run_in_subprocess,
        BY_VALUE_CASES,
        """
        result = {
            name: (outcome(f, *args), f.__name__, f.__qualname__, f.__module__)
            for name, (f, args) in OBJ.items()
        }
        """,
    )
    assert got == expected
    assert got["shadowed_original"][0] == ("ok", ("original", 1))
    assert got["module_none"][3] is None


def test_main_functions_go_by_value(run_in_subprocess):
    """Functions of a script's ``__main__`` travel by value and do not touch the loader's
    ``__main__``."""
    payload = run_child(
        run_in_subprocess,
        """
        import skypickle

        def square(x):
            return x * x

        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        result = skypickle.dumps((square, fib))
        """,
    )
    assert is_by_value(payload)
    got = run_child(
        run_in_subprocess,
        """
        import __main__

        loaded = pickle.loads(PAYLOAD)  # not unpacked: these names must stay unbound here
        result = (
            loaded[0](7),
            loaded[1](15),
            loaded[0].__module__,
            loaded[1].__qualname__,
            hasattr(__main__, "square") or hasattr(__main__, "fib"),
            loaded[1].__globals__ is vars(__main__),
            loaded[1].__globals__["fib"] is loaded[1],
        )
        """,
        payload=payload,
    )
    assert got == (49, 610, "__main__", "fib", False, False, True)


# --------------------------------------------------------------------------------------------
# Attributes
# --------------------------------------------------------------------------------------------


def make_annotated():
    scale = 10

    def compute(
        a: int, b: "list[int]" = 2, /, c: float = 3.5, *args: tuple, d: bytes, e=5, **kw: dict
    ) -> list:
        """Compute things."""
        return [a, b, c, args, d, e, sorted(kw.items()), scale]

    compute.custom_attr = {"k": [1, 2]}
    compute.other = "value"
    return compute


METADATA_BODY = """
f = OBJ
code = f.__code__
result = {
    "name": f.__name__,
    "qualname": f.__qualname__,
    "module": f.__module__,
    "doc": f.__doc__,
    "defaults": f.__defaults__,
    "kwdefaults": f.__kwdefaults__,
    "annotations": f.__annotations__,
    "dict": dict(f.__dict__),
    "code": (
        code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_varnames,
        code.co_freevars, code.co_flags, code.co_name, code.co_firstlineno,
    ),
    "closure_is_none": f.__closure__ is None,
    "call_minimal": outcome(f, 1, d=b"x"),
    "call_full": outcome(f, 1, 20, 30, 40, 50, d=b"y", e=6, z=9, y=8),
    "posonly_as_keyword": outcome(f, a=1, d=b"x"),
    "missing_kwonly": outcome(f, 1),
}
"""


def test_metadata_preserved(run_in_subprocess):
    func = make_annotated()
    expected, got, _ = compare_in_child(run_in_subprocess, func, METADATA_BODY)
    assert got == expected
    assert got["annotations"] == {
        "a": int,
        "b": "list[int]",
        "c": float,
        "args": tuple,
        "d": bytes,
        "kw": dict,
        "return": list,
    }
    assert got["defaults"] == (2, 3.5)
    assert got["kwdefaults"] == {"e": 5}
    assert got["dict"] == {"custom_attr": {"k": [1, 2]}, "other": "value"}
    assert got["posonly_as_keyword"][0:2] == ("raise", "TypeError")
    assert got["missing_kwonly"][0:2] == ("raise", "TypeError")
    assert got["qualname"] == "make_annotated.<locals>.compute"
    assert got["module"] == __name__


def test_rewritten_metadata_preserved(run_in_subprocess):
    """Attributes set after definition (not those of the code object) are the ones that travel."""
    func = make_adder(1)
    func.__name__ = "renamed"
    func.__qualname__ = "Somewhere.renamed"
    func.__module__ = "byvalue_other_module"
    func.__doc__ = "new doc"
    func.__defaults__ = (41,)
    func.__kwdefaults__ = None
    func.__annotations__ = {"x": "anything"}
    expected, got, _ = compare_in_child(run_in_subprocess, func, METADATA_BODY)
    assert got == expected
    assert got["name"] == "renamed"
    assert got["qualname"] == "Somewhere.renamed"
    assert got["module"] == "byvalue_other_module"
    assert got["defaults"] == (41,)
    assert got["call_minimal"] == ("raise", "TypeError", expected["call_minimal"][2])


def make_wrapped():
    def decorator(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return ("wrapped", fn(*args, **kwargs))

        return wrapper

    @decorator
    def target(x: int, y: int = 2) -> int:
        """Target doc."""
        return x * y

    return target


def test_functools_wraps_metadata(run_in_subprocess):
    expected, got, _ = compare_in_child(
        run_in_subprocess,
        make_wrapped(),
        """
        f = OBJ
        inner = f.__wrapped__
        result = {
            "call": f(3),
            "name": f.__name__,
            "qualname": f.__qualname__,
            "doc": f.__doc__,
            "annotations": f.__annotations__,
            "dict_keys": sorted(f.__dict__),
            "wrapped_type": type(inner).__name__,
            "wrapped_call": inner(3, 3),
            "wrapped_name": inner.__qualname__,
            "wrapped_is_closure_target": f.__closure__[0].cell_contents is inner,
        }
        """,
    )
    assert got == expected
    assert got["call"] == ("wrapped", 6)
    assert got["name"] == "target"
    assert got["doc"] == "Target doc."
    assert got["annotations"] == {"x": int, "y": int, "return": int}
    assert "__wrapped__" in got["dict_keys"]
    assert got["wrapped_is_closure_target"] is True


def make_raiser():
    def boom(a):
        b = a + 1
        if b > 0:
            raise ValueError(b)
        return b

    return boom


def test_tracebacks_point_at_the_original_source(run_in_subprocess):
    """The line table, exception table and file name travel with the code."""
    expected, got, _ = compare_in_child(
        run_in_subprocess,
        make_raiser(),
        """
        import traceback

        code = OBJ.__code__
        try:
            OBJ(1)
        except ValueError as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = (frame.lineno, frame.filename, frame.name, exc.args)
        result = {
            "where": where,
            "lines": list(code.co_lines()) if hasattr(code, "co_lines") else None,
            "positions": list(code.co_positions()) if hasattr(code, "co_positions") else None,
            "code_equal_fields": (code.co_code, code.co_consts, code.co_names, code.co_nlocals),
            "returns": OBJ(-5),
        }
        """,
    )
    assert got == expected
    assert got["where"][1] == __file__
    assert got["where"][2] == "boom"
    assert got["returns"] == -4


# --------------------------------------------------------------------------------------------
# Closures
# --------------------------------------------------------------------------------------------


def make_closures():
    number, text, pair = 7, "seven", (1, (2, 3))

    def values():
        return number, text, pair

    acc, table = [], {"start": 0}

    def unhashable(x):
        acc.append(x)
        table[x] = len(acc)
        return list(acc), dict(table)

    if False:  # the free variable is never bound: its cell stays empty
        unbound = None

    def empty_cell():
        return unbound  # noqa: F821

    adder = make_adder(5)

    def closure_of_closure(x):
        return adder(x) * 2

    mod = json

    def module_in_cell():
        return mod.dumps({"b": [1, 2]})

    return {
        "values": values,
        "unhashable": unhashable,
        "empty_cell": empty_cell,
        "closure_of_closure": closure_of_closure,
        "module_in_cell": module_in_cell,
        "no_closure": lambda x: x + 1,
    }


def test_closures(run_in_subprocess):
    expected, got, _ = compare_in_child(
        run_in_subprocess,
        make_closures(),
        """
        c = OBJ
        result = {
            "values": c["values"](),
            "unhashable": (c["unhashable"]("a"), c["unhashable"]("b")),
            "empty_cell": outcome(c["empty_cell"]),
            "empty_cell_is_empty": is_empty_cell(c["empty_cell"].__closure__[0]),
            "closure_of_closure": c["closure_of_closure"](1),
            "module_in_cell": c["module_in_cell"](),
            "no_closure": c["no_closure"](1),
            "no_closure_is_none": c["no_closure"].__closure__ is None,
            "freevars": {k: f.__code__.co_freevars for k, f in c.items()},
            "ncells": {k: len(f.__closure__ or ()) for k, f in c.items()},
        }
        """,
    )
    assert got == expected
    assert got["empty_cell"][0:2] == ("raise", "NameError")
    assert "unbound" in got["empty_cell"][2]
    assert got["empty_cell_is_empty"] is True
    assert got["no_closure_is_none"] is True
    assert got["unhashable"][1] == (["a", "b"], {"start": 0, "a": 1, "b": 2})
    assert got["closure_of_closure"] == 12


def make_counter():
    count = 0

    def inc():
        nonlocal count
        count += 1
        return count

    def get():
        return count

    return inc, get


def test_shared_nonlocal_cell_stays_shared(run_in_subprocess):
    """Two closures that share a ``nonlocal`` cell still share ONE cell after loading.

    This goes BEYOND cloudpickle 3.1.2, which gives each loaded function its own fresh cells
    (there, ``inc()`` changes a copy that ``get()`` never sees, and ``get()`` stays at the value
    the cell had when pickled). skypickle pickles cells by identity.
    """
    inc, get = make_counter()
    inc()  # the state at pickling time travels: the loaded counter starts at 1
    expected, got, _ = compare_in_child(
        run_in_subprocess,
        (inc, get),
        """
        inc, get = OBJ
        before = get()
        inc()
        inc()
        result = (before, get(), inc.__closure__[0] is get.__closure__[0], inc(), get())
        """,
    )
    assert got == expected == (1, 3, True, 4, 4)


RECURSION_SOURCE = """
def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)

def is_even(n):
    return True if n == 0 else is_odd(n - 1)

def is_odd(n):
    return False if n == 0 else is_even(n - 1)
"""


def make_recursive_closures():
    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    def is_even(n):
        return True if n == 0 else is_odd(n - 1)

    def is_odd(n):
        return False if n == 0 else is_even(n - 1)

    return fact, is_even


def test_recursive_functions(run_in_subprocess):
    ns = make_namespace(RECURSION_SOURCE)
    closure_fact, closure_even = make_recursive_closures()
    obj = {
        "global_fact": ns["fact"],
        "global_even": ns["is_even"],
        "closure_fact": closure_fact,
        "closure_even": closure_even,
    }
    expected, got, _ = compare_in_child(
        run_in_subprocess,
        obj,
        """
        c = OBJ
        result = {
            "global_fact": c["global_fact"](10),
            "global_self": c["global_fact"].__globals__["fact"] is c["global_fact"],
            "global_even": (c["global_even"](10), c["global_even"](7)),
            "global_odd_shares_ns": (
                c["global_even"].__globals__["is_odd"].__globals__
                is c["global_even"].__globals__
            ),
            "closure_fact": c["closure_fact"](6),
            "closure_self": c["closure_fact"].__closure__[0].cell_contents is c["closure_fact"],
            "closure_even": (c["closure_even"](10), c["closure_even"](7)),
        }
        """,
    )
    assert got == expected
    assert got["global_fact"] == 3628800
    assert got["global_self"] is True
    assert got["global_even"] == (True, False)
    assert got["global_odd_shares_ns"] is True
    assert got["closure_self"] is True
    assert got["closure_even"] == (True, False)


# --------------------------------------------------------------------------------------------
# Generators, coroutines, async generators
# --------------------------------------------------------------------------------------------


def make_generator_functions():
    base = 10

    def gen(n):
        for i in range(n):
            yield base + i

    def delegating(n):
        result = yield from gen(n)
        return result

    def accumulator():
        total = 0
        while True:
            value = yield total
            if value is None:
                return total
            total += value

    async def coro(x):
        return x * base

    async def coro_awaiting(x):
        return await coro(x) + 1

    async def agen(n):
        for i in range(n):
            yield await coro(i)

    return {
        "gen": gen,
        "delegating": delegating,
        "accumulator": accumulator,
        "coro": coro,
        "coro_awaiting": coro_awaiting,
        "agen": agen,
    }


def test_generators_and_coroutines(run_in_subprocess):
    expected, got, _ = compare_in_child(
        run_in_subprocess,
        make_generator_functions(),
        """
        import inspect

        c = OBJ
        acc = c["accumulator"]()
        sent = [next(acc), acc.send(3), acc.send(4)]
        try:
            acc.send(None)
        except StopIteration as stop:
            sent.append(("stop", stop.value))
        result = {
            "gen": list(c["gen"](3)),
            "delegating": list(c["delegating"](2)),
            "accumulator": sent,
            "coro": run_async(c["coro"](4)),
            "coro_awaiting": run_async(c["coro_awaiting"](4)),
            "agen": run_async(drain_async_gen(c["agen"](3))),
            "kinds": {
                k: (
                    inspect.isgeneratorfunction(f),
                    inspect.iscoroutinefunction(f),
                    inspect.isasyncgenfunction(f),
                )
                for k, f in c.items()
            },
        }
        """,
    )
    assert got == expected
    assert got["gen"] == [10, 11, 12]
    assert got["accumulator"] == [0, 3, 7, ("stop", 7)]
    assert got["coro_awaiting"] == 41
    assert got["agen"] == [0, 10, 20]
    assert got["kinds"]["agen"] == (False, False, True)
    assert got["kinds"]["coro"] == (False, True, False)


# --------------------------------------------------------------------------------------------
# Globals
# --------------------------------------------------------------------------------------------


def test_only_used_globals_travel(run_in_subprocess):
    ns = make_namespace(
        """
        import math

        USED_VALUE = 41
        UNUSED_GLOBAL_MARKER_Q7 = "byvalue-unused-global-value"

        def f(x):
            return USED_VALUE + x + math.floor(1.5)
        """
    )
    expected, got, payload = compare_in_child(
        run_in_subprocess,
        ns["f"],
        """
        f = OBJ
        result = (
            f(1),
            sorted(k for k in f.__globals__ if not k.startswith("__")),
            f.__globals__["__name__"],
        )
        """,
    )
    assert b"UNUSED_GLOBAL_MARKER_Q7" not in payload
    assert b"byvalue-unused-global-value" not in payload
    assert b"USED_VALUE" in payload
    assert got[0] == 43
    assert got[1] == ["USED_VALUE", "math"]
    assert got[2] == ns["__name__"]
    # In the defining namespace everything is there: only the child's copy is pruned.
    assert expected[0] == got[0]


def test_globals_of_nested_code_travel(run_in_subprocess):
    ns = make_namespace(
        """
        FACTOR = 3
        OFFSET = 100
        IN_GENEXPR = 1000
        NOT_USED_NESTED_R2 = "byvalue-nested-unused"

        def f(xs):
            scale = lambda v: v * FACTOR
            def shift(v):
                return v + OFFSET
            return [shift(scale(x)) for x in xs], sum(IN_GENEXPR for _ in xs)
        """
    )
    expected, got, payload = compare_in_child(
        run_in_subprocess,
        ns["f"],
        """
        result = (OBJ([1, 2]), sorted(k for k in OBJ.__globals__ if not k.startswith("__")))
        """,
    )
    assert got == (([103, 106], 2000), ["FACTOR", "IN_GENEXPR", "OFFSET"])
    assert expected[0] == got[0]
    assert b"NOT_USED_NESTED_R2" not in payload


def test_builtins_restored(run_in_subprocess):
    ns = make_namespace(
        """
        def f(xs):
            print("printed", len(xs), sep="|")
            return sorted(xs), isinstance(xs, list), max(xs, key=abs)
        """
    )
    payload = skypickle.dumps(ns["f"])
    got, printed = child_output(
        run_in_subprocess,
        """
        import builtins

        f = pickle.loads(PAYLOAD)
        b = f.__globals__["__builtins__"]
        result = (f([3, 1, 2]), b is builtins.__dict__ or b is builtins)
        """,
        payload=payload,
    )
    assert got == (([1, 2, 3], True, 3), True)
    assert "printed|3" in printed


def make_package_closure():
    import xml.etree.ElementTree  # binds the local name ``xml``: a closure cell below

    def make_comment(text):
        return xml.etree.ElementTree.Comment(text)

    return make_comment


def test_submodules_reached_as_attributes(run_in_subprocess):
    """``xml.etree.ElementTree.Comment`` through the name ``xml`` (a global or a closure cell)
    works in an interpreter that never imported ``xml.etree``."""
    ns = make_namespace(
        """
        import xml.etree.ElementTree

        def make_comment(text):
            return xml.etree.ElementTree.Comment(text)
        """
    )
    payload = skypickle.dumps((ns["make_comment"], make_package_closure()))
    got = run_child(
        run_in_subprocess,
        """
        before = [m for m in sys.modules if m == "xml" or m.startswith("xml.")]
        by_global, by_closure = pickle.loads(PAYLOAD)
        ET = sys.modules["xml.etree.ElementTree"]
        out = []
        for f in (by_global, by_closure):
            c = f("hello")
            out.append((c.text, c.tag is ET.Comment))
        result = (
            before,
            out,
            sorted(k for k in by_global.__globals__ if not k.startswith("__")),
        )
        """,
        payload=payload,
    )
    assert got == ([], [("hello", True), ("hello", True)], ["xml"])


def test_more_than_65536_globals(run_in_subprocess):
    """``LOAD_GLOBAL`` arguments above 65535 need EXTENDED_ARG prefixes: all used globals travel,
    and an unused one does not."""
    n = 65536 + 300
    names = [f"v{i}" for i in range(n)]
    source = "".join(f"{name} = {i}\n" for i, name in enumerate(names))
    source += "unused_big_marker_k9 = -1\n"
    source += "def f():\n    return (" + ", ".join(names) + ",)\n"
    ns = make_namespace(source)
    func = ns["f"]
    assert len(func.__code__.co_names) == n
    payload = skypickle.dumps(func)
    assert b"unused_big_marker_k9" not in payload
    got = run_child(
        run_in_subprocess,
        """
        f = pickle.loads(PAYLOAD)
        values = f()
        user = [k for k in f.__globals__ if not k.startswith("__")]
        result = (len(values), values[:3], values[-3:], values == tuple(range(len(values))),
                  len(user), user[-1])
        """,
        payload=payload,
    )
    assert got == (n, (0, 1, 2), (n - 3, n - 2, n - 1), True, n, f"v{n - 1}")


GLOBAL_COUNTER_SOURCE = """
counter = 0

def bump():
    global counter
    counter += 1
    return counter

def read():
    return counter
"""


def test_functions_of_one_dump_share_globals(run_in_subprocess):
    ns = make_namespace(GLOBAL_COUNTER_SOURCE)
    payload = skypickle.dumps((ns["bump"], ns["read"]))
    got = run_child(
        run_in_subprocess,
        """
        bump, read = pickle.loads(PAYLOAD)
        bump()
        bump()
        result = (read(), bump.__globals__ is read.__globals__)
        """,
        payload=payload,
    )
    assert got == (2, True)


def test_separate_dumps_do_not_share_globals(run_in_subprocess):
    ns = make_namespace(GLOBAL_COUNTER_SOURCE)
    payload = pickle.dumps((skypickle.dumps(ns["bump"]), skypickle.dumps(ns["read"])))
    got = run_child(
        run_in_subprocess,
        """
        p_bump, p_read = pickle.loads(PAYLOAD)
        bump = pickle.loads(p_bump)
        read = pickle.loads(p_read)
        bump()
        bump()
        again = pickle.loads(p_bump)
        result = (read(), bump.__globals__["counter"], bump.__globals__ is read.__globals__,
                  again(), again.__globals__ is bump.__globals__)
        """,
        payload=payload,
    )
    assert got == (0, 2, False, 1, False)


def test_loaders_modules_are_never_mutated(run_in_subprocess):
    """A loaded function writes its globals into its own new namespace, even when a module of
    its ``__module__``'s name exists in the loader (a stand-in module, or the real ``json``)."""
    stand_in = make_namespace(GLOBAL_COUNTER_SOURCE, module_name="byvalue_loader_module")
    json_named = make_namespace(GLOBAL_COUNTER_SOURCE, module_name="json")
    assert skypickle._should_pickle_by_reference(json_named["bump"]) is False
    payload = skypickle.dumps((stand_in["bump"], json_named["bump"], json_named["read"]))
    got = run_child(
        run_in_subprocess,
        """
        import json
        import types

        module = types.ModuleType("byvalue_loader_module")
        module.counter = 100
        sys.modules["byvalue_loader_module"] = module
        bump_a, bump_b, read_b = pickle.loads(PAYLOAD)
        result = (
            bump_a(), bump_a(), module.counter, bump_a.__globals__ is vars(module),
            bump_b(), read_b(), hasattr(json, "counter"), bump_b.__globals__ is vars(json),
            bump_a.__module__, bump_b.__module__,
        )
        """,
        payload=payload,
    )
    assert got == (1, 2, 100, False, 1, 1, False, False, "byvalue_loader_module", "json")


def test_loading_in_process_does_not_touch_the_original_namespace():
    ns = make_namespace(GLOBAL_COUNTER_SOURCE)
    bump, read = pickle.loads(skypickle.dumps((ns["bump"], ns["read"])))
    assert (bump(), bump(), read()) == (1, 2, 2)
    assert ns["counter"] == 0
    assert bump.__globals__ is not ns
    assert ns["read"]() == 0


# --------------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------------


def make_protocol_corpus():
    ns = make_namespace(RECURSION_SOURCE + GLOBAL_COUNTER_SOURCE)
    inc, get = make_counter()

    def kwonly(a, *, b=2, c):
        return a, b, c

    tagged = make_adder(3)
    tagged.tag = ("t", 1)
    return {
        "lambda": lambda x, y=4: x * y,
        "kwonly": kwonly,
        "closure": tagged,
        "gen": make_generator_functions()["gen"],
        "fact": ns["fact"],
        "bump": ns["bump"],
        "read": ns["read"],
        "counter": (inc, get),
        "text": lambda: "snowman \u2603 and \U0001f600",
    }


PROTOCOL_BODY = """
c = OBJ
inc, get = c["counter"]
inc()
c["bump"]()
result = {
    "lambda": (c["lambda"](3), c["lambda"](3, 5)),
    "kwonly": (c["kwonly"](1, c=3), c["kwonly"].__kwdefaults__),
    "closure": (c["closure"](4), c["closure"].tag),
    "gen": list(c["gen"](3)),
    "fact": c["fact"](8),
    "shared_globals": c["read"](),
    "shared_cell": get(),
    "text": c["text"](),
}
"""


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_every_protocol(run_in_subprocess, proto):
    expected, got, payload = compare_in_child(
        run_in_subprocess, make_protocol_corpus(), PROTOCOL_BODY, protocol=proto
    )
    if proto >= 2:
        assert payload[:2] == bytes([0x80, proto])
    else:
        assert payload[:1] != b"\x80"
    assert got == expected
    assert got["shared_globals"] == 1
    assert got["shared_cell"] == 1


# --------------------------------------------------------------------------------------------
# Differential: skypickle and cloudpickle payloads loaded in one fresh interpreter
# --------------------------------------------------------------------------------------------


def make_differential_corpus():
    ns = make_namespace(
        """
        import math
        import os
        import xml.etree.ElementTree

        RATE = 1.5
        LOOKUP = {"a": 1, "b": 2}

        def helper(x):
            return x * RATE

        def uses_globals(key, n):
            return helper(n) + LOOKUP.get(key, 0)

        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        def uses_math(x):
            return math.sqrt(x), math.pi

        def comment_text(t):
            return xml.etree.ElementTree.Comment(t).text

        def comprehension(xs):
            return {k: [v * RATE for v in range(k)] for k in xs}
        """
    )
    fact, is_even = make_recursive_closures()
    gens = make_generator_functions()
    adder = make_adder(100)
    mod = os

    def kwonly(a, *, b=2, c):
        return (a, b, c)

    def posonly(a, b=5, /, c=6):
        return a - b + c

    def varargs(*args, **kwargs):
        return args, sorted(kwargs.items())

    acc = []

    def appender(x):
        acc.append(x)
        return list(acc)

    def self_attr(x):
        return x + self_attr.offset

    self_attr.offset = 5

    def raiser(x):
        if x < 0:
            raise ValueError(f"negative: {x}")
        return x

    def drive_accumulator(*values):
        g = gens["accumulator"]()
        next(g)
        for v in values:
            g.send(v)
        try:
            g.send(None)
        except StopIteration as stop:
            return stop.value

    def drive_coro(x):
        co = gens["coro_awaiting"](x)
        try:
            co.send(None)
        except StopIteration as stop:
            return stop.value

    def mutable_default(x, seen=[]):  # noqa: B006 - the shared default is the point
        seen.append(x)
        return len(seen)

    return {
        "lambda": (lambda x: x * 2 + 1, [(1,), (5,)]),
        "defaults": (lambda x, y=10: x - y, [(1,), (1, 2)]),
        "kwonly": (lambda a, c: kwonly(a, c=c), [(1, 2)]),
        "posonly": (posonly, [(1,), (1, 2), (1, 2, 3)]),
        "closure": (adder, [(1,), (-100,)]),
        "varargs": (lambda *a: varargs(*a, z=1, y=2), [(), (1, 2)]),
        "appender": (appender, [(1,), (2,)]),
        "generator": (lambda n: list(gens["gen"](n)), [(0,), (4,)]),
        "delegating": (lambda n: list(gens["delegating"](n)), [(3,)]),
        "accumulator": (drive_accumulator, [(1, 2, 3)]),
        "coroutine": (drive_coro, [(2,)]),
        "closure_fact": (fact, [(5,), (10,)]),
        "mutual": (is_even, [(4,), (9,)]),
        "globals": (ns["uses_globals"], [("a", 2), ("zz", 4)]),
        "global_recursion": (ns["fib"], [(10,)]),
        "math": (ns["uses_math"], [(16,)]),
        "module_closure": (lambda *p: mod.path.join(*p), [("a", "b")]),
        "submodule": (ns["comment_text"], [("hi",)]),
        "comprehension": (ns["comprehension"], [([1, 3],)]),
        "self_attr": (self_attr, [(1,)]),
        "raiser": (raiser, [(1,), (-1,)]),
        "wraps": (make_wrapped(), [(4,)]),
        "mutable_default": (mutable_default, [("a",), ("b",)]),
    }


def test_differential_against_cloudpickle(run_in_subprocess):
    corpus = make_differential_corpus()
    # Everything in the corpus must go by value (this module does not exist in the child).
    for name, (fn, _) in corpus.items():
        assert skypickle._should_pickle_by_reference(fn) is False, name
    sky = skypickle.dumps(corpus)
    cp = cloudpickle.dumps(corpus)
    got = run_child(
        run_in_subprocess,
        """
        sky_payload, cp_payload = pickle.loads(PAYLOAD)

        def evaluate(corpus):
            return {
                name: [outcome(fn, *args) for args in inputs]
                for name, (fn, inputs) in corpus.items()
            }

        sky = evaluate(pickle.loads(sky_payload))
        cp = evaluate(pickle.loads(cp_payload))
        result = (sky, cp)
        """,
        payload=pickle.dumps((sky, cp)),
    )
    sky_results, cp_results = got
    assert sorted(sky_results) == sorted(corpus)
    mismatches = {
        k: (sky_results[k], cp_results[k]) for k in corpus if sky_results[k] != cp_results[k]
    }
    assert not mismatches
    # And both agree with the originals, evaluated here on a fresh corpus.
    fresh = make_differential_corpus()
    here = {}
    for name, (fn, inputs) in fresh.items():
        here[name] = []
        for args in inputs:
            try:
                here[name].append(("ok", fn(*args)))
            except Exception as exc:
                here[name].append(("raise", type(exc).__name__, str(exc)))
    assert sky_results == here
    assert sky_results["raiser"][1] == ("raise", "ValueError", "negative: -1")
    assert sky_results["global_recursion"] == [("ok", 55)]


# --------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------

DETERMINISM_CHILD = """
import skypickle

SOURCE = '''
import math

SCALE = 3
NAMES = {"alpha": 1, "beta": 2, "gamma": 3}
KEYS = ("x", "y", "z")

def helper(x):
    return x * SCALE

def make(k):
    label = "closure-" + str(k)
    count = 0

    def f(x, *, flag=True, **kw) -> str:
        \"\"\"doc\"\"\"
        nonlocal count
        count += 1
        return [helper(x), label, NAMES, KEYS, math.pi, sorted(kw), count]

    def g():
        return count

    f.attr = {"z": 1, "a": 2, "m": [1, 2]}
    return f, g
'''
ns = {"__name__": "__main__"}
exec(compile(SOURCE, "<determinism>", "exec"), ns)
f, g = ns["make"](7)
first = [skypickle.dumps((f, g), protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)]
second = [skypickle.dumps((f, g), protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)]
assert first == second
loaded_f, loaded_g = pickle.loads(first[-1])
assert loaded_f(2, q=1)[0] == 6 and loaded_g() == 1
result = (first, hash("byvalue-hash-probe"))
"""


def test_same_bytes_under_different_hash_seeds(run_in_subprocess, monkeypatch):
    runs = []
    for seed in ("0", "1", "4242"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        runs.append(run_child(run_in_subprocess, DETERMINISM_CHILD))
    payloads = [r[0] for r in runs]
    hashes = {r[1] for r in runs}
    assert len(hashes) == 3, "the hash seeds did not take effect"
    for proto, data in enumerate(payloads[0]):
        assert is_by_value(data)
        for other in payloads[1:]:
            assert other[proto] == data, f"protocol {proto} differs between hash seeds"


def test_repeated_dumps_are_identical():
    corpus = {name: fn for name, (fn, _) in make_differential_corpus().items()}
    inc, get = make_counter()
    corpus["counter"] = (inc, get)
    for proto in PROTOCOLS:
        first = skypickle.dumps(corpus, protocol=proto)
        assert skypickle.dumps(corpus, protocol=proto) == first
        assert skypickle.dumps(corpus, protocol=proto) == first
    # A pickled-then-loaded function pickles the same way again.
    loaded = pickle.loads(skypickle.dumps(make_adder(3)))
    assert skypickle.dumps(loaded) == skypickle.dumps(loaded)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def make_lock_closure():
    lock = threading.Lock()

    def holds_lock():
        return lock

    return holds_lock


def test_unpicklable_closure_value_names_the_path():
    with pytest.raises(TypeError) as info:
        skypickle.dumps(make_lock_closure())
    notes = [
        n for n in getattr(info.value, "__notes__", None) or [] if n.startswith("when pickling obj")
    ]
    assert notes, f"no path note: {getattr(info.value, '__notes__', None)!r}"
    note = notes[0]
    assert any(word in note for word in ("__reduce_ex__", "closure", "cell")), note
    assert "lock" in str(info.value)
    # The pickler is still usable afterwards.
    assert pickle.loads(skypickle.dumps(make_adder(1)))(1) == 2


def test_code_from_another_python_version_is_refused():
    payload = skypickle.dumps(lambda x: x, protocol=2)
    tag = PYTHON_TAG.encode()
    needle = b"X" + struct.pack("<I", len(tag)) + tag  # BINUNICODE, protocol 2
    assert payload.count(needle) == 1, "the version tag of _make_code is not in the payload"
    forged = payload.replace(needle, b"X" + struct.pack("<I", 4) + b"3.99")
    with pytest.raises(ValueError) as info:
        pickle.loads(forged)
    message = str(info.value)
    assert "3.99" in message and PYTHON_TAG in message, message


def test_forged_reconstructor_calls_raise_type_errors():
    core = skypickle._skypickle
    code = (lambda: 1).__code__
    with pytest.raises(TypeError):
        core._make_function(1, {}, None, None, None)
    with pytest.raises(TypeError):
        core._make_function(code, "not a dict", None, None, None)
    with pytest.raises(TypeError):
        core._make_code(PYTHON_TAG, "notatuple")
    with pytest.raises(TypeError):
        core._make_code(PYTHON_TAG, ("not", "code", "arguments"))
    with pytest.raises(TypeError):
        core._make_code(3.11, ())
    with pytest.raises(TypeError):
        core._function_setstate(len, ({}, {}))
    with pytest.raises(TypeError):
        core._function_setstate(make_adder(1), "not a tuple")
    with pytest.raises(TypeError):
        core._cell_set(1, 2)
    cell = types.CellType()
    core._cell_set(cell, 5)
    assert cell.cell_contents == 5
    func = core._make_function(code, {}, None, None, None)
    assert func() == 1


def test_forged_reconstruct_calls_raise():
    """``_reconstruct(op, *args)`` and the reconstructors it reaches check what they are given:
    a forged pickle gets a TypeError or ValueError, never a function that crashes when called."""
    core = skypickle._skypickle
    names = core._WIRE_NAMES
    op = {name: i for i, name in enumerate(names)}
    closure_code = make_adder(1).__code__  # needs one cell
    plain_code = (lambda: 1).__code__
    bad_calls = [
        ("not an int",),
        (-1,),
        (len(names),),
        (10**30,),
        (op["_make_function"],),
        (op["_make_function"], closure_code, {}, None),  # code needs a closure
        (op["_make_function"], closure_code, {}, ()),  # closure of the wrong length
        (op["_make_function"], closure_code, {}, (1,)),  # not a cell
        (op["_make_function"], plain_code, {}, None, None),  # 4 arguments
        (op["_make_function"], "code", {}, None),
        (op["_make_code"],),
        (op["_make_code"], PYTHON_TAG, 1, 2),
        (op["_restore_function"],),
        (op["_restore_function"], len),
    ]
    for args in bad_calls:
        with pytest.raises((TypeError, ValueError, OverflowError)):
            core._reconstruct(*args)
    func = core._reconstruct(op["_make_function"], plain_code, {}, None)
    assert func() == 1
    restore = op["_restore_function"]
    for bad in (
        (func, "globals"),
        (func, None, "defaults"),
        (func, None, None, "kwdefaults"),
        (func, None, None, None, {0: 1}),  # no closure to fill
        (func, None, None, None, "cells"),
        (func, None, None, None, None, {1: "name must be a str"}),
        (func, None, None, None, None, None, "dict"),
        (func, None, None, None, None, None, None, "one too many"),
    ):
        with pytest.raises((TypeError, ValueError)):
            core._reconstruct(restore, *bad)
    adder = core._reconstruct(
        op["_make_function"], closure_code, {}, (core._reconstruct(op["_make_empty_cell"]),)
    )
    with pytest.raises(ValueError):
        core._reconstruct(restore, adder, None, None, None, {5: 1})
    core._reconstruct(restore, adder, None, None, None, {0: 10})
    assert adder(1) == 11
    core._reconstruct(restore, func, {"G": 1}, None, None, None, {"__name__": "renamed"})
    assert func.__name__ == "renamed" and func.__globals__["G"] == 1


def test_math_module_is_importable_reference():
    # ``math`` reached as a global goes by reference, never by value.
    payload = skypickle.dumps(lambda x: math.floor(x))
    assert reconstructors(payload)["_dynamic_subimport"] == 0
    assert reconstructors(payload)["_subimport"] == 1
    assert pickle.loads(payload)(2.5) == 2


def test_code_cache_keeps_nothing_alive():
    """What skypickle remembers about a code object between dumps is held weakly: the
    function and its code are freed as soon as nothing else refers to them."""
    import gc
    import weakref

    namespace = make_namespace("def make():\n    return lambda x: x + 1\n")
    func = namespace["make"]()
    code_ref = weakref.ref(func.__code__)
    func_ref = weakref.ref(func)
    for _ in range(3):
        assert pickle.loads(skypickle.dumps(func))(1) == 2
    del func, namespace
    gc.collect()
    assert func_ref() is None and code_ref() is None


def test_code_cache_follows_new_code_objects():
    """Many short-lived functions, each with its own code: every one pickles its own code
    (a cached entry is never used for a later code object at the same address)."""
    for i in range(300):
        func = make_namespace(f"def f():\n    return {i}\n")["f"]
        assert pickle.loads(skypickle.dumps(func))() == i
