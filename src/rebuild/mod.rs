//! The load side: the reconstructors skypickle's payloads call when loaded with
//! `pickle.loads`. Which payload calls which, by number, is the wire table (`wire.rs`); this
//! folder mirrors `by_value/`, which writes what these read:
//!
//! * `code`: code objects;
//! * `function`: functions and what is restored on them;
//! * `class`: classes, enums, TypeVars and the `types` module's classes (the class tracker
//!   and the policy for a class received again are in `class_tracker`);
//! * `reducers`: what cloudpickle's dispatch-table reducers produce: cells, modules, dict
//!   views, text files, dataclass field kinds, functools objects.
//!
//! Every reconstructor checks its arguments, so a forged or corrupted payload gets a
//! `TypeError`/`ValueError`, never a crash.

pub mod class;
pub mod code;
pub mod function;
pub mod reducers;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string())
}

/// `obj` as a `T`, or a TypeError saying which argument had which wrong type.
pub(crate) fn expect<'py, T: pyo3::type_object::PyTypeCheck>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    expected: &str,
) -> PyResult<Bound<'py, T>> {
    obj.cast::<T>().cloned().map_err(|_| {
        PyTypeError::new_err(format!("{what} must be {expected}, not {}", type_name(obj)))
    })
}
