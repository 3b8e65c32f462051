//! Deterministic mode (`dumps(..., deterministic=True)`, `fingerprint`): the same bytes for the
//! same object graph built by the same source, in any process, whatever `PYTHONHASHSEED`.
//!
//! What would otherwise vary between processes, and what this mode does instead:
//!
//! * **Class tracker ids** are random (uuid4) in the normal mode. Here they are derived from the
//!   class's content (`by_value::identity`).
//! * **Set and frozenset order** follows hashes, and str hashes are salted per process. Here
//!   the items are written sorted by their own deterministic encoding (`save/canonical.rs`).
//! * **The memo** is keyed by object identity, so two equal strings written twice are one memo
//!   entry or two depending on whether the sender happened to share them (interning, small
//!   bytes singletons). Here str and bytes are memoised by content: the first occurrence of a
//!   text is written and memoised, every later equal one is a memo GET, whatever its identity.
//!   Every other object keeps its identity memo: for mutable objects sharing is semantic (two
//!   references to one list must load as one list), and for the rest the same program builds
//!   the same sharing.
//! * **ABC registries** (`_abc_impl`) come from a set of weak references: sorted by name here.
//! * **Source locations** (`co_filename`, `co_firstlineno`, a class's `__firstlineno__`, a
//!   namespace's `__file__`) are kept, since tracebacks need them; with `normalize_paths` file
//!   names are cut to their base name and first line numbers set to 1, so the same code at
//!   another path, or moved within its file, gives the same bytes.
//!
//! The mode of the dump running on this thread is kept in a thread-local, set for the duration
//! of each dump: the reducers that make tracker ids or read code are also called from Python
//! (`Pickler.reducer_override`, the dispatch table) and have no dumper to ask.

use std::cell::Cell;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

/// How a dump writes what would otherwise vary between processes.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Mode {
    pub deterministic: bool,
    /// Base names for source files, 1 for first line numbers (deterministic mode only).
    pub normalize_paths: bool,
}

thread_local! {
    static MODE: Cell<Mode> = const {
        Cell::new(Mode { deterministic: false, normalize_paths: false })
    };
}

/// The mode of the dump running on this thread (the normal mode outside any dump).
pub fn current() -> Mode {
    MODE.try_with(Cell::get).unwrap_or_default()
}

/// The previous mode, restored when the dump that set a new one ends.
pub struct Scope(Mode);

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.0;
        let _ = MODE.try_with(|mode| mode.set(previous));
    }
}

/// Run the rest of a dump in `mode`. A nested dump (user code calling `dumps` from a reducer)
/// sets its own and gives the outer one back when it ends.
pub fn enter(mode: Mode) -> Scope {
    Scope(MODE.try_with(|m| m.replace(mode)).unwrap_or_default())
}

/// The last component of a path, for either separator (`/work/a/b.py` -> `b.py`). Names that
/// are not paths (`<string>`, `<ipython-input-3-...>`) are their own base name.
pub fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// `value` with its path cut to the base name when it is a str (else unchanged).
pub fn normalized_path<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    let Ok(text) = value.cast::<PyString>() else {
        return Ok(value.clone());
    };
    let Ok(path) = text.to_cow() else {
        return Ok(value.clone());
    };
    Ok(PyString::new(py, base_name(&path)).into_any())
}

/// A package's `__path__` with each entry cut to its base name (a list of paths).
pub fn normalized_path_list<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let Ok(list) = value.cast::<PyList>() else {
        return Ok(value.clone());
    };
    let entries = list
        .iter()
        .map(|entry| normalized_path(&entry))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(value.py(), entries)?.into_any())
}

#[cfg(test)]
mod tests {
    use super::base_name;

    #[test]
    fn base_names() {
        assert_eq!(base_name("/work/a/b.py"), "b.py");
        assert_eq!(base_name("C:\\x\\y.py"), "y.py");
        assert_eq!(base_name("<string>"), "<string>");
        assert_eq!(base_name("plain.py"), "plain.py");
    }
}
