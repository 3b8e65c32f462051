//! `sys.modules`: a loaded module by name, the dotted attribute walk, and the one scan that
//! finds which module an object lives in, for both of its users:
//!
//! * `pickle`'s `whichmodule` (`save_global`): a global by reference, `__main__` when no
//!   module has it;
//! * cloudpickle's `_whichmodule` (the by-value decision): no module means "by value".
//!
//! The two differ in a single rule, the [`Scan`] policy.

use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyModule, PyString};

pub use crate::ffi::sys_modules;

/// The module `sys.modules[name]` when it is loaded (a dict lookup: importing a loaded module
/// through the import system costs thousands of instructions), else None.
pub fn loaded_module<'py>(name: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(sys_modules(name.py())?
        .get_item(name)?
        .filter(pyo3::types::PyAnyMethods::is_instance_of::<PyModule>))
}

/// The module `name`: from `sys.modules` when it is there, else imported the way `pickle`
/// does (`PyImport_Import`, about 20 times slower even for a loaded module).
pub fn import_module<'py>(name: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Some(module) = loaded_module(name)? {
        return Ok(module);
    }
    crate::ffi::import_module(name)
}

/// A qualified name split at its dots (`Outer.Inner.method`), each part a str object (the
/// name itself when it has no dot). Names with lone surrogates (no UTF-8 form) are split by
/// `str.split`.
pub fn split_dotted<'py>(name: &Bound<'py, PyString>) -> PyResult<Vec<Bound<'py, PyString>>> {
    let py = name.py();
    let Ok(text) = name.to_cow() else {
        return name
            .call_method1(pyo3::intern!(py, "split"), (pyo3::intern!(py, "."),))?
            .cast_into::<PyList>()?
            .iter()
            .map(|part| part.cast_into::<PyString>().map_err(PyErr::from))
            .collect();
    };
    if !text.contains('.') {
        return Ok(vec![name.clone()]);
    }
    Ok(split_text(py, &text))
}

/// [`split_dotted`] for a name held by Rust.
pub fn split_text<'py>(py: Python<'py>, name: &str) -> Vec<Bound<'py, PyString>> {
    name.split('.')
        .map(|part| PyString::new(py, part))
        .collect()
}

/// Whether a part of a dotted path is `<locals>` (text that is not UTF-8 is not).
pub fn is_locals(part: &Bound<'_, PyString>) -> bool {
    part.to_cow().is_ok_and(|text| text == "<locals>")
}

/// Whether a dotted path goes through a function's locals (`f.<locals>.g`): such an object
/// has no importable name.
pub fn is_local(path: &[Bound<'_, PyString>]) -> bool {
    path.iter().any(is_locals)
}

/// Whether a module name is `__main__` or `__mp_main__` (text that is not UTF-8 is neither).
fn is_main_name(name: &Bound<'_, PyAny>) -> bool {
    name.cast::<PyString>().is_ok_and(|name| {
        name.to_cow()
            .is_ok_and(|text| text == "__main__" || text == "__mp_main__")
    })
}

/// `getattr` along a dotted path from `root`: the object found and its parent. A `<locals>`
/// step is an AttributeError (as in `pickle`'s `_getattribute`).
pub fn resolve<'py>(
    root: &Bound<'py, PyAny>,
    path: &[Bound<'py, PyString>],
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let mut parent = root.clone();
    let mut current = root.clone();
    for part in path {
        if is_locals(part) {
            return Err(PyAttributeError::new_err(format!(
                "Can't get local attribute {} on {}",
                part.repr()?,
                root.repr()?
            )));
        }
        parent = current;
        current = parent.getattr(part)?;
    }
    Ok((current, parent))
}

/// Which entries of `sys.modules` the scan looks into.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// `pickle`: every entry but `None` (a value that is not a module is still searched).
    Pickle,
    /// cloudpickle: modules only.
    ModulesOnly,
}

/// The name of the module `obj` lives in: its `__module__` when set, else the first module in
/// `sys.modules` (never `__main__` or `__mp_main__`) that has `obj` itself at `path`; None
/// when none does. Entries whose attribute access raises are skipped.
pub fn whichmodule<'py>(
    obj: &Bound<'py, PyAny>,
    path: &[Bound<'py, PyString>],
    scan: Scan,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match declared_module(obj)? {
        Some(module_name) => Ok(Some(module_name)),
        None => scan_sys_modules(obj, path, scan),
    }
}

/// `obj.__module__`, unless it is missing or None.
pub fn declared_module<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(obj
        .getattr_opt(pyo3::intern!(obj.py(), "__module__"))?
        .filter(|name| !name.is_none()))
}

/// [`whichmodule`]'s scan: the first module in `sys.modules` (never `__main__` or
/// `__mp_main__`) that has `obj` itself at `path`.
pub fn scan_sys_modules<'py>(
    obj: &Bound<'py, PyAny>,
    path: &[Bound<'py, PyString>],
    scan: Scan,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    if is_local(path) {
        return Ok(None);
    }
    // A copy: the lookups below may import modules, which changes `sys.modules`.
    let snapshot = sys_modules(py)?.copy()?;
    for (module_name, module) in snapshot.iter() {
        if is_main_name(&module_name) {
            continue;
        }
        let searched = match scan {
            Scan::Pickle => !module.is_none(),
            Scan::ModulesOnly => module.is_instance_of::<PyModule>(),
        };
        if !searched {
            continue;
        }
        if let Ok((found, _)) = resolve(&module, path) {
            if found.is(obj) {
                return Ok(Some(module_name));
            }
        }
    }
    Ok(None)
}
