//! Every Python object skypickle looks up once and keeps, in one struct built at module
//! initialisation: type pointers for the exact-type dispatch, the `copyreg` registries,
//! `_compat_pickle`'s name maps, the callables that internal reductions name, the classes the
//! by-value layer and the reconstructors test against, and the by-value registry. One place,
//! so no module name is spelled at a call site and no other module keeps a cache of its own.
//!
//! The only other process-wide statics are the wire table's objects (`wire.rs`, the
//! reconstructors by op) and the class tracker's maps (`class_tracker`, state behind a lock,
//! not a cache, with the `skypickle._bridge` functions it calls, looked up on first use).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBytes, PyDict, PyFloat, PyFrozenSet, PyFunction, PyInt, PyList, PyModule, PySet, PyString,
    PyTuple, PyType,
};
use pyo3::PyTypeInfo;

/// Exact type pointers, compared with `Py_TYPE(obj)` in `save()`'s dispatch.
pub struct TypePtrs {
    pub bool: usize,
    pub int: usize,
    pub float: usize,
    pub str: usize,
    pub bytes: usize,
    pub dict: usize,
    pub list: usize,
    pub tuple: usize,
    pub set: usize,
    pub frozenset: usize,
    pub picklebuffer: usize,
    pub type_: usize,
    pub function: usize,
    pub cell: usize,
    pub code: usize,
    pub builtin_function: usize,
    /// Compared by the reload policy's fingerprints (class_tracker/reload.rs), which must not
    /// go by a type's name.
    pub classmethod: usize,
    pub staticmethod: usize,
    pub complex: usize,
    pub none: usize,
}

pub struct Known {
    pub types: TypePtrs,
    /// `copyreg.dispatch_table`: consulted live, as `pickle` does.
    pub copyreg_dispatch: Py<PyDict>,
    /// `copyreg._extension_registry`: (module, name) -> code, for EXT1/EXT2/EXT4.
    pub extension_registry: Py<PyDict>,
    /// `copyreg.__newobj__`, the callable object.__reduce_ex__ names for NEWOBJ.
    pub copyreg_newobj: Py<PyAny>,
    /// `_compat_pickle.REVERSE_NAME_MAPPING` / `REVERSE_IMPORT_MAPPING` (fix_imports, protocol < 3).
    pub reverse_name_mapping: Py<PyDict>,
    pub reverse_import_mapping: Py<PyDict>,
    /// `_codecs.encode`, for bytes below protocol 3.
    pub codecs_encode: Py<PyAny>,
    /// The `"latin1"` argument of those reductions: one object, so it is memoised once.
    pub latin1: Py<PyString>,
    /// `builtins.getattr`, for nested names below protocol 4.
    pub getattr: Py<PyAny>,
    /// `builtins.setattr`, which binds a by-value submodule in its package on load
    /// (`by_value::bound_submodule`).
    pub setattr: Py<PyAny>,
    /// `functools.partial`, for NEWOBJ_EX below protocol 4.
    pub partial: Py<PyAny>,
    /// The class-level registry behind `Pickler.dispatch` / `Pickler.dispatch_table`'s first map.
    pub dispatch_registry: Py<PyDict>,
    /// `ChainMap(dispatch_registry, copyreg.dispatch_table)`: the default `dispatch_table`.
    pub default_dispatch_table: Py<PyAny>,
    pub pickling_error: Py<PyType>,

    // The by-value layer.
    /// The names of modules registered for pickling by value (cloudpickle's
    /// `_PICKLE_BY_VALUE_MODULES`): a plain Python set, exposed as
    /// `skypickle._PICKLE_BY_VALUE_MODULES` and re-read at every use, so code that edits it
    /// directly (as some integrations do with cloudpickle's) is honoured.
    pub by_value_registry: Py<PySet>,
    /// The cloudpickle copies imported in this process (the modules `cloudpickle.cloudpickle`,
    /// `pyspark.cloudpickle.cloudpickle`, ...): a list, exposed as
    /// `skypickle._skypickle._CLOUDPICKLE_COPIES` and kept by `skypickle._bridge` (at its
    /// install and whenever a copy finishes importing). The decision reads their
    /// `_PICKLE_BY_VALUE_MODULES` through it, by index; empty, it costs one length check.
    pub cloudpickle_copies: Py<PyList>,
    /// `types.X` -> "X" for every class in the `types` module: such classes have no importable
    /// name, so they are written as `_builtin_type("X")`.
    pub builtin_type_names: Py<PyDict>,
    /// The deallocator every class created by `type.__new__` has (CPython's
    /// `subtype_dealloc`), read off a class made for the purpose: what tells a class statement's
    /// class from a class implemented in C.
    pub python_class_dealloc: usize,
    pub abc_meta: Py<PyType>,
    pub enum_type: Py<PyType>,
    pub property_type: Py<PyType>,
    /// `opcode.opmap`'s numbers for the instructions the globals walk reads.
    pub opcodes: Opcodes,
    /// The six dict view types (plain and `OrderedDict`; keys, values, items).
    pub dict_views: Vec<DictView>,
    /// The addresses of skypickle's own `_code_reduce` and `_cell_reduce`: while the dispatch
    /// table still holds them, code objects and cells take the direct path.
    pub code_reducer: usize,
    pub cell_reducer: usize,

    // The load side.
    /// The version tag code objects are pickled with ("3.11"): code objects only load on the
    /// minor version that made them.
    pub python_tag: Py<PyString>,
    /// `builtins.__dict__`, what loaded functions and modules get as `__builtins__`.
    pub builtins_dict: Py<PyDict>,
    pub cell_type: Py<PyType>,
}

/// Opcode numbers for the running CPython.
pub struct Opcodes {
    pub load_global: u8,
    pub store_global: u8,
    pub delete_global: u8,
    pub extended_arg: u8,
}

/// Which dict view a type is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    Keys,
    Values,
    Items,
}

/// A dict view type: its kind, and whether it views an `OrderedDict`.
pub struct DictView {
    pub view_type: Py<PyType>,
    pub kind: ViewKind,
    pub ordered: bool,
}

static KNOWN: PyOnceLock<Known> = PyOnceLock::new();

fn type_ptr<T: PyTypeInfo>(py: Python<'_>) -> usize {
    T::type_object_raw(py) as usize
}

fn build(module: &Bound<'_, PyModule>) -> PyResult<Known> {
    let py = module.py();
    let copyreg = py.import("copyreg")?;
    let compat = py.import("_compat_pickle")?;
    let pickle = py.import("pickle")?;
    let dispatch_registry = PyDict::new(py);
    let copyreg_dispatch = copyreg.getattr("dispatch_table")?.cast_into::<PyDict>()?;
    let chain_map = py
        .import("collections")?
        .getattr("ChainMap")?
        .call1((&dispatch_registry, &copyreg_dispatch))?;
    let types = py.import("types")?;
    let type_type = py.get_type::<PyType>();
    let builtin_type_names = PyDict::new(py);
    for (name, value) in types.dict().iter() {
        if value.get_type().is(&type_type) {
            builtin_type_names.set_item(value, name)?;
        }
    }
    let probe = type_type.call1(("_skypickle_probe", PyTuple::empty(py), PyDict::new(py)))?;
    let opmap = py.import("opcode")?.getattr("opmap")?;
    let opcode = |name: &str| -> PyResult<u8> { opmap.get_item(name)?.extract() };
    let mut dict_views = Vec::new();
    let ordered_dict = py.import("collections")?.getattr("OrderedDict")?.call0()?;
    for (dict, ordered) in [(PyDict::new(py).into_any(), false), (ordered_dict, true)] {
        for (method, kind) in [
            ("keys", ViewKind::Keys),
            ("values", ViewKind::Values),
            ("items", ViewKind::Items),
        ] {
            dict_views.push(DictView {
                view_type: dict.call_method0(method)?.get_type().unbind(),
                kind,
                ordered,
            });
        }
    }
    let version = py.version_info();
    let import_type = |module: &str, name: &str| -> PyResult<Py<PyType>> {
        Ok(py
            .import(module)?
            .getattr(name)?
            .cast_into::<PyType>()?
            .unbind())
    };
    // The module's own functions, read from the module being initialised (not imported by
    // name: the module is not in `sys.modules` yet).
    let address_of = |name: &str| -> PyResult<usize> {
        // The module keeps the function alive for the life of the process.
        Ok(module.getattr(name)?.as_ptr() as usize)
    };
    Ok(Known {
        types: TypePtrs {
            bool: type_ptr::<pyo3::types::PyBool>(py),
            int: type_ptr::<PyInt>(py),
            float: type_ptr::<PyFloat>(py),
            str: type_ptr::<PyString>(py),
            bytes: type_ptr::<PyBytes>(py),
            dict: type_ptr::<PyDict>(py),
            list: type_ptr::<PyList>(py),
            tuple: type_ptr::<PyTuple>(py),
            set: type_ptr::<PySet>(py),
            frozenset: type_ptr::<PyFrozenSet>(py),
            picklebuffer: pickle.getattr("PickleBuffer")?.as_ptr() as usize,
            type_: type_ptr::<PyType>(py),
            function: type_ptr::<PyFunction>(py),
            cell: py.import("types")?.getattr("CellType")?.as_ptr() as usize,
            code: py.import("types")?.getattr("CodeType")?.as_ptr() as usize,
            builtin_function: type_ptr::<pyo3::types::PyCFunction>(py),
            // Static types of the interpreter: their addresses never change.
            classmethod: py.import("builtins")?.getattr("classmethod")?.as_ptr() as usize,
            staticmethod: py.import("builtins")?.getattr("staticmethod")?.as_ptr() as usize,
            complex: type_ptr::<pyo3::types::PyComplex>(py),
            none: py.None().bind(py).get_type().as_ptr() as usize,
        },
        copyreg_dispatch: copyreg_dispatch.unbind(),
        extension_registry: copyreg
            .getattr("_extension_registry")?
            .cast_into::<PyDict>()?
            .unbind(),
        copyreg_newobj: copyreg.getattr("__newobj__")?.unbind(),
        reverse_name_mapping: compat
            .getattr("REVERSE_NAME_MAPPING")?
            .cast_into::<PyDict>()?
            .unbind(),
        reverse_import_mapping: compat
            .getattr("REVERSE_IMPORT_MAPPING")?
            .cast_into::<PyDict>()?
            .unbind(),
        codecs_encode: py.import("_codecs")?.getattr("encode")?.unbind(),
        latin1: PyString::intern(py, "latin1").unbind(),
        getattr: py.import("builtins")?.getattr("getattr")?.unbind(),
        setattr: py.import("builtins")?.getattr("setattr")?.unbind(),
        partial: py.import("functools")?.getattr("partial")?.unbind(),
        dispatch_registry: dispatch_registry.unbind(),
        default_dispatch_table: chain_map.unbind(),
        pickling_error: pickle
            .getattr("PicklingError")?
            .cast_into::<PyType>()?
            .unbind(),
        by_value_registry: PySet::empty(py)?.unbind(),
        cloudpickle_copies: PyList::empty(py).unbind(),
        builtin_type_names: builtin_type_names.unbind(),
        python_class_dealloc: crate::ffi::type_dealloc(probe.cast::<PyType>()?),
        abc_meta: import_type("abc", "ABCMeta")?,
        enum_type: import_type("enum", "Enum")?,
        property_type: import_type("builtins", "property")?,
        opcodes: Opcodes {
            load_global: opcode("LOAD_GLOBAL")?,
            store_global: opcode("STORE_GLOBAL")?,
            delete_global: opcode("DELETE_GLOBAL")?,
            extended_arg: opcode("EXTENDED_ARG")?,
        },
        dict_views,
        code_reducer: address_of("_code_reduce")?,
        cell_reducer: address_of("_cell_reduce")?,
        python_tag: PyString::new(py, &format!("{}.{}", version.major, version.minor)).unbind(),
        builtins_dict: py.import("builtins")?.dict().unbind(),
        cell_type: import_type("types", "CellType")?,
    })
}

/// Build the lookups; called once, by the module's initialisation, after its functions have
/// been added.
pub fn init(module: &Bound<'_, PyModule>) -> PyResult<&'static Known> {
    KNOWN.get_or_try_init(module.py(), || build(module))
}

/// The process-wide lookups (built when the module was initialised).
pub fn get(py: Python<'_>) -> PyResult<&'static Known> {
    KNOWN.get(py).ok_or_else(|| {
        pyo3::exceptions::PySystemError::new_err("skypickle._skypickle is not initialised")
    })
}
