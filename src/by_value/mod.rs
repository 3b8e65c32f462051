//! What cloudpickle adds to pickle: functions, classes and modules that cannot be imported
//! by the loader travel **by value**.
//!
//! `reducer_override` is cloudpickle's hook, called in `save()` after the built-in containers:
//! it returns a reduce value for a class or function that must go by value, or `None` to let
//! the normal path (a global by reference) proceed. The special reducers of cloudpickle's
//! dispatch table (cells, code, modules, methods, ...) are in `reducers`.

pub mod code;
pub mod function;
pub mod lookup;
pub mod reducers;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFunction, PyString, PyTuple, PyType};

use crate::rebuild::wire;

/// `types.X` for every class in the `types` module (`types.CodeType` -> "CodeType"): such
/// classes have no importable name, so they are written as `_builtin_type("CodeType")`.
static BUILTIN_TYPE_NAMES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn builtin_type_names(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    BUILTIN_TYPE_NAMES
        .get_or_try_init(py, || {
            let names = PyDict::new(py);
            let type_type = py.get_type::<PyType>();
            for (name, value) in py.import("types")?.dict().iter() {
                if value.get_type().is(&type_type) {
                    names.set_item(value, name)?;
                }
            }
            Ok::<_, PyErr>(names.unbind())
        })
        .map(|d| d.bind(py))
}

/// cloudpickle's `reducer_override`: a reduce value for `obj`, or `None` for "not mine".
pub fn reducer_override<'py>(
    obj: &Bound<'py, PyAny>,
    globals_ref: &Bound<'py, PyDict>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    if obj.is_instance_of::<PyType>() {
        return class_reduce(obj);
    }
    if obj.is_exact_instance_of::<PyFunction>() {
        if lookup::should_pickle_by_reference(obj)? {
            return Ok(None);
        }
        return function::function_reduce(obj, globals_ref).map(Some);
    }
    Ok(None)
}

/// Classes: the `types` module's classes by name; dynamic classes by value (not yet:
/// they still go by reference, as `pickle` does).
fn class_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let py = obj.py();
    if let Some(name) = builtin_type_names(py)?.get_item(obj)? {
        let name = name.cast_into::<PyString>()?;
        // NoneType and friends keep `pickle`'s `type(None)` form (save_type).
        if !matches!(
            &*name.to_cow()?,
            "NoneType" | "EllipsisType" | "NotImplementedType"
        ) {
            let builtin_type = wire(py)?.builtin_type.bind(py).clone();
            return Ok(Some(PyTuple::new(
                py,
                [builtin_type, PyTuple::new(py, [name])?.into_any()],
            )?));
        }
    }
    Ok(None)
}
