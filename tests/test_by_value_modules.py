"""Modules by reference or by value, the ``register_pickle_by_value`` registry, and the other
reducers of skypickle's dispatch table (methods, descriptors, mapping proxies, memoryviews,
weak sets, loggers, types, code objects, cells).

By-value cases are loaded with plain ``pickle`` in a fresh interpreter where the defining code
does not exist (see ``byvalue_helpers``), and checked there.
"""

import array
import builtins
import fractions
import importlib
import json
import logging
import os
import pickle
import sys
import textwrap
import threading
import types
import uuid
import weakref
import xml.etree.ElementTree

import cloudpickle
import pytest
import skypickle
from byvalue_helpers import make_namespace, run_child
from helpers import by_value_functions, reconstructors

PROTOCOLS = tuple(range(pickle.HIGHEST_PROTOCOL + 1))


def is_by_value(payload):
    return by_value_functions(payload) > 0


# --------------------------------------------------------------------------------------------
# Modules by reference
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_importable_modules_go_by_reference(proto):
    for module in (os, os.path, json, xml.etree.ElementTree, sys, sys.modules["__main__"]):
        assert skypickle._should_pickle_by_reference(module) is True
        payload = skypickle.dumps(module, protocol=proto)
        assert reconstructors(payload)["_dynamic_subimport"] == 0
        assert module.__name__.encode() in payload
        assert pickle.loads(payload) is module


# --------------------------------------------------------------------------------------------
# Dynamic modules by value
# --------------------------------------------------------------------------------------------

DYNAMIC_SOURCE = """
CONST = 7

def triple(x):
    return x * 3 + CONST

def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)

square = lambda x: x * x

def count(xs):
    return len(xs)
"""


def make_dynamic_module(name="byvalue_dyn"):
    module = types.ModuleType(name, "A dynamic module.")
    exec(compile(textwrap.dedent(DYNAMIC_SOURCE), f"<{name}>", "exec"), module.__dict__)
    return module


def test_dynamic_module_travels_by_value(run_in_subprocess):
    module = make_dynamic_module()
    assert "byvalue_dyn" not in sys.modules
    assert skypickle._should_pickle_by_reference(module) is False
    module_payload = skypickle.dumps((module, module, module.triple))
    assert reconstructors(module_payload)["_dynamic_subimport"] == 1
    function_payload = skypickle.dumps(module.triple)
    assert is_by_value(function_payload)
    # A function that reaches the dynamic module as a global.
    user = make_namespace(
        """
        def use(x):
            return dyn.triple(x) + dyn.CONST
        """
    )
    user["dyn"] = module
    # ``__builtins__`` is left out of a module's state (the loader gets its own), so an
    # unpicklable object there does not matter.
    odd = make_dynamic_module("byvalue_dyn_builtins")
    odd.__dict__["__builtins__"] = {"lock": threading.Lock(), **vars(builtins)}
    payload = pickle.dumps(
        {
            "module": module_payload,
            "function": function_payload,
            "user": skypickle.dumps(user["use"]),
            "odd_builtins": skypickle.dumps(odd),
            "by_reference": skypickle.dumps(xml.etree.ElementTree),
        }
    )
    got = run_child(
        run_in_subprocess,
        """
        import builtins
        import types
        import skypickle

        data = pickle.loads(PAYLOAD)
        m1, m2, t = pickle.loads(data["module"])
        alone = pickle.loads(data["function"])
        use = pickle.loads(data["user"])
        odd = pickle.loads(data["odd_builtins"])
        repickled = skypickle.dumps(m1)
        again = pickle.loads(repickled)
        odd_builtins = vars(odd)["__builtins__"]
        result = {
            "same": m1 is m2,
            "type": type(m1) is types.ModuleType,
            "name": m1.__name__,
            "doc": m1.__doc__,
            "calls": (m1.triple(2), m1.fact(5), m1.square(4), m1.count("abc"), m1.CONST),
            "member": t is m1.triple,
            "alone": (alone(1), alone.__module__, alone.__name__),
            "user": (use(1), type(use.__globals__["dyn"]).__name__),
            "builtins": "__builtins__" in vars(m1),
            "odd_builtins": (
                odd.count("ab"),
                odd_builtins is builtins.__dict__ or odd_builtins is builtins,
            ),
            "repickled": (repickled, again is not m1, again.triple(1)),
            "in_sys_modules": [m for m in sys.modules if m.startswith("byvalue_dyn")],
            "by_reference": (
                pickle.loads(data["by_reference"]) is sys.modules["xml.etree.ElementTree"]
            ),
        }
        """,
        payload=payload,
    )
    assert reconstructors(got["repickled"][0])["_dynamic_subimport"] >= 1
    assert got == {
        "same": True,
        "type": True,
        "name": "byvalue_dyn",
        "doc": "A dynamic module.",
        "calls": (13, 120, 16, 3, 7),
        "member": True,
        "alone": (10, "byvalue_dyn", "triple"),
        "user": (17, "module"),
        "builtins": True,
        "odd_builtins": (2, True),
        "repickled": (got["repickled"][0], True, 10),
        "in_sys_modules": [],
        "by_reference": True,
    }


def test_dynamic_module_in_sys_modules_goes_by_reference(monkeypatch):
    module = make_dynamic_module("byvalue_dyn_registered")
    monkeypatch.setitem(sys.modules, "byvalue_dyn_registered", module)
    assert skypickle._should_pickle_by_reference(module) is True
    assert pickle.loads(skypickle.dumps(module)) is module
    # Its functions are found by name too.
    assert not is_by_value(skypickle.dumps(module.triple))
    assert pickle.loads(skypickle.dumps(module.triple)) is module.triple


# --------------------------------------------------------------------------------------------
# register_pickle_by_value with a real package on disk
# --------------------------------------------------------------------------------------------

PACKAGE_FILES = {
    "__init__.py": """
        PKG_CONST = 5

        def pkg_function(x):
            return x + PKG_CONST
        """,
    "sub.py": """
        from . import other

        SUB_CONST = 2

        def helper(x):
            return x * SUB_CONST

        def sub_function(x):
            return helper(x) + 1

        def make_closure(k):
            return lambda x: helper(x) + k

        def uses_sibling():
            return other.other_function() + "!"
        """,
    "other.py": """
        def other_function():
            return "other"
        """,
}


@pytest.fixture
def temp_package(tmp_path):
    """A package importable in this process only: ``<name>``, ``<name>.sub``, ``<name>.other``.

    It lives in ``tmp_path/site``, which is not on the child's ``sys.path`` (the child runs
    from ``tmp_path``).
    """
    name = f"byvalue_pkg_{uuid.uuid4().hex[:12]}"
    site = tmp_path / "site"
    (site / name).mkdir(parents=True)
    for filename, source in PACKAGE_FILES.items():
        (site / name / filename).write_text(textwrap.dedent(source))
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        package = importlib.import_module(name)
        sub = importlib.import_module(f"{name}.sub")
        other = importlib.import_module(f"{name}.other")
        yield types.SimpleNamespace(name=name, package=package, sub=sub, other=other)
    finally:
        # Safety net only: the tests unregister what they register in their own ``finally``.
        for module_name in list(skypickle.list_registry_pickle_by_value()):
            if module_name == name or module_name.startswith(name + "."):
                skypickle._PICKLE_BY_VALUE_MODULES.discard(module_name)
        sys.path.remove(str(site))
        for module_name in list(sys.modules):
            if module_name == name or module_name.startswith(name + "."):
                del sys.modules[module_name]


def test_unregistered_package_goes_by_reference(temp_package, run_in_subprocess):
    func = temp_package.sub.sub_function
    assert skypickle._should_pickle_by_reference(func) is True
    payload = skypickle.dumps(func)
    assert not is_by_value(payload)
    assert pickle.loads(payload) is func
    got = run_child(
        run_in_subprocess,
        """
        try:
            pickle.loads(PAYLOAD)
            result = "loaded"
        except ModuleNotFoundError as exc:
            result = ("missing", exc.name)
        """,
        payload=payload,
    )
    assert got == ("missing", temp_package.name)


def test_registered_package_functions_travel_by_value(temp_package, run_in_subprocess):
    pkg, sub, other, name = (
        temp_package.package,
        temp_package.sub,
        temp_package.other,
        temp_package.name,
    )
    skypickle.register_pickle_by_value(pkg)
    try:
        assert name in skypickle.list_registry_pickle_by_value()
        # Registration is hierarchical: the package covers its submodules.
        for module in (pkg, sub, other):
            assert skypickle._should_pickle_by_reference(module) is False
        for func in (pkg.pkg_function, sub.sub_function, other.other_function):
            assert skypickle._should_pickle_by_reference(func) is False
            assert is_by_value(skypickle.dumps(func))
        payload = skypickle.dumps(
            {
                "pkg_function": pkg.pkg_function,
                "sub_function": sub.sub_function,
                "closure": sub.make_closure(10),
                "uses_sibling": sub.uses_sibling,
            }
        )
    finally:
        skypickle.unregister_pickle_by_value(pkg)
    assert name not in skypickle.list_registry_pickle_by_value()
    # Back to by reference once unregistered.
    assert skypickle._should_pickle_by_reference(sub.sub_function) is True
    assert pickle.loads(skypickle.dumps(sub.sub_function)) is sub.sub_function

    got = run_child(
        run_in_subprocess,
        f"""
        NAME = {name!r}
        assert importlib.util.find_spec(NAME) is None
        c = pickle.loads(PAYLOAD)
        result = {{
            "calls": (
                c["pkg_function"](1),
                c["sub_function"](3),
                c["closure"](1),
                c["uses_sibling"](),
            ),
            "modules": (c["pkg_function"].__module__, c["sub_function"].__module__),
            "imported": sorted(m for m in sys.modules if m.startswith(NAME)),
        }}
        """,
        payload=payload,
    )
    assert got == {
        "calls": (6, 7, 12, "other!"),
        "modules": (name, f"{name}.sub"),
        "imported": [],
    }


def test_registering_a_leaf_module_leaves_parent_and_siblings_alone(
    temp_package, run_in_subprocess
):
    pkg, sub, other = temp_package.package, temp_package.sub, temp_package.other
    skypickle.register_pickle_by_value(sub)
    try:
        assert skypickle.list_registry_pickle_by_value() >= {sub.__name__}
        assert temp_package.name not in skypickle.list_registry_pickle_by_value()
        assert skypickle._should_pickle_by_reference(sub) is False
        assert skypickle._should_pickle_by_reference(pkg) is True
        assert skypickle._should_pickle_by_reference(other) is True
        assert pickle.loads(skypickle.dumps(pkg.pkg_function)) is pkg.pkg_function
        assert pickle.loads(skypickle.dumps(other.other_function)) is other.other_function
        payload = skypickle.dumps((sub.sub_function, sub.make_closure(1)))
        assert is_by_value(payload)
    finally:
        skypickle.unregister_pickle_by_value(sub)
    got = run_child(
        run_in_subprocess,
        """
        f, closure = pickle.loads(PAYLOAD)
        result = (f(3), closure(2), f.__globals__["helper"](4))
        """,
        payload=payload,
    )
    assert got == (7, 5, 8)


def test_registered_module_object_travels_by_value(temp_package, run_in_subprocess):
    sub = temp_package.sub
    skypickle.register_pickle_by_value(temp_package.package)
    try:
        payload = skypickle.dumps(sub)
        loaded = pickle.loads(payload)
    finally:
        skypickle.unregister_pickle_by_value(temp_package.package)
    assert reconstructors(payload)["_dynamic_subimport"] >= 1
    assert loaded is not sub
    assert loaded.sub_function(3) == 7
    got = run_child(
        run_in_subprocess,
        """
        m = pickle.loads(PAYLOAD)
        result = (
            m.__name__,
            m.sub_function(3),
            m.uses_sibling(),
            m.other.__name__,
            m.__name__ in sys.modules,
        )
        """,
        payload=payload,
    )
    assert got == (sub.__name__, 7, "other!", temp_package.other.__name__, False)


def test_registry_set_edited_directly_is_honoured(temp_package):
    """Some integrations edit the registry set itself (cloudpickle's
    ``_PICKLE_BY_VALUE_MODULES``): skypickle re-reads it at every use."""
    func = temp_package.sub.sub_function
    skypickle._PICKLE_BY_VALUE_MODULES.add(temp_package.name)
    try:
        assert is_by_value(skypickle.dumps(func))
    finally:
        skypickle._PICKLE_BY_VALUE_MODULES.discard(temp_package.name)
    assert not is_by_value(skypickle.dumps(func))


def test_registry_listing_is_a_copy(temp_package):
    pkg, name = temp_package.package, temp_package.name
    skypickle.register_pickle_by_value(pkg)
    try:
        skypickle.register_pickle_by_value(pkg)  # registering twice is silent
        listing = skypickle.list_registry_pickle_by_value()
        assert type(listing) is set
        assert name in listing
        listing.clear()
        listing.add("byvalue_bogus_entry")
        assert name in skypickle.list_registry_pickle_by_value()
        assert "byvalue_bogus_entry" not in skypickle.list_registry_pickle_by_value()
    finally:
        skypickle.unregister_pickle_by_value(pkg)
    assert name not in skypickle.list_registry_pickle_by_value()


# --------------------------------------------------------------------------------------------
# Registry errors: the messages of cloudpickle 3.1.2, checked against it
# --------------------------------------------------------------------------------------------


def _error_message(callable_, *args):
    with pytest.raises(ValueError) as info:
        callable_(*args)
    return str(info.value)


@pytest.mark.parametrize(
    "bad",
    ["abc", 1, None, len, [json], types.ModuleType],
    ids=["str", "int", "None", "len", "list", "module_class"],
)
@pytest.mark.parametrize("which", ["register_pickle_by_value", "unregister_pickle_by_value"])
def test_registry_rejects_non_modules(which, bad):
    expected = f"Input should be a module object, got {str(bad)} instead"
    assert _error_message(getattr(skypickle, which), bad) == expected
    assert _error_message(getattr(cloudpickle, which), bad) == expected


def test_register_refuses_a_module_missing_from_sys_modules():
    module = types.ModuleType("byvalue_never_imported")
    expected = (
        repr(module)
        + " was not imported correctly, have you used an `import` statement to access it?"
    )
    assert _error_message(skypickle.register_pickle_by_value, module) == expected
    assert _error_message(cloudpickle.register_pickle_by_value, module) == expected
    assert "byvalue_never_imported" not in skypickle.list_registry_pickle_by_value()


def test_unregister_of_an_unregistered_module():
    expected = f"{json} is not registered for pickle by value"
    assert _error_message(skypickle.unregister_pickle_by_value, json) == expected
    assert _error_message(cloudpickle.unregister_pickle_by_value, json) == expected


# --------------------------------------------------------------------------------------------
# The other reducers
# --------------------------------------------------------------------------------------------


class Greeter:
    """An importable class (in this process only)."""

    def __init__(self, name):
        self.name = name

    def greet(self, punctuation):
        return f"hello {self.name}{punctuation}"

    @classmethod
    def make(cls, name):
        return cls(name)

    @staticmethod
    def shout(text):
        return text.upper()

    @property
    def upper(self):
        """The name in capitals."""
        return self.name.upper()


def test_methods_and_descriptors_in_process():
    greet = pickle.loads(skypickle.dumps(Greeter("ann").greet))
    assert type(greet) is types.MethodType
    assert greet("!") == "hello ann!"
    assert type(greet.__self__) is Greeter

    make = pickle.loads(skypickle.dumps(Greeter.make))  # a classmethod bound to the class
    assert make.__self__ is Greeter
    assert make("bob").name == "bob"

    raw = Greeter.__dict__
    cm = pickle.loads(skypickle.dumps(raw["make"]))
    sm = pickle.loads(skypickle.dumps(raw["shout"]))
    prop = pickle.loads(skypickle.dumps(raw["upper"]))
    assert type(cm) is classmethod and cm.__func__(Greeter, "cy").name == "cy"
    assert type(sm) is staticmethod and sm.__func__("x") == "X"
    assert type(prop) is property and prop.fget(Greeter("dee")) == "DEE"
    assert prop.__doc__ == "The name in capitals."
    assert prop.fset is None and prop.fdel is None


def test_identity_reducers_in_process():
    logger = logging.getLogger("byvalue.logger")
    assert pickle.loads(skypickle.dumps(logger)) is logger
    assert pickle.loads(skypickle.dumps(logging.getLogger())) is logging.getLogger()
    for descriptor in (float.real, int.numerator, types.FunctionType.__dict__["__code__"]):
        assert pickle.loads(skypickle.dumps(descriptor)) is descriptor
    for cls in (
        types.CodeType,
        types.FunctionType,
        types.MethodType,
        types.ModuleType,
        types.CellType,
        types.MappingProxyType,
        types.BuiltinFunctionType,
        type(None),
    ):
        for proto in PROTOCOLS:
            assert pickle.loads(skypickle.dumps(cls, protocol=proto)) is cls


def test_code_objects_and_cells_in_process():
    code = (lambda x, *, y=2: [x, y]).__code__
    loaded = pickle.loads(skypickle.dumps(code))
    assert type(loaded) is types.CodeType
    assert loaded == code
    assert loaded.co_code == code.co_code
    assert types.FunctionType(loaded, {})(1, y=3) == [1, 3]

    cell = types.CellType([1, 2])
    first, second = pickle.loads(skypickle.dumps((cell, cell)))
    assert first is second and first.cell_contents == [1, 2]


def make_reducer_bundle():
    kept = lambda: "kept"
    orphan = lambda: "orphan"
    self_cell = types.CellType()
    self_cell.cell_contents = self_cell
    bundle = {
        "bound_fraction": fractions.Fraction(3, 4).limit_denominator,
        "bound_classmethod": fractions.Fraction.from_float,
        "bound_lambda": types.MethodType(lambda self, k: self * k, 21),
        "dict_get": {"a": 1}.get,
        "classmethod": classmethod(lambda cls: cls.__name__),
        "staticmethod": staticmethod(lambda x: x + 1),
        "property": property(
            lambda self: self.v * 2, lambda self, v: setattr(self, "v", v), None, "prop doc"
        ),
        "mappingproxy": types.MappingProxyType({"a": [1], "b": 2}),
        "memoryview": memoryview(b"hello"),
        "memoryview_strided": memoryview(b"abcdef")[::2],
        "memoryview_ints": memoryview(array.array("i", [1, 2, 3])),
        "weakset_pair": (weakref.WeakSet([kept]), kept),
        "weakset_orphan": weakref.WeakSet([orphan]),
        "logger": logging.getLogger("byvalue.logger"),
        "getset": float.real,
        "types": (types.CodeType, types.FunctionType, types.MethodType, types.CellType),
        "code": (lambda x: x * 7).__code__,
        "cells": (types.CellType("full"), types.CellType(), self_cell),
    }
    return bundle, orphan  # ``orphan`` stays alive here, but is in no other part of the bundle


def test_other_reducers_in_fresh_interpreter(run_in_subprocess):
    bundle, orphan = make_reducer_bundle()
    assert len(bundle["weakset_orphan"]) == 1  # alive at pickling time
    payload = skypickle.dumps(bundle)
    got = run_child(
        run_in_subprocess,
        """
        import gc
        import logging
        import types

        c = pickle.loads(PAYLOAD)
        gc.collect()
        C = type("C", (), {"cm": c["classmethod"], "sm": c["staticmethod"], "p": c["property"]})
        inst = C()
        inst.p = 5
        ws, kept = c["weakset_pair"]
        full, empty, self_cell = c["cells"]
        logger = c["logger"]
        result = {
            "bound_fraction": (
                type(c["bound_fraction"]).__name__, c["bound_fraction"](10)
            ),
            "bound_classmethod": c["bound_classmethod"](0.5),
            "bound_lambda": c["bound_lambda"](2),
            "dict_get": (c["dict_get"]("a"), c["dict_get"]("zz", 0)),
            "descriptor_types": tuple(
                type(c[k]).__name__ for k in ("classmethod", "staticmethod", "property")
            ),
            "descriptor_use": (C.cm(), C.sm(1), inst.p, inst.v, C.p.__doc__),
            "mappingproxy": (type(c["mappingproxy"]).__name__, dict(c["mappingproxy"])),
            "memoryviews": (c["memoryview"], c["memoryview_strided"], c["memoryview_ints"]),
            "weakset": (len(ws), next(iter(ws)) is kept, kept(), len(c["weakset_orphan"])),
            "logger": (
                type(logger).__name__,
                logger.name,
                logger is logging.getLogger("byvalue.logger"),
            ),
            "getset": c["getset"] is float.real,
            "types": c["types"] == (
                types.CodeType, types.FunctionType, types.MethodType, types.CellType
            ),
            "code": types.FunctionType(c["code"], {})(6),
            "cells": (
                full.cell_contents,
                is_empty_cell(empty),
                self_cell.cell_contents is self_cell,
            ),
        }
        """,
        payload=payload,
    )
    assert got == {
        "bound_fraction": ("method", fractions.Fraction(3, 4)),
        "bound_classmethod": fractions.Fraction(1, 2),
        "bound_lambda": 42,
        "dict_get": (1, 0),
        "descriptor_types": ("classmethod", "staticmethod", "property"),
        "descriptor_use": ("C", 2, 10, 5, "prop doc"),
        "mappingproxy": ("mappingproxy", {"a": [1], "b": 2}),
        "memoryviews": (b"hello", b"ace", array.array("i", [1, 2, 3]).tobytes()),
        "weakset": (1, True, "kept", 0),
        "logger": ("Logger", "byvalue.logger", True),
        "getset": True,
        "types": True,
        "code": 42,
        "cells": ("full", True, True),
    }
    del orphan


def test_memoryview_loads_as_bytes_in_process():
    for proto in PROTOCOLS:
        loaded = pickle.loads(skypickle.dumps(memoryview(b"abcdef")[1:5], protocol=proto))
        assert type(loaded) is bytes and loaded == b"bcde"
