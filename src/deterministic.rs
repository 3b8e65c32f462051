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
//!   So are tuples and frozensets made only of atoms (None, bool, int, float, str, bytes,
//!   and such tuples and frozensets), whose sharing varies too: code constants the compiler
//!   shares, which a loader's code constructor copies; CPython 3.9's empty frozenset
//!   singleton. Every other object keeps its identity memo: for mutable objects sharing is
//!   semantic (two references to one list must load as one list), and for the rest the same
//!   program builds the same sharing.
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
use pyo3::types::{PyBytes, PyFloat, PyFrozenSet, PyInt, PyList, PyString, PyTuple};

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

/// How deep tuples and frozensets of atoms are keyed in place (deeper ones are not atoms).
const MAX_ATOM_DEPTH: usize = 16;

/// The content hash of a value deterministic mode memoises by content besides str and bytes:
/// a non-empty tuple or a frozenset made of atoms (None if `value` is not one). Computed
/// without allocating; equal contents (see [`atoms_equal`]) hash equal, frozensets whatever
/// their iteration order.
pub fn atoms_content_hash(value: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
    let content_kind = match value.cast_exact::<PyTuple>() {
        Ok(tuple) => !tuple.is_empty(),
        Err(_) => value.is_exact_instance_of::<PyFrozenSet>(),
    };
    if !content_kind {
        return Ok(None);
    }
    let mut budget = MAX_CONTENT_ITEMS;
    atoms_hash(value, 0, &mut budget)
}

/// Tuples and frozensets of atoms with more than this many items in all are memoised by
/// identity only: comparing them by content would cost more than it is worth.
const MAX_CONTENT_ITEMS: usize = 4096;

fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

/// [`atoms_content_hash`]'s walk: None as soon as something is not an atom.
fn atoms_hash(value: &Bound<'_, PyAny>, depth: usize, budget: &mut usize) -> PyResult<Option<u64>> {
    use std::hash::Hasher;
    if *budget == 0 {
        return Ok(None);
    }
    *budget -= 1;
    let bytes_hash = |tag: u64, data: &[u8]| {
        let mut h = crate::fxhash::FxHasher::default();
        h.write(data);
        mix(mix(tag, data.len() as u64), h.finish())
    };
    Ok(Some(if value.is_none() {
        1
    } else if let Ok(b) = value.cast_exact::<pyo3::types::PyBool>() {
        mix(2, u64::from(b.is_true()))
    } else if let Ok(int) = value.cast_exact::<PyInt>() {
        match crate::ffi::int_as_i64(int)? {
            Some(small) => mix(3, small as u64),
            None => bytes_hash(9, &crate::ffi::int_to_signed_le_bytes(int)?),
        }
    } else if let Ok(f) = value.cast_exact::<PyFloat>() {
        mix(4, f.value().to_bits())
    } else if let Ok(s) = value.cast_exact::<PyString>() {
        let Some(utf8) = crate::ffi::str_utf8(s) else {
            return Ok(None);
        };
        bytes_hash(5, utf8)
    } else if let Ok(b) = value.cast_exact::<PyBytes>() {
        bytes_hash(6, b.as_bytes())
    } else if depth >= MAX_ATOM_DEPTH {
        return Ok(None);
    } else if let Ok(t) = value.cast_exact::<PyTuple>() {
        let mut h = mix(7, t.len() as u64);
        for item in t.iter() {
            let Some(item) = atoms_hash(&item, depth + 1, budget)? else {
                return Ok(None);
            };
            h = mix(h, item);
        }
        h
    } else if let Ok(s) = value.cast_exact::<PyFrozenSet>() {
        // Order-independent: the items' hashes added up, each mixed once more.
        let mut sum: u64 = 0;
        for item in crate::ffi::set_entries(s) {
            let Some(item) = atoms_hash(&item, depth + 1, budget)? else {
                return Ok(None);
            };
            sum = sum.wrapping_add(mix(item, 0x9e37_79b9));
        }
        mix(mix(8, s.len() as u64), sum)
    } else {
        return Ok(None);
    }))
}

/// Whether two atoms-only values have the same content: the same exact types all the way
/// down and equal values (floats by their bits, so `0.0` and `-0.0` differ and a NaN equals
/// itself; `1`, `1.0` and `True` differ). Frozensets by their items' content in any order.
pub fn atoms_equal(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> bool {
    if a.is(b) {
        return true;
    }
    if !a.get_type().is(b.get_type()) {
        return false;
    }
    if let (Ok(x), Ok(y)) = (a.cast_exact::<PyInt>(), b.cast_exact::<PyInt>()) {
        return x.as_any().eq(y.as_any()).unwrap_or(false);
    }
    if let (Ok(x), Ok(y)) = (a.cast_exact::<PyFloat>(), b.cast_exact::<PyFloat>()) {
        return x.value().to_bits() == y.value().to_bits();
    }
    if let (Ok(x), Ok(y)) = (a.cast_exact::<PyString>(), b.cast_exact::<PyString>()) {
        return match (crate::ffi::str_utf8(x), crate::ffi::str_utf8(y)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        };
    }
    if let (Ok(x), Ok(y)) = (a.cast_exact::<PyBytes>(), b.cast_exact::<PyBytes>()) {
        return x.as_bytes() == y.as_bytes();
    }
    if let (Ok(x), Ok(y)) = (a.cast_exact::<PyTuple>(), b.cast_exact::<PyTuple>()) {
        return x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| atoms_equal(&p, &q));
    }
    if let (Ok(x), Ok(y)) = (a.cast_exact::<PyFrozenSet>(), b.cast_exact::<PyFrozenSet>()) {
        if x.len() != y.len() {
            return false;
        }
        // Few and small in practice (code constants): a quadratic match is fine; each item of
        // one must have a content-equal item in the other (the items of a set are distinct).
        let others: Vec<_> = crate::ffi::set_entries(y).collect();
        return crate::ffi::set_entries(x).all(|p| others.iter().any(|q| atoms_equal(&p, q)));
    }
    // None, bool: singletons, same type means same value only for None; bools compare here.
    a.eq(b).unwrap_or(false)
}

/// Whether a payload written in deterministic mode makes `a` and `b` one object on load:
/// they are one object here, or both are memoised by content (str, bytes, tuples and
/// frozensets of atoms) and have the same content. A class dict entry equal in that sense to
/// its base's is inherited by the loaded copy (`extract_class_dict`), so it is left out here
/// too: otherwise pickling that copy again would not give the original bytes.
pub fn same_on_load(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<bool> {
    if a.is(b) {
        return Ok(true);
    }
    if let (Ok(x), Ok(y)) = (a.cast_exact::<PyString>(), b.cast_exact::<PyString>()) {
        return Ok(match (crate::ffi::str_utf8(x), crate::ffi::str_utf8(y)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        });
    }
    if let (Ok(x), Ok(y)) = (a.cast_exact::<PyBytes>(), b.cast_exact::<PyBytes>()) {
        return Ok(x.as_bytes() == y.as_bytes());
    }
    Ok(match (atoms_content_hash(a)?, atoms_content_hash(b)?) {
        (Some(x), Some(y)) => x == y && atoms_equal(a, b),
        _ => false,
    })
}

/// Append the key of an atom (or a tuple or frozenset of atoms) to `key`: a tag, the length
/// and the content, built without Python calls. False when `value` is not one (a set item is
/// then keyed by a sub-dump, see `save/canonical.rs`; a tuple memoised by identity).
pub fn atom_key(value: &Bound<'_, PyAny>, key: &mut Vec<u8>, depth: usize) -> PyResult<bool> {
    let field = |key: &mut Vec<u8>, tag: u8, data: &[u8]| {
        key.push(tag);
        key.extend_from_slice(&(data.len() as u64).to_be_bytes());
        key.extend_from_slice(data);
    };
    if value.is_none() {
        field(key, 0, b"");
    } else if let Ok(b) = value.cast_exact::<pyo3::types::PyBool>() {
        field(key, 1, &[u8::from(b.is_true())]);
    } else if let Ok(int) = value.cast_exact::<PyInt>() {
        // Every int that fits 64 bits is keyed by those (equal ints, equal keys); larger ones
        // by their bytes, under a tag of their own.
        match crate::ffi::int_as_i64(int)? {
            Some(small) => field(key, 2, &small.to_le_bytes()),
            None => field(key, 8, &crate::ffi::int_to_signed_le_bytes(int)?),
        }
    } else if let Ok(f) = value.cast_exact::<PyFloat>() {
        field(key, 3, &f.value().to_bits().to_be_bytes());
    } else if let Ok(s) = value.cast_exact::<PyString>() {
        let Some(utf8) = crate::ffi::str_utf8(s) else {
            return Ok(false);
        };
        field(key, 4, utf8);
    } else if let Ok(b) = value.cast_exact::<PyBytes>() {
        field(key, 5, b.as_bytes());
    } else if depth >= MAX_ATOM_DEPTH {
        return Ok(false);
    } else if let Ok(t) = value.cast_exact::<PyTuple>() {
        // Tag and length, the items written in place, then the length patched.
        key.push(6);
        let at = key.len();
        key.extend_from_slice(&[0; 8]);
        for item in t.iter() {
            if !atom_key(&item, key, depth + 1)? {
                return Ok(false);
            }
        }
        let len = (key.len() - at - 8) as u64;
        key[at..at + 8].copy_from_slice(&len.to_be_bytes());
    } else if let Ok(s) = value.cast_exact::<PyFrozenSet>() {
        let mut parts = Vec::with_capacity(s.len());
        for item in crate::ffi::set_entries(s) {
            let mut part = Vec::new();
            if !atom_key(&item, &mut part, depth + 1)? {
                return Ok(false);
            }
            parts.push(part);
        }
        parts.sort_unstable();
        field(key, 7, &parts.concat());
    } else {
        return Ok(false);
    }
    Ok(true)
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
