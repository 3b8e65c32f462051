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
use pyo3::types::{PyModule, PyString};

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
/// name itself when it has no dot).
pub fn split_dotted<'py>(name: &Bound<'py, PyString>) -> PyResult<Vec<Bound<'py, PyString>>> {
    let text = name.to_cow()?;
    if !text.contains('.') {
        return Ok(vec![name.clone()]);
    }
    Ok(split_text(name.py(), &text))
}

/// [`split_dotted`] for a name held by Rust.
pub fn split_text<'py>(py: Python<'py>, name: &str) -> Vec<Bound<'py, PyString>> {
    name.split('.')
        .map(|part| PyString::new(py, part))
        .collect()
}

/// Whether a dotted path goes through a function's locals (`f.<locals>.g`): such an object
/// has no importable name.
pub fn is_local(path: &[Bound<'_, PyString>]) -> PyResult<bool> {
    for part in path {
        if part.to_cow()? == "<locals>" {
            return Ok(true);
        }
    }
    Ok(false)
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
        if part.to_cow()? == "<locals>" {
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
    if is_local(path)? {
        return Ok(None);
    }
    // A copy: the lookups below may import modules, which changes `sys.modules`.
    let snapshot = sys_modules(py)?.copy()?;
    for (module_name, module) in snapshot.iter() {
        if let Ok(text) = module_name.cast::<PyString>() {
            let text = text.to_cow()?;
            if text == "__main__" || text == "__mp_main__" {
                continue;
            }
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
