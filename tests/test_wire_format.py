"""The wire table is a contract: payloads call ``_reconstruct(op, *args)`` with op numbers that
index ``skypickle._skypickle._WIRE_NAMES``, and some name reconstructors directly as module
attributes. A payload written by one release must load with the next (same CPython minor), so
released entries never move, change name or disappear; new ones are only appended.

``FROZEN_WIRE_NAMES`` is the table as released. It is written out here, not read from the
module, so that reordering, renaming or removing an entry fails this test. Appending does not:
add new names to ``FROZEN_WIRE_NAMES`` once they are released (and golden payloads that call
them: see scripts/make_golden.py).
"""

from __future__ import annotations

import ast
import os
import types
from pathlib import Path

import pytest
from skypickle import _skypickle

STUB = Path(__file__).resolve().parent.parent / "python" / "skypickle" / "_skypickle.pyi"

#: The released wire table (skypickle 0.1.0): position = op number. Never edit an entry.
FROZEN_WIRE_NAMES = (
    "_make_code",
    "_make_function",
    "_function_setstate",
    "_make_empty_cell",
    "_make_cell",
    "_cell_set",
    "_subimport",
    "_dynamic_subimport",
    "_builtin_type",
    "_make_skeleton_class",
    "_make_skeleton_enum",
    "_class_setstate",
    "_make_typevar",
    "_get_dataclass_field_type_sentinel",
    "_make_dict_keys",
    "_make_dict_values",
    "_make_dict_items",
    "_file_reconstructor",
    "_make_lru_cache",
    "_make_singledispatch",
    "_make_cached_property",
    "_restore_function",
    "_new_function",
)


def test_released_ops_keep_their_numbers_and_names():
    names = _skypickle._WIRE_NAMES
    assert isinstance(names, tuple)
    assert tuple(names[: len(FROZEN_WIRE_NAMES)]) == FROZEN_WIRE_NAMES


def test_wire_names_are_unique():
    names = _skypickle._WIRE_NAMES
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", FROZEN_WIRE_NAMES)
def test_every_released_name_is_a_callable_module_attribute(name):
    # Payloads made through reduce values (and cloudpickle-style shims) name them directly.
    assert callable(getattr(_skypickle, name))


def test_every_wire_name_is_a_callable_module_attribute():
    for name in _skypickle._WIRE_NAMES:
        assert callable(getattr(_skypickle, name)), name


def test_reconstruct_exists():
    assert callable(_skypickle._reconstruct)


def test_reconstruct_calls_the_reconstructor_of_each_number():
    """Spot checks that ``_reconstruct``'s own dispatch (which calls the hot reconstructors
    directly, not through the table) agrees with the frozen numbering."""
    op = {name: number for number, name in enumerate(FROZEN_WIRE_NAMES)}
    reconstruct = _skypickle._reconstruct
    assert reconstruct(op["_subimport"], "os") is os
    assert reconstruct(op["_builtin_type"], "FunctionType") is types.FunctionType
    empty = reconstruct(op["_make_empty_cell"])
    assert type(empty) is types.CellType
    with pytest.raises(ValueError):
        empty.cell_contents  # noqa: B018 - reading it is the check
    assert reconstruct(op["_make_cell"], 5).cell_contents == 5
    reconstruct(op["_cell_set"], empty, 7)
    assert empty.cell_contents == 7
    module = reconstruct(op["_dynamic_subimport"], "wire_test_mod", {"x": 1})
    assert (module.__name__, module.x) == ("wire_test_mod", 1)
    assert type(reconstruct(op["_make_dict_keys"], ["a"])).__name__ == "dict_keys"
    assert type(reconstruct(op["_make_dict_values"], [1])).__name__ == "dict_values"
    assert type(reconstruct(op["_make_dict_items"], {"a": 1})).__name__ == "dict_items"
    code = (lambda: 3).__code__
    assert reconstruct(op["_new_function"], code, {}, None)() == 3
    func = reconstruct(op["_make_function"], code, {}, None)
    assert reconstruct(op["_restore_function"], func, None, None, None, None, None, None) is None
    assert func() == 3


def _declared_in_stub(text: str) -> set:
    """The module-level names a stub declares: functions, classes, assigned and annotated names."""
    names = set()
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_the_stub_declares_the_wire_table():
    """python/skypickle/_skypickle.pyi declares every wire name, ``_reconstruct`` and
    ``_WIRE_NAMES``: type checkers and editors see the whole wire surface."""
    declared = _declared_in_stub(STUB.read_text(encoding="utf-8"))
    wanted = [*FROZEN_WIRE_NAMES, *_skypickle._WIRE_NAMES, "_reconstruct", "_WIRE_NAMES"]
    missing = sorted({name for name in wanted if name not in declared})
    assert missing == [], f"{STUB.name} does not declare {missing}"


def test_cloudpickle_name_aliases():
    assert _skypickle.subimport("os") is os
    module = _skypickle.dynamic_subimport("wire_alias_mod", {"y": 2})
    assert (module.__name__, module.y) == ("wire_alias_mod", 2)
