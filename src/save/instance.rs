//! The fast path for instances of plain classes.
//!
//! For an instance of a class that customises none of the pickling hooks, protocol 2+
//! `object.__reduce_ex__` always returns `(copyreg.__newobj__, (cls,), state, None, None)`
//! with `state` the instance `__dict__` (or None when it is empty). Emitting that directly
//! skips the bound-method call, the reduce tuple and `copyreg`'s lookups, and writes exactly
//! the bytes the general path writes (tested differentially).
//!
//! "Plain" is decided once per class per dump, in two steps:
//! 1. statically: metaclass `type`, generic attribute lookup, no items, and no class in the MRO
//!    other than `object` defines `__slots__`, `__class__` or any reduce hook;
//! 2. dynamically: the first instance goes through the general path, and the class is plain only
//!    if that reduce value has exactly the shape above.
//!
//! Not used when the pickler has a `persistent_id`: the general path shows it the empty
//! argument tuple too.
//!
//! Per instance, the instance `__dict__` must not shadow `__reduce_ex__`, `__reduce__` or
//! `__getstate__` (attribute lookup would find those first).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use super::trace::Kind;
use super::Dumper;
use crate::errors::{PathSegment, SaveResult};
use crate::writer::opcodes::*;

/// Class-level names whose presence rules the fast path out.
fn hook_names(py: Python<'_>) -> [&Bound<'_, pyo3::types::PyString>; 7] {
    [
        pyo3::intern!(py, "__reduce_ex__"),
        pyo3::intern!(py, "__reduce__"),
        pyo3::intern!(py, "__getstate__"),
        pyo3::intern!(py, "__getnewargs__"),
        pyo3::intern!(py, "__getnewargs_ex__"),
        pyo3::intern!(py, "__slots__"),
        pyo3::intern!(py, "__class__"),
    ]
}

/// Instance-level names that would shadow object's reduce machinery.
fn shadow_names(py: Python<'_>) -> [&Bound<'_, pyo3::types::PyString>; 3] {
    [
        pyo3::intern!(py, "__reduce_ex__"),
        pyo3::intern!(py, "__reduce__"),
        pyo3::intern!(py, "__getstate__"),
    ]
}

/// How many classes a dump remembers verdicts for (beyond that: the general path).
const CACHE_LIMIT: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Plain,
    NotPlain,
}

/// Per-dump cache of class verdicts, keyed by type address. A class judged plain stays alive
/// for the dump because its instances are memoised.
#[derive(Default)]
pub struct PlainClasses {
    entries: Vec<(usize, Verdict)>,
}

impl PlainClasses {
    fn get(&self, tp: usize) -> Option<Verdict> {
        self.entries.iter().find(|(t, _)| *t == tp).map(|(_, v)| *v)
    }

    fn set(&mut self, tp: usize, verdict: Verdict) {
        if self.entries.len() < CACHE_LIMIT {
            self.entries.push((tp, verdict));
        }
    }
}

/// Step 1: the static conditions on the class.
fn statically_plain(tp: &Bound<'_, PyType>) -> PyResult<bool> {
    let py = tp.py();
    let layout = crate::ffi::type_layout(tp);
    if !layout.metatype_is_type || !layout.generic_getattr || layout.variable_size {
        return Ok(false);
    }
    let object = py.get_type::<pyo3::types::PyAny>();
    let mro = tp.getattr(pyo3::intern!(py, "__mro__"))?;
    let mro = mro.cast::<PyTuple>()?;
    for base in mro.iter() {
        if base.is(&object) {
            continue;
        }
        let base = base.cast::<PyType>()?;
        if !crate::ffi::type_layout(base).heap {
            return Ok(false);
        }
        let namespace = crate::by_value::class_parts::namespace_of(base.as_any())?;
        let namespace = namespace.cast::<PyDict>()?;
        for name in hook_names(py) {
            if namespace.get_item(name)?.is_some() {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

impl<'py> Dumper<'py> {
    /// The instance `__dict__` when `obj` may take the fast path, else `None`.
    fn plain_state(&self, obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let py = self.py;
        // Generic attribute lookup is guaranteed by the class check: the instance dict,
        // materialised if need be.
        let dict = crate::ffi::generic_dict(obj)?;
        let Ok(dict) = dict.cast_into_exact::<PyDict>() else {
            return Ok(None);
        };
        for name in shadow_names(py) {
            if dict.get_item(name)?.is_some() {
                return Ok(None);
            }
        }
        Ok(Some(dict))
    }

    /// Try the fast path for `obj`. Returns false when the general path must be taken.
    pub(super) fn save_plain_instance(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult<bool> {
        let py = self.py;
        let tp = obj.get_type();
        let key = tp.as_ptr() as usize;
        match self.plain_classes.get(key) {
            Some(Verdict::NotPlain) => return Ok(false),
            Some(Verdict::Plain) => {}
            None => {
                if !statically_plain(&tp)? {
                    self.plain_classes.set(key, Verdict::NotPlain);
                    return Ok(false);
                }
                // Step 2: this first instance takes the general path; its reduce value decides.
                let rv = obj.call_method1(pyo3::intern!(py, "__reduce_ex__"), (self.proto,))?;
                let state = self.plain_state(obj)?;
                let verdict = match (rv.cast::<PyTuple>(), &state) {
                    (Ok(t), Some(dict)) if t.len() == 5 => {
                        let expected_state_ok = if dict.is_empty() {
                            t.get_item(2)?.is_none()
                        } else {
                            t.get_item(2)?.is(dict)
                        };
                        let args_ok = t
                            .get_item(1)?
                            .cast::<PyTuple>()
                            .is_ok_and(|a| a.len() == 1 && a.get_item(0).is_ok_and(|c| c.is(&tp)));
                        if t.get_item(0)?.is(&self.lk.copyreg_newobj)
                            && args_ok
                            && expected_state_ok
                            && t.get_item(3)?.is_none()
                            && t.get_item(4)?.is_none()
                        {
                            Verdict::Plain
                        } else {
                            Verdict::NotPlain
                        }
                    }
                    _ => Verdict::NotPlain,
                };
                self.plain_classes.set(key, verdict);
                self.save_reduce_value(obj, &rv)?;
                return Ok(true);
            }
        }
        let Some(state) = self.plain_state(obj)? else {
            return Ok(false);
        };
        // What save_reduce writes for (copyreg.__newobj__, (cls,), state, None, None).
        self.save_at(tp.as_any(), || PathSegment::Class)?;
        // The general path saves the empty argument tuple with save(): an opcode boundary.
        self.opcode_boundary()?;
        self.write(&[EMPTY_TUPLE, NEWOBJ])?;
        if let Some(idx) = self.memo.get(obj) {
            self.write(&[POP])?;
            self.memo_get(idx)?;
            return Ok(true);
        }
        self.memo_put(obj)?;
        if !state.is_empty() {
            self.save_through(state.as_any(), Some(Kind::State), &[&|| PathSegment::State])?;
            self.write(&[BUILD])?;
        }
        Ok(true)
    }
}
