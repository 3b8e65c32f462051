//! What cloudpickle's dispatch-table reducers (`by_value/reducers.rs`) produce, on load:
//! cells, modules, dataclass field kinds, dict views, text files and functools objects.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyString, PyTuple, PyType};

use super::function::builtins_dict;
use super::{expect, type_name};

fn cell_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    Ok(crate::known::get(py)?.cell_type.bind(py))
}

/// `_make_empty_cell()`: a new cell with no contents.
#[pyfunction]
pub fn _make_empty_cell(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    crate::ffi::new_empty_cell(py)
}

/// `_make_cell(value)`: a new cell holding `value`.
#[pyfunction]
pub fn _make_cell<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    cell_type(py)?.call1((value,))
}

/// `_cell_set(cell, value)`: fill a cell (the state setter of a pickled cell).
#[pyfunction]
pub fn _cell_set<'py>(
    py: Python<'py>,
    cell: &Bound<'py, PyAny>,
    value: &Bound<'py, PyAny>,
) -> PyResult<()> {
    if !cell.get_type().is(cell_type(py)?) {
        return Err(PyTypeError::new_err(format!(
            "_cell_set() cell must be a cell, not {}",
            type_name(cell)
        )));
    }
    cell.setattr(pyo3::intern!(py, "cell_contents"), value)
}

/// `_subimport(name)`: the module `name`, imported (dotted names give the submodule).
#[pyfunction]
pub fn _subimport<'py>(py: Python<'py>, name: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let name = expect::<PyString>(name, "_subimport() name", "a str")?;
    // A loaded module is a dict lookup away (importlib.import_module is a Python call).
    if let Some(module) = crate::modules::loaded_module(&name)? {
        return Ok(module);
    }
    py.import("importlib")?
        .call_method1(pyo3::intern!(py, "import_module"), (name,))
}

/// `_dynamic_subimport(name, vars)`: a module that exists in no `sys.modules`, rebuilt.
#[pyfunction]
pub fn _dynamic_subimport<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyAny>,
    vars: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyModule>> {
    let name = expect::<PyString>(name, "_dynamic_subimport() name", "a str")?;
    let vars = expect::<PyDict>(vars, "_dynamic_subimport() vars", "a dict")?;
    // `ModuleType(name)` with the str itself: a name may hold lone surrogates (no UTF-8 text).
    let module = py
        .get_type::<PyModule>()
        .call1((name,))?
        .cast_into::<PyModule>()?;
    let dict = module.dict();
    dict.update(vars.as_mapping())?;
    dict.set_item("__builtins__", builtins_dict(py)?)?;
    Ok(module)
}

/// `_get_dataclass_field_type_sentinel(name)`: `dataclasses._FIELD` and its siblings.
#[pyfunction]
pub fn _get_dataclass_field_type_sentinel<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let name = expect::<PyString>(name, "_get_dataclass_field_type_sentinel() name", "a str")?;
    let text = name.to_cow()?;
    if !matches!(&*text, "_FIELD" | "_FIELD_CLASSVAR" | "_FIELD_INITVAR") {
        return Err(PyValueError::new_err(format!(
            "{text:?} is not a dataclass field kind"
        )));
    }
    py.import("dataclasses")?.getattr(&*text)
}

fn dict_class(py: Python<'_>, ordered: bool) -> PyResult<Bound<'_, PyAny>> {
    if ordered {
        py.import("collections")?.getattr("OrderedDict")
    } else {
        Ok(py.get_type::<PyDict>().into_any())
    }
}

/// `_make_dict_keys(keys, is_ordered=False)`: a keys view over a new dict.
#[pyfunction]
#[pyo3(signature = (obj, is_ordered=false))]
pub fn _make_dict_keys<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    is_ordered: bool,
) -> PyResult<Bound<'py, PyAny>> {
    dict_class(py, is_ordered)?
        .call_method1("fromkeys", (obj,))?
        .call_method0("keys")
}

/// `_make_dict_values(values, is_ordered=False)`: a values view over a new dict.
#[pyfunction]
#[pyo3(signature = (obj, is_ordered=false))]
pub fn _make_dict_values<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    is_ordered: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let pairs = PyDict::new(py);
    for (i, value) in obj.try_iter()?.enumerate() {
        pairs.set_item(i, value?)?;
    }
    dict_class(py, is_ordered)?
        .call1((pairs,))?
        .call_method0("values")
}

/// `_make_dict_items(mapping, is_ordered=False)`: an items view over a new dict.
#[pyfunction]
#[pyo3(signature = (obj, is_ordered=false))]
pub fn _make_dict_items<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    is_ordered: bool,
) -> PyResult<Bound<'py, PyAny>> {
    dict_class(py, is_ordered)?
        .call1((obj,))?
        .call_method0("items")
}

/// `_file_reconstructor(stringio)`: the `io.StringIO` a pickled text file became.
#[pyfunction]
pub fn _file_reconstructor<'py>(obj: &Bound<'py, PyAny>) -> Bound<'py, PyAny> {
    obj.clone()
}

/// `_make_lru_cache(func, maxsize, typed)`: `functools.lru_cache(maxsize, typed)(func)`.
#[pyfunction]
pub fn _make_lru_cache<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    maxsize: &Bound<'py, PyAny>,
    typed: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if !func.is_callable() {
        return Err(PyTypeError::new_err(
            "_make_lru_cache() func must be callable",
        ));
    }
    py.import("functools")?
        .getattr("lru_cache")?
        .call1((maxsize, typed))?
        .call1((func,))
}

/// `_make_singledispatch(func, implementations)`: a singledispatch function with its
/// `(class, implementation)` pairs registered again.
#[pyfunction]
pub fn _make_singledispatch<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    implementations: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if !func.is_callable() {
        return Err(PyTypeError::new_err(
            "_make_singledispatch() func must be callable",
        ));
    }
    let generic = py
        .import("functools")?
        .getattr("singledispatch")?
        .call1((func,))?;
    for pair in implementations.try_iter()? {
        let pair = expect::<PyTuple>(&pair?, "_make_singledispatch() item", "a tuple")?;
        if pair.len() != 2 {
            return Err(PyValueError::new_err(
                "_make_singledispatch() items are (class, function) pairs",
            ));
        }
        generic.call_method1("register", (pair.get_item(0)?, pair.get_item(1)?))?;
    }
    Ok(generic)
}

/// `_make_cached_property(func, attrname, doc)`: a `functools.cached_property` as it was after
/// its class was created (`__set_name__` is not called again by `setattr`).
#[pyfunction]
pub fn _make_cached_property<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    attrname: &Bound<'py, PyAny>,
    doc: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let prop = py
        .import("functools")?
        .getattr("cached_property")?
        .call1((func,))?;
    prop.setattr("attrname", attrname)?;
    prop.setattr("__doc__", doc)?;
    Ok(prop)
}
