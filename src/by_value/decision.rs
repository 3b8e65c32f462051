//! The by-reference decision, as cloudpickle makes it: `whichmodule`,
//! `lookup_module_and_qualname`, the `register_pickle_by_value` registry and
//! `should_pickle_by_reference`.

use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};

use crate::modules::{
    declared_module, resolve, scan_sys_modules, split_text, sys_modules, whichmodule, Scan,
};
use pyo3::prelude::*;
use pyo3::types::{PyFunction, PyModule, PySet, PyString, PyType};

/// The names of modules registered for pickling by value (cloudpickle's
/// `_PICKLE_BY_VALUE_MODULES`, held in `known`): a plain Python set, exposed as
/// `skypickle._PICKLE_BY_VALUE_MODULES` and re-read at every use.
pub fn registry(py: Python<'_>) -> PyResult<&Bound<'_, PySet>> {
    Ok(crate::known::get(py)?.by_value_registry.bind(py))
}

fn module_repr_error(module: &Bound<'_, PyAny>) -> PyResult<PyErr> {
    Ok(PyValueError::new_err(format!(
        "Input should be a module object, got {} instead",
        module.str()?
    )))
}

/// `register_pickle_by_value(module)`: pickle the module's functions and classes (and those
/// of its submodules) by value, even though they are importable.
#[pyfunction]
pub fn register_pickle_by_value(module: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = module.py();
    if !module.is_instance_of::<PyModule>() {
        return Err(module_repr_error(module)?);
    }
    let name = module.getattr(pyo3::intern!(py, "__name__"))?;
    if !sys_modules(py)?.contains(&name)? {
        return Err(PyValueError::new_err(format!(
            "{} was not imported correctly, have you used an `import` statement to access it?",
            module.repr()?
        )));
    }
    registry(py)?.add(name)
}

/// `unregister_pickle_by_value(module)`: undo `register_pickle_by_value`.
#[pyfunction]
pub fn unregister_pickle_by_value(module: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = module.py();
    if !module.is_instance_of::<PyModule>() {
        return Err(module_repr_error(module)?);
    }
    let name = module.getattr(pyo3::intern!(py, "__name__"))?;
    let registry = registry(py)?;
    if !registry.contains(&name)? {
        return Err(PyValueError::new_err(format!(
            "{} is not registered for pickle by value",
            module.str()?
        )));
    }
    registry.discard(name).map(|_| ())
}

/// `list_registry_pickle_by_value()`: a copy of the registered module names.
#[pyfunction]
pub fn list_registry_pickle_by_value(py: Python<'_>) -> PyResult<Bound<'_, PySet>> {
    PySet::new(py, registry(py)?.iter())
}

/// Whether `module` (by its `__name__`) or one of its parent packages is registered.
pub fn is_registered_pickle_by_value(module: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = module.py();
    let registry = registry(py)?;
    if registry.is_empty() {
        return Ok(false);
    }
    let name = module.getattr(pyo3::intern!(py, "__name__"))?;
    let name = name.cast::<PyString>()?.to_cow()?.into_owned();
    let mut prefix = name.as_str();
    loop {
        if registry.contains(prefix)? {
            return Ok(true);
        }
        match prefix.rfind('.') {
            Some(dot) => prefix = &prefix[..dot],
            None => return Ok(false),
        }
    }
}

/// `_whichmodule(obj, name)`, exposed under cloudpickle's private name.
#[pyfunction]
#[pyo3(name = "_whichmodule")]
pub fn whichmodule_py<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    whichmodule(obj, &split_text(obj.py(), name), Scan::ModulesOnly)
}

/// `_lookup_module_and_qualname(obj, name=None)`, exposed under cloudpickle's private name:
/// `(module, name)` or None.
#[pyfunction]
#[pyo3(name = "_lookup_module_and_qualname", signature = (obj, name=None))]
pub fn lookup_module_and_qualname_py<'py>(
    obj: &Bound<'py, PyAny>,
    name: Option<&str>,
) -> PyResult<Option<(Bound<'py, PyAny>, String)>> {
    match name {
        Some(n) => lookup_module_and_name(obj, n),
        None => lookup_module_and_qualname(obj),
    }
}

/// cloudpickle's `_lookup_module_and_qualname`: the module an object can be imported from
/// under its qualified name, or `None` if it cannot (then it travels by value).
pub fn lookup_module_and_qualname<'py>(
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<(Bound<'py, PyAny>, String)>> {
    let py = obj.py();
    let name = match obj.getattr_opt(pyo3::intern!(py, "__qualname__"))? {
        Some(n) => n,
        None => obj.getattr(pyo3::intern!(py, "__name__"))?,
    };
    let text = name.str()?.to_cow()?.into_owned();
    // The common undotted name: look it up with the name object itself (already hashed,
    // usually interned) rather than a new string.
    if !text.contains('.') {
        if let Ok(name_str) = name.cast::<PyString>() {
            return lookup_module_with(
                obj,
                &text,
                || Ok(vec![name_str.clone()]),
                |module| module.getattr(name_str),
            );
        }
    }
    lookup_module_and_name(obj, &text)
}

/// `lookup_module_and_qualname` with the name given (TypeVars are found by `__name__`).
pub fn lookup_module_and_name<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Option<(Bound<'py, PyAny>, String)>> {
    let py = obj.py();
    lookup_module_with(
        obj,
        name,
        || Ok(split_text(py, name)),
        |module| resolve(module, &split_text(py, name)).map(|(found, _)| found),
    )
}

fn lookup_module_with<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    path: impl FnOnce() -> PyResult<Vec<Bound<'py, PyString>>>,
    resolve: impl FnOnce(&Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Option<(Bound<'py, PyAny>, String)>> {
    let py = obj.py();
    let name = name.to_owned();
    // The dotted path is split only when `__module__` does not say where to look.
    let module_name = match declared_module(obj)? {
        Some(module_name) => module_name,
        None => match scan_sys_modules(obj, &path()?, Scan::ModulesOnly)? {
            Some(module_name) => module_name,
            None => return Ok(None),
        },
    };
    if let Ok(text) = module_name.cast::<PyString>() {
        if text.to_cow()? == "__main__" {
            return Ok(None);
        }
    }
    let Some(module) = sys_modules(py)?.get_item(&module_name)? else {
        return Ok(None);
    };
    match resolve(&module) {
        Ok(found) if found.is(obj) => Ok(Some((module, name))),
        Ok(_) => Ok(None),
        Err(e) if e.is_instance_of::<PyAttributeError>(py) => Ok(None),
        Err(e) => Err(e),
    }
}

/// cloudpickle's `_should_pickle_by_reference`, for functions, classes and modules.
pub fn should_pickle_by_reference(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    if obj.is_instance_of::<PyFunction>() || obj.is_instance_of::<PyType>() {
        return match lookup_module_and_qualname(obj)? {
            None => Ok(false),
            Some((module, _)) => Ok(!is_registered_pickle_by_value(&module)?),
        };
    }
    if obj.is_instance_of::<PyModule>() {
        if is_registered_pickle_by_value(obj)? {
            return Ok(false);
        }
        let name = obj.getattr(pyo3::intern!(py, "__name__"))?;
        return sys_modules(py)?.contains(name);
    }
    Err(PyTypeError::new_err(format!(
        "cannot check importability of {} instances",
        obj.get_type().name()?
    )))
}

/// `_should_pickle_by_reference(obj)`, exposed for cloudpickle's test-suite surface.
#[pyfunction]
#[pyo3(name = "_should_pickle_by_reference")]
pub fn should_pickle_by_reference_py(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    should_pickle_by_reference(obj)
}
