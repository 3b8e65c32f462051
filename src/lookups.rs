//! Every Python object the pickler looks up once and keeps: type pointers for the exact-type
//! dispatch, the `copyreg` registries, `_compat_pickle`'s name maps, and the callables that
//! internal reductions name. One place, so no module name is spelled at a call site.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyFunction, PyInt, PyList, PySet, PyString,
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
    pub bytearray: usize,
    pub picklebuffer: usize,
    pub type_: usize,
    pub function: usize,
    pub cell: usize,
    pub code: usize,
    pub builtin_function: usize,
    /// Compared by `_class_setstate`'s fingerprints (rebuild.rs), which must not go by name.
    pub classmethod: usize,
    pub staticmethod: usize,
    pub property: usize,
    pub complex: usize,
    pub none: usize,
}

pub struct Lookups {
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
    /// `functools.partial`, for NEWOBJ_EX below protocol 4.
    pub partial: Py<PyAny>,
    /// The class-level registry behind `Pickler.dispatch` / `Pickler.dispatch_table`'s first map.
    pub dispatch_registry: Py<PyDict>,
    /// `ChainMap(dispatch_registry, copyreg.dispatch_table)`: the default `dispatch_table`.
    pub default_dispatch_table: Py<PyAny>,
    pub pickling_error: Py<PyType>,
}

static LOOKUPS: PyOnceLock<Lookups> = PyOnceLock::new();

fn type_ptr<T: PyTypeInfo>(py: Python<'_>) -> usize {
    T::type_object_raw(py) as usize
}

fn build(py: Python<'_>) -> PyResult<Lookups> {
    let copyreg = py.import("copyreg")?;
    let compat = py.import("_compat_pickle")?;
    let pickle = py.import("pickle")?;
    let builtins = py.import("builtins")?;
    let dispatch_registry = PyDict::new(py);
    let copyreg_dispatch = copyreg.getattr("dispatch_table")?.cast_into::<PyDict>()?;
    let chain_map = py
        .import("collections")?
        .getattr("ChainMap")?
        .call1((&dispatch_registry, &copyreg_dispatch))?;
    Ok(Lookups {
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
            bytearray: type_ptr::<PyByteArray>(py),
            picklebuffer: pickle.getattr("PickleBuffer")?.as_ptr() as usize,
            type_: type_ptr::<PyType>(py),
            function: type_ptr::<PyFunction>(py),
            cell: py.import("types")?.getattr("CellType")?.as_ptr() as usize,
            code: py.import("types")?.getattr("CodeType")?.as_ptr() as usize,
            builtin_function: type_ptr::<pyo3::types::PyCFunction>(py),
            // Static types of the interpreter: their addresses never change.
            classmethod: builtins.getattr("classmethod")?.as_ptr() as usize,
            staticmethod: builtins.getattr("staticmethod")?.as_ptr() as usize,
            property: builtins.getattr("property")?.as_ptr() as usize,
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
        partial: py.import("functools")?.getattr("partial")?.unbind(),
        dispatch_registry: dispatch_registry.unbind(),
        default_dispatch_table: chain_map.unbind(),
        pickling_error: pickle
            .getattr("PicklingError")?
            .cast_into::<PyType>()?
            .unbind(),
    })
}

/// The process-wide lookups, built on first use (module import).
pub fn get(py: Python<'_>) -> PyResult<&'static Lookups> {
    LOOKUPS.get_or_try_init(py, || build(py))
}
