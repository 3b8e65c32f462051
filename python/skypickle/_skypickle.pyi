"""Type stubs for skypickle's compiled core.

Checked against the built module by ``make stubtest`` (mypy's stubtest). Parameters are
positional-or-keyword wherever the compiled functions accept keywords: PyO3 functions do unless
their signature says otherwise, and stubtest holds the stubs to what the module really accepts.
The reconstructors and reducers check their arguments at run time (a forged pickle gets a
TypeError or ValueError); the types below are what they are meant to receive.
"""

import logging
import weakref
from collections.abc import Callable, ItemsView, Iterable, KeysView, Mapping, ValuesView
from types import CellType, CodeType, FunctionType, MappingProxyType, MethodType, ModuleType
from typing import Any, ClassVar, Protocol, TypeVar

from typing_extensions import disjoint_base

# The module's __all__ as PyO3 builds it: every name the module init adds, private ones too.
__all__ = [
    "__version__",
    "DEFAULT_PROTOCOL",
    "HIGHEST_PROTOCOL",
    "dump",
    "dumps",
    "_explain",
    "fingerprint",
    "Pickler",
    "_PICKLE_BY_VALUE_MODULES",
    "_CLOUDPICKLE_COPIES",
    "_tracked_classes",
    "_kept_memo_bytes",
    "register_pickle_by_value",
    "unregister_pickle_by_value",
    "list_registry_pickle_by_value",
    "_should_pickle_by_reference",
    "_whichmodule",
    "_lookup_module_and_qualname",
    "_extract_code_globals",
    "_extract_class_dict",
    "_cell_reduce",
    "_code_reduce",
    "_module_reduce",
    "_method_reduce",
    "_classmethod_reduce",
    "_property_reduce",
    "_mappingproxy_reduce",
    "_getset_descriptor_reduce",
    "_memoryview_reduce",
    "_weakset_reduce",
    "_logger_reduce",
    "_root_logger_reduce",
    "_typevar_reduce",
    "_dataclass_field_base_reduce",
    "_dict_view_reduce",
    "_file_reduce",
    "_lru_cache_reduce",
    "_cached_property_reduce",
    "_WIRE_NAMES",
    "_reconstruct",
    "_make_code",
    "_make_function",
    "_new_function",
    "_restore_function",
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
    "subimport",
    "dynamic_subimport",
]

_T = TypeVar("_T")

class _Writable(Protocol):
    def write(self, data: Any, /) -> Any: ...

# A reduce value as a dispatch-table reducer returns it: (callable, args[, state, ...]).
_ReduceValue = tuple[Any, ...]

__version__: str
DEFAULT_PROTOCOL: int
HIGHEST_PROTOCOL: int

# compat: None (skypickle's own format), "cloudpickle", or the module path of a vendored
# cloudpickle copy ("pyspark.cloudpickle.cloudpickle", ...) whose reconstructors the payload
# names instead of skypickle's.
# by_value: modules, or names of modules in sys.modules, pickled by value (with their
# submodules) for this call only; the registries are left as they are.
def dumps(
    obj: Any,
    protocol: int | None = None,
    buffer_callback: Callable[[Any], Any] | None = None,
    *,
    compat: str | None = None,
    deterministic: bool = False,
    normalize_paths: bool = False,
    max_bytes: int | None = None,
    by_value: Iterable[ModuleType | str] | None = None,
) -> bytes: ...
def _explain(
    obj: Any,
    protocol: int | None = None,
    compat: str | None = None,
    by_value: Iterable[ModuleType | str] | None = None,
) -> dict[str, Any]: ...
def fingerprint(
    obj: Any,
    *,
    protocol: int | None = None,
    normalize_paths: bool = False,
    by_value: Iterable[ModuleType | str] | None = None,
) -> str: ...
def dump(
    obj: Any,
    file: _Writable,
    protocol: int | None = None,
    buffer_callback: Callable[[Any], Any] | None = None,
    *,
    compat: str | None = None,
    deterministic: bool = False,
    normalize_paths: bool = False,
    max_bytes: int | None = None,
    by_value: Iterable[ModuleType | str] | None = None,
) -> None: ...

# Its instances have a layout of their own (a Rust struct): it cannot be a base together with
# another such class.
@disjoint_base
class Pickler:
    # A subclass or an instance may set its own table (loky sets one per instance), so this
    # is not a ClassVar; the class's own is a ChainMap over _dispatch_table and copyreg's.
    dispatch_table: Mapping[type, Callable[[Any], Any]]
    dispatch: ClassVar[Mapping[type, Callable[[Any], Any]]]
    _dispatch_table: ClassVar[dict[type, Callable[[Any], Any]]]
    # __new__ takes anything, so that subclasses may have __init__ signatures of their own.
    def __new__(cls, *_args: Any, **_kwargs: Any) -> Pickler: ...
    def __init__(
        self,
        file: _Writable,
        protocol: int | None = None,
        buffer_callback: Callable[[Any], Any] | None = None,
        *,
        compat: str | None = None,
        deterministic: bool = False,
        normalize_paths: bool = False,
        max_bytes: int | None = None,
        by_value: Iterable[ModuleType | str] | None = None,
    ) -> None: ...
    @property
    def proto(self) -> int: ...
    # cloudpickle's globals_ref: id of a function's globals dict -> the dict its by-value
    # copies share after loading.
    @property
    def globals_ref(self) -> dict[int, dict[str, Any]]: ...
    def dump(self, obj: Any) -> None: ...
    def clear_memo(self) -> None: ...
    def reducer_override(self, obj: Any) -> Any: ...

# The by-value registry (cloudpickle's API).
_PICKLE_BY_VALUE_MODULES: set[str]

def register_pickle_by_value(module: ModuleType) -> None: ...
def unregister_pickle_by_value(module: ModuleType) -> None: ...
def list_registry_pickle_by_value() -> set[str]: ...

# The cloudpickle copies imported in this process (their modules), kept by skypickle._bridge;
# the decision reads their registries.
_CLOUDPICKLE_COPIES: list[ModuleType]

# The class tracker's (class, enum or TypeVar, id) pairs, for skypickle._bridge.
def _tracked_classes() -> list[tuple[Any, str]]: ...

# Bytes of memo tables this thread keeps for its next dumps (bounded; freed after 64 dumps
# that do not take them), for the tests.
def _kept_memo_bytes() -> int: ...

# cloudpickle's private helpers, by the same names.
def _should_pickle_by_reference(obj: Any) -> bool: ...
def _whichmodule(obj: Any, name: str) -> str | None: ...
def _lookup_module_and_qualname(
    obj: Any, name: str | None = None
) -> tuple[ModuleType, str] | None: ...
def _extract_code_globals(code: CodeType) -> dict[str, None]: ...
def _extract_class_dict(cls: type) -> dict[str, Any]: ...

# Dispatch-table reducers, installed in Pickler._dispatch_table under these types.
def _cell_reduce(obj: CellType) -> _ReduceValue: ...
def _code_reduce(obj: CodeType) -> _ReduceValue: ...
def _module_reduce(obj: ModuleType) -> _ReduceValue: ...
def _method_reduce(obj: MethodType) -> _ReduceValue: ...

# classmethod and staticmethod, and abc's abstract variants.
def _classmethod_reduce(
    obj: classmethod[Any, Any, Any] | staticmethod[Any, Any],
) -> _ReduceValue: ...

# property and abc.abstractproperty.
def _property_reduce(obj: property) -> _ReduceValue: ...
def _mappingproxy_reduce(obj: MappingProxyType[Any, Any]) -> _ReduceValue: ...
def _getset_descriptor_reduce(obj: Any) -> _ReduceValue: ...
def _memoryview_reduce(obj: memoryview) -> _ReduceValue: ...
def _weakset_reduce(obj: weakref.WeakSet[Any]) -> _ReduceValue: ...
def _logger_reduce(obj: logging.Logger) -> _ReduceValue: ...

# logging.getLogger() again: the root logger itself is not read (hence the parameter's name).
def _root_logger_reduce(obj: logging.RootLogger) -> _ReduceValue: ...
def _typevar_reduce(obj: Any) -> _ReduceValue: ...

# dataclasses._FIELD_BASE: the field-kind sentinels.
def _dataclass_field_base_reduce(obj: Any) -> _ReduceValue: ...

# dict and OrderedDict keys, values and items views.
def _dict_view_reduce(
    obj: KeysView[Any] | ValuesView[Any] | ItemsView[Any, Any],
) -> _ReduceValue: ...

# io.TextIOWrapper opened for reading.
def _file_reduce(obj: Any) -> _ReduceValue: ...

# A str (the wrapper's own reduction: by name) when the wrapper is importable.
def _lru_cache_reduce(obj: Any) -> str | _ReduceValue: ...
def _cached_property_reduce(obj: Any) -> _ReduceValue: ...

# Wire names: the reconstructors pickles refer to (see ARCHITECTURE.md). A pickle calls them
# through _reconstruct(op, *args), op being an index into _WIRE_NAMES.
_WIRE_NAMES: tuple[str, ...]

def _reconstruct(op: int, /, *args: Any) -> Any: ...

# args: CodeType's positional arguments for this CPython version, or one tuple of them.
def _make_code(version: str, *args: Any) -> CodeType: ...

# rest: (closure,), or cloudpickle's (name, argdefs, closure).
def _make_function(code: CodeType, globals: dict[str, Any], *rest: Any) -> FunctionType: ...
def _new_function(
    code: CodeType,
    globals: dict[str, Any],
    closure: tuple[CellType, ...] | None,
    used_globals: dict[str, Any] | None = None,
    defaults: tuple[Any, ...] | None = None,
    kwdefaults: dict[str, Any] | None = None,
) -> FunctionType: ...
def _restore_function(
    func: FunctionType,
    globals: dict[str, Any] | None = None,
    defaults: tuple[Any, ...] | None = None,
    kwdefaults: dict[str, Any] | None = None,
    cells: dict[int, Any] | None = None,
    attrs: dict[str, Any] | None = None,
    func_dict: dict[str, Any] | None = None,
) -> None: ...

# state: skypickle's 6-tuple (_restore_function's arguments after func) or cloudpickle 3.x's
# (dict, slotstate) pair.
def _function_setstate(func: FunctionType, state: tuple[Any, ...]) -> None: ...
def _make_empty_cell() -> CellType: ...
def _make_cell(value: Any) -> CellType: ...
def _cell_set(cell: CellType, value: Any) -> None: ...
def _subimport(name: str) -> ModuleType: ...
def _dynamic_subimport(name: str, vars: dict[str, Any]) -> ModuleType: ...
def _builtin_type(name: str) -> type: ...
def _make_skeleton_class(
    type_constructor: type,
    name: str,
    bases: tuple[type, ...],
    type_kwargs: dict[str, Any],
    class_tracker_id: str | None,
    extra: Any,
) -> type: ...
def _make_skeleton_enum(
    bases: tuple[type, ...],
    name: str,
    qualname: str,
    members: dict[str, Any],
    module: str,
    class_tracker_id: str | None,
    extra: dict[str, Any] | None,
) -> type: ...
def _class_setstate(obj: type, state: tuple[dict[str, Any], dict[str, Any]]) -> type: ...
def _make_typevar(
    name: str,
    bound: Any,
    constraints: tuple[Any, ...],
    covariant: bool,
    contravariant: bool,
    class_tracker_id: str | None,
) -> Any: ...
def _get_dataclass_field_type_sentinel(name: str) -> Any: ...
def _make_dict_keys(obj: Iterable[Any], is_ordered: bool = False) -> KeysView[Any]: ...
def _make_dict_values(obj: Iterable[Any], is_ordered: bool = False) -> ValuesView[Any]: ...
def _make_dict_items(
    obj: Mapping[Any, Any] | Iterable[tuple[Any, Any]], is_ordered: bool = False
) -> ItemsView[Any, Any]: ...

# obj: the io.StringIO a pickled text file became; returned as it is.
def _file_reconstructor(obj: _T) -> _T: ...
def _make_lru_cache(
    func: Callable[..., Any], maxsize: int | None, typed: bool
) -> Callable[..., Any]: ...
def _make_singledispatch(
    func: Callable[..., Any], implementations: Iterable[tuple[type, Callable[..., Any]]]
) -> Callable[..., Any]: ...
def _make_cached_property(
    func: Callable[[Any], Any], attrname: str | None, doc: str | None
) -> Any: ...

# cloudpickle's names for the two module loaders, for shims that load cloudpickle-era payloads.
subimport = _subimport
dynamic_subimport = _dynamic_subimport
