//! Per-call by-value modules: `dumps(obj, by_value=[module_or_name, ...])` (also `dump`,
//! `fingerprint` and `Pickler(..., by_value=...)`, which keeps its list for all its dumps).
//!
//! The listed modules, and their submodules, travel by value for that call only, as if they
//! were registered with `register_pickle_by_value` for its duration, but the registries are
//! neither read-modified nor changed: calls with different lists on different threads (or a
//! nested dump with another list, or none) cannot see each other's.
//!
//! The list of the dump running on this thread is kept in a thread-local, set for the duration
//! of each dump (as `deterministic::enter` keeps the mode): the decision
//! (`decision::is_registered_pickle_by_value`) is also reached from Python during a dump
//! (a subclass's `Pickler.reducer_override`, the dispatch table's `_module_reduce` and
//! `_typevar_reduce`), with no dumper to ask. Nothing caches a by-value decision beyond one
//! dump: the decision reads this list and the registries each time.
//!
//! The list is checked at the call, before anything is written: each entry is a module
//! object (the one `sys.modules` holds under its name) or the dotted name of a module in
//! `sys.modules`. A name that is not imported is refused there: it is a typo or a missing
//! import, and accepted it would pickle nothing by value (only imported modules' objects meet
//! the decision by name), so the payload would fail on a worker that lacks the module instead
//! of the call failing here.

use std::cell::RefCell;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyModule, PySet, PyString};

use crate::modules::sys_modules;

thread_local! {
    /// The names listed by the dump running on this thread, if it has a list. A `set` (not a
    /// frozenset) so the decision searches it as it searches the registries; no Python code
    /// ever sees this object, so nothing can change it.
    static LIST: RefCell<Option<Py<PySet>>> = const { RefCell::new(None) };
}

/// The names listed by the dump running on this thread (None outside a dump, or for a dump
/// without `by_value=`).
pub fn current(py: Python<'_>) -> Option<Bound<'_, PySet>> {
    LIST.try_with(|list| list.borrow().as_ref().map(|set| set.bind(py).clone()))
        .ok()
        .flatten()
}

/// The list of the enclosing dump, given back when the dump that set a new one ends.
pub struct Scope(Option<Py<PySet>>);

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.0.take();
        // The list being left is dropped after the thread-local is released: dropping it
        // frees Python objects, and nothing may run while the cell is borrowed.
        let left = LIST.try_with(|list| list.replace(previous));
        drop(left);
    }
}

/// Run the rest of a dump with `list` (None: no list). A nested dump (user code calling
/// `dumps` from a reducer) sets its own, even none, and gives the outer one back when it ends.
pub fn enter(list: Option<Py<PySet>>) -> Scope {
    Scope(LIST.try_with(|l| l.replace(list)).ok().flatten())
}

fn type_name(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(obj.get_type().name()?.to_string())
}

/// `by_value=` as given, checked and normalised to a set of module names: None for None or an
/// empty list (so a dump without a list costs the decision nothing).
///
/// * a str: the name of a module in `sys.modules`, else ValueError (it must be imported);
/// * a module object: the one `sys.modules` holds under its `__name__`, else ValueError with
///   `register_pickle_by_value`'s message;
/// * anything else: TypeError. A str, bytes or module given in place of the list is refused
///   too: iterating it would not mean what the caller meant.
pub fn resolve<'py>(
    py: Python<'py>,
    by_value: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PySet>>> {
    let Some(entries) = by_value.filter(|b| !b.is_none()) else {
        return Ok(None);
    };
    if entries.is_instance_of::<PyString>()
        || entries.is_instance_of::<PyBytes>()
        || entries.is_instance_of::<PyByteArray>()
        || entries.is_instance_of::<PyModule>()
    {
        return Err(PyTypeError::new_err(format!(
            "by_value must be a list of modules or module names, not a single {}: \
             write by_value=[{}]",
            type_name(entries)?,
            entries.repr()?
        )));
    }
    let iter = entries.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "by_value must be a list of modules or module names, not {}",
            type_name(entries).unwrap_or_default()
        ))
    })?;
    let names = PySet::empty(py)?;
    let modules = sys_modules(py)?;
    for entry in iter {
        let entry = entry?;
        if let Ok(text) = entry.cast::<PyString>() {
            // An exact str of the same text (a subclass could hash or compare otherwise).
            let name = super::copy_str(text)?;
            let imported = modules
                .get_item(&name)?
                .is_some_and(|module| !module.is_none());
            if !imported {
                return Err(PyValueError::new_err(format!(
                    "by_value names module {}, which is not imported: import it before the \
                     call (by_value lists modules found in sys.modules)",
                    name.repr()?
                )));
            }
            names.add(name)?;
        } else if entry.is_instance_of::<PyModule>() {
            let name = entry.getattr(pyo3::intern!(py, "__name__"))?;
            let registered = match name.cast::<PyString>() {
                Ok(text) => modules.get_item(text)?.is_some_and(|m| m.is(&entry)),
                Err(_) => false,
            };
            if !registered {
                return Err(PyValueError::new_err(format!(
                    "{} was not imported correctly, have you used an `import` statement to \
                     access it?",
                    entry.repr()?
                )));
            }
            names.add(super::copy_str(name.cast::<PyString>()?)?)?;
        } else {
            return Err(PyTypeError::new_err(format!(
                "by_value entries must be modules or module names (str), got {}",
                type_name(&entry)?
            )));
        }
    }
    Ok(if names.is_empty() { None } else { Some(names) })
}
