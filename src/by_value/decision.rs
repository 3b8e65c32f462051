//! The by-reference decision, as cloudpickle makes it: `whichmodule`,
//! `lookup_module_and_qualname`, the `register_pickle_by_value` registry and
//! `should_pickle_by_reference`.

use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};

use crate::modules::{
    declared_module, is_locals, resolve, scan_sys_modules, split_dotted, sys_modules, whichmodule,
    Scan,
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

/// `unregister_pickle_by_value(module)`: undo `register_pickle_by_value`. skypickle honours
/// the registries of the cloudpickle copies imported in this process too, so the module is
/// removed from each registry that holds it; ValueError if none does.
#[pyfunction]
pub fn unregister_pickle_by_value(module: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = module.py();
    if !module.is_instance_of::<PyModule>() {
        return Err(module_repr_error(module)?);
    }
    let name = module.getattr(pyo3::intern!(py, "__name__"))?;
    let mut found = registry(py)?.discard(&name)?;
    for copy in copy_registries(py)? {
        found |= copy.discard(&name)?;
    }
    if !found {
        return Err(PyValueError::new_err(format!(
            "{} is not registered for pickle by value",
            module.str()?
        )));
    }
    Ok(())
}

/// `list_registry_pickle_by_value()`: the module names registered, with skypickle's
/// `register_pickle_by_value` or with that of a cloudpickle copy imported in this process (a
/// new set). Integrations ask this to decide whether an object needs skypickle at all:
/// distributed does, after pickling by reference with `pickle`.
#[pyfunction]
pub fn list_registry_pickle_by_value(py: Python<'_>) -> PyResult<Bound<'_, PySet>> {
    // set.copy() and set.update(set): copy the stored hashes, run no user code. Iterating the
    // registry while building a new set would hash its items, and a user's __hash__ may change
    // the registry (a set changing size under pyo3's iterator is a panic).
    let names = registry(py)?
        .call_method0(pyo3::intern!(py, "copy"))?
        .cast_into::<PySet>()?;
    for copy in copy_registries(py)? {
        names.call_method1(pyo3::intern!(py, "update"), (copy,))?;
    }
    Ok(names)
}

/// The non-empty `_PICKLE_BY_VALUE_MODULES` sets of the cloudpickle copies imported in this
/// process (`known.cloudpickle_copies`, kept by `skypickle._bridge`; nothing is imported
/// here). The modules are looked up once, when they are imported; each set is read again at
/// every call, since users change it (`cloudpickle.register_pickle_by_value`) or replace it.
/// No copy imported: one length check, no allocation.
fn copy_registries(py: Python<'_>) -> PyResult<Vec<Bound<'_, PySet>>> {
    let mut sets = Vec::new();
    push_copy_registries(py, &mut sets)?;
    Ok(sets)
}

/// Append the non-empty registries of the imported copies to `sets`.
fn push_copy_registries<'py>(py: Python<'py>, sets: &mut Vec<Bound<'py, PySet>>) -> PyResult<()> {
    let copies = crate::known::get(py)?.cloudpickle_copies.bind(py);
    // By index, the length read again at each step: the list may change under us only
    // through user code, and then the walk just sees the new list.
    let mut index = 0;
    while index < copies.len() {
        let Ok(module) = copies.get_item(index) else {
            break;
        };
        index += 1;
        // The module's own namespace, read as a dict: no module `__getattr__`, no descriptor
        // lookup on the module type.
        let Ok(module) = module.cast_into::<PyModule>() else {
            continue;
        };
        let Some(set) = module
            .dict()
            .get_item(pyo3::intern!(py, "_PICKLE_BY_VALUE_MODULES"))?
        else {
            continue;
        };
        if let Ok(set) = set.cast_into::<PySet>() {
            if !set.is_empty() {
                sets.push(set);
            }
        }
    }
    Ok(())
}

/// Whether `module` (by its `__name__`) or one of its parent packages is registered, with
/// skypickle or with a cloudpickle copy imported in this process (users follow documentation
/// that says `cloudpickle.register_pickle_by_value`, e.g. dask's), or listed in the
/// `by_value=` of the dump running on this thread (`per_call`).
pub fn is_registered_pickle_by_value(module: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = module.py();
    // The sets to look in: skypickle's registry and the copies', the empty ones left out, and
    // the dump's own list. With none (the common case) this is two length checks and a
    // thread-local read, and nothing is allocated.
    let mut sets = Vec::new();
    let own = registry(py)?;
    if !own.is_empty() {
        sets.push(own.clone());
    }
    push_copy_registries(py, &mut sets)?;
    // Read at every decision, never cached: the same code object or class may be pickled
    // by another call with another list (or none) on this or another thread.
    if let Some(listed) = super::per_call::current(py) {
        sets.push(listed);
    }
    if sets.is_empty() {
        return Ok(false);
    }
    let registered = |name: &Bound<'_, PyString>| -> PyResult<bool> {
        for set in &sets {
            if set.contains(name)? {
                return Ok(true);
            }
        }
        Ok(false)
    };
    let name = module.getattr(pyo3::intern!(py, "__name__"))?;
    let name = name.cast::<PyString>()?;
    let Ok(text) = name.to_cow() else {
        // Lone surrogates (not UTF-8): walk the parents with Python strings.
        let mut prefix = name.clone();
        loop {
            if registered(&prefix)? {
                return Ok(true);
            }
            let (parent, dot, _): (Bound<'_, PyString>, Bound<'_, PyString>, Bound<'_, PyAny>) =
                prefix
                    .call_method1(pyo3::intern!(py, "rpartition"), (pyo3::intern!(py, "."),))?
                    .extract()?;
            if dot.is_empty()? {
                return Ok(false);
            }
            prefix = parent;
        }
    };
    // The whole name is the str we have; only parents are made from text.
    if registered(name)? {
        return Ok(true);
    }
    let mut prefix: &str = &text;
    while let Some(dot) = prefix.rfind('.') {
        prefix = &prefix[..dot];
        if registered(&PyString::new(py, prefix))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `_whichmodule(obj, name)`, exposed under cloudpickle's private name.
#[pyfunction]
#[pyo3(name = "_whichmodule")]
pub fn whichmodule_py<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    whichmodule(obj, &split_dotted(name)?, Scan::ModulesOnly)
}

/// `_lookup_module_and_qualname(obj, name=None)`, exposed under cloudpickle's private name:
/// `(module, name)` or None.
#[pyfunction]
#[pyo3(name = "_lookup_module_and_qualname", signature = (obj, name=None))]
pub fn lookup_module_and_qualname_py<'py>(
    obj: &Bound<'py, PyAny>,
    name: Option<&Bound<'py, PyString>>,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyString>)>> {
    match name {
        Some(n) => lookup_module_and_name(obj, n),
        None => lookup_module_and_qualname(obj),
    }
}

/// cloudpickle's `_lookup_module_and_qualname`: the module an object can be imported from
/// under its qualified name, or `None` if it cannot (then it travels by value). Names stay
/// Python strs throughout: a qualname may hold lone surrogates, which no Rust string can.
pub fn lookup_module_and_qualname<'py>(
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyString>)>> {
    let py = obj.py();
    let name = match obj.getattr_opt(pyo3::intern!(py, "__qualname__"))? {
        Some(n) => n,
        None => obj.getattr(pyo3::intern!(py, "__name__"))?,
    };
    lookup_module_and_name(obj, &name.str()?)
}

/// `lookup_module_and_qualname` with the name given (TypeVars are found by `__name__`).
pub fn lookup_module_and_name<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyString>)>> {
    let py = obj.py();
    // The dotted path is split only when `__module__` does not say where to look, or when the
    // module is found and the name has a dot; an undotted name is looked up as it is (already
    // hashed, usually interned).
    let module_name = match declared_module(obj)? {
        Some(module_name) => module_name,
        None => match scan_sys_modules(obj, &split_dotted(name)?, Scan::ModulesOnly)? {
            Some(module_name) => module_name,
            None => return Ok(None),
        },
    };
    if module_name
        .cast::<PyString>()
        .is_ok_and(|text| text.to_cow().is_ok_and(|text| text == "__main__"))
    {
        return Ok(None);
    }
    let Some(module) = sys_modules(py)?.get_item(&module_name)? else {
        return Ok(None);
    };
    let found = match split_dotted(name)?.as_slice() {
        [single] if !is_locals(single) => module.getattr(single),
        path => resolve(&module, path).map(|(found, _)| found),
    };
    match found {
        Ok(found) if found.is(obj) => Ok(Some((module, name.clone()))),
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
