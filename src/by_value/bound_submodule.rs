//! A by-value submodule that a function reaches through a package pickled by reference
//! (`pkg.sub.func()` or `getattr(pkg, "sub")` with `pkg` global, and `pkg.sub` registered or
//! listed in `by_value=` while `pkg` is not): the payload binds it in that package on load.
//!
//! A submodule a function reaches by attribute is pickled with the function so that loading
//! imports it, which binds it as an attribute of its package, where the code looks for it.
//! A submodule that travels by value is not imported, though: it is rebuilt from its namespace
//! as a module that is in no `sys.modules` and bound nowhere. The package, pickled by reference,
//! is the loader's own, and `pkg.sub` then finds nothing there (AttributeError), or the
//! loader's own version of the submodule when it has one, which is not the code sent. That is
//! what cloudpickle 3.1.2 does. So here the entry is written as
//! `builtins.setattr(pkg, "sub", <sub by value>)`, which does on load what the import would
//! have done: the code sent is the code that runs. When the package itself goes by value, its
//! namespace carries the attribute already and nothing is added.
//!
//! This changes the loader's package, as an import of the submodule would: code there that
//! reads `pkg.sub` afterwards gets the version sent (`sys.modules` is left alone, as for
//! every module rebuilt by value).

use pyo3::prelude::*;
use pyo3::types::{PyModule, PyString, PyTuple};

use super::decision::should_pickle_by_reference;
use crate::modules::sys_modules;

/// `setattr(package, name, submodule)` as an object of the submodule list: saving it (its
/// `__reduce__`) writes that call, in skypickle's format, in compat payloads (a standard
/// library global) and inside `Pickler.reducer_override`'s reduce value alike. Nothing refers
/// to one but the function's parts and the dump's memo, so it needs no garbage-collector
/// support.
#[pyclass(module = "skypickle._skypickle", name = "_SubmoduleBinding", frozen)]
pub struct SubmoduleBinding {
    package: Py<PyModule>,
    name: Py<PyString>,
    submodule: Py<PyModule>,
}

#[pymethods]
impl SubmoduleBinding {
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let setattr = crate::known::get(py)?.setattr.bind(py).clone();
        let args = PyTuple::new(
            py,
            [
                self.package.bind(py).clone().into_any(),
                self.name.bind(py).clone().into_any(),
                self.submodule.bind(py).clone().into_any(),
            ],
        )?;
        PyTuple::new(py, [setattr, args.into_any()])
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<binding of {} as {}.{}>",
            self.submodule.bind(py).repr()?,
            self.package.bind(py).getattr("__name__")?,
            self.name.bind(py)
        ))
    }
}

/// The binding `submodule` needs on load, if any: when it travels by value, its package is in
/// `sys.modules` and travels by reference, and the package's namespace holds it under its last
/// name here (so the code that reaches `package.name` gets it here too; a package attribute
/// that shadows the submodule is left alone).
fn binding<'py>(submodule: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, SubmoduleBinding>>> {
    let py = submodule.py();
    let Ok(module) = submodule.cast::<PyModule>() else {
        return Ok(None);
    };
    let name = submodule.getattr(pyo3::intern!(py, "__name__"))?;
    // A name that is not a str, or not UTF-8 (lone surrogates), names no importable package.
    let Some(text) = name.cast::<PyString>().ok().and_then(|n| n.to_cow().ok()) else {
        return Ok(None);
    };
    let Some((package_name, last)) = text.rsplit_once('.') else {
        return Ok(None);
    };
    if should_pickle_by_reference(submodule)? {
        return Ok(None);
    }
    let Some(package) = sys_modules(py)?.get_item(package_name)? else {
        return Ok(None);
    };
    let Ok(package) = package.cast_into::<PyModule>() else {
        return Ok(None);
    };
    if !should_pickle_by_reference(package.as_any())? {
        return Ok(None);
    }
    // The namespace itself: a module `__getattr__` is not asked (and not run).
    let last = PyString::new(py, last);
    let bound_here = package
        .dict()
        .get_item(&last)?
        .is_some_and(|value| value.is(submodule));
    if !bound_here {
        return Ok(None);
    }
    Ok(Some(Bound::new(
        py,
        SubmoduleBinding {
            package: package.unbind(),
            name: last.unbind(),
            submodule: module.clone().unbind(),
        },
    )?))
}

/// The submodules a function reaches (`find_imported_submodules`), each as itself (loading
/// imports it, or rebuilds it with its package) or as the binding that puts it in its package.
pub fn bind_by_value_submodules(
    submodules: Vec<Bound<'_, PyAny>>,
) -> PyResult<Vec<Bound<'_, PyAny>>> {
    submodules
        .into_iter()
        .map(|submodule| {
            Ok(match binding(&submodule)? {
                Some(bound) => bound.into_any(),
                None => submodule,
            })
        })
        .collect()
}
