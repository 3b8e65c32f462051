//! Errors: the exception types `pickle` raises, plus the path from the root object to the one
//! that failed.
//!
//! A failing `save` returns a [`SaveError`]; each enclosing `save` pushes the step it took
//! (list index, dict key, reduce argument, ...) while the error unwinds, so a successful dump
//! never pays for the path. At the top, [`finish_error`] attaches the path as an exception note
//! (`when pickling obj['jobs'][3].handler.lock`) and applies cloudpickle's conversion of
//! `RecursionError` into `PicklingError`.

use std::fmt::Write as _;

use pyo3::exceptions::{PyMemoryError, PyRecursionError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::known;
use crate::writer::OutOfMemory;

/// One step from a container (or reduced object) to the object inside it.
pub enum PathSegment {
    /// `.name`: an attribute (the direct by-value path names a function's parts this way).
    Attr(&'static str),
    /// Item `i` of a list or tuple, or of a reduce's listitems.
    Item(usize),
    /// The value stored under a dict key (or a reduce's dictitems).
    Value(Py<PyAny>),
    /// A dict key itself.
    Key(Py<PyAny>),
    /// The `i`-th element met while iterating a set or frozenset.
    SetItem(usize),
    /// The callable of a reduce value.
    ReduceCallable,
    /// The argument tuple of a reduce value.
    ReduceArgs,
    /// The class an object is created from (NEWOBJ / NEWOBJ_EX).
    Class,
    /// The state of a reduce value (what BUILD or the state setter receives).
    State,
    /// The persistent id returned by `persistent_id`.
    PersistentId,
    /// A function pickled by value: the steps inside it read as its attributes.
    Function,
    /// A cell: its state is its contents.
    Cell,
}

struct Inner {
    err: PyErr,
    /// Innermost step first.
    path: Vec<PathSegment>,
}

/// An error on its way out of `save`, collecting the path as it goes.
pub struct SaveError(Box<Inner>);

pub type SaveResult<T = ()> = Result<T, SaveError>;

impl From<PyErr> for SaveError {
    #[cold]
    fn from(err: PyErr) -> Self {
        SaveError(Box::new(Inner {
            err,
            path: Vec::new(),
        }))
    }
}

impl From<pyo3::CastError<'_, '_>> for SaveError {
    #[cold]
    fn from(err: pyo3::CastError<'_, '_>) -> Self {
        PyErr::from(err).into()
    }
}

impl From<pyo3::CastIntoError<'_>> for SaveError {
    #[cold]
    fn from(err: pyo3::CastIntoError<'_>) -> Self {
        PyErr::from(err).into()
    }
}

impl From<OutOfMemory> for SaveError {
    #[cold]
    fn from(_: OutOfMemory) -> Self {
        PyMemoryError::new_err("out of memory while pickling").into()
    }
}

impl SaveError {
    /// Record that the failure happened inside `segment` of the enclosing object.
    #[cold]
    #[must_use]
    pub fn within(mut self, segment: PathSegment) -> Self {
        self.0.path.push(segment);
        self
    }
}

/// Extension for results: `save(child).at(|| PathSegment::Item(i))`.
pub trait AtPath<T> {
    fn at(self, segment: impl FnOnce() -> PathSegment) -> SaveResult<T>;
}

impl<T> AtPath<T> for SaveResult<T> {
    #[inline]
    fn at(self, segment: impl FnOnce() -> PathSegment) -> SaveResult<T> {
        self.map_err(|e| e.within(segment()))
    }
}

/// `pickle.PicklingError(msg)`.
#[cold]
pub fn pickling_error(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    match known::get(py) {
        Ok(lk) => PyErr::from_type(lk.pickling_error.bind(py).clone(), msg.into()),
        Err(e) => e,
    }
}

fn is_identifier(py: Python<'_>, key: &Bound<'_, PyAny>) -> bool {
    key.cast::<PyString>()
        .ok()
        .and_then(|s| s.call_method0(pyo3::intern!(py, "isidentifier")).ok())
        .and_then(|r| r.extract::<bool>().ok())
        .unwrap_or(false)
}

fn short_repr(obj: &Bound<'_, PyAny>) -> String {
    let text = obj.repr().map_or_else(
        |_| {
            format!(
                "<{} object>",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )
        },
        |r| r.to_string(),
    );
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Render the path, outermost step first, as a Python-like expression rooted at `obj`.
/// A state dict's entries read as attributes (`.lock`), since that is what they become.
pub fn format_path(py: Python<'_>, path: &[PathSegment], proto: u8) -> String {
    let steps: Vec<&PathSegment> = path.iter().rev().collect();
    format_steps(py, &steps, proto)
}

/// [`format_path`] for steps given outermost first (the order `explain` keeps them in).
pub fn format_steps(py: Python<'_>, steps: &[&PathSegment], proto: u8) -> String {
    let mut text = String::from("obj");
    let mut i = 0;
    while i < steps.len() {
        match steps[i] {
            PathSegment::Function => {
                // Inside a by-value function's reduce value (see by_value/function.rs): name the
                // function attribute the step stands for.
                let (rendered, consumed) = function_step(py, &steps[i + 1..]);
                text.push_str(&rendered);
                i += 1 + consumed;
                continue;
            }
            PathSegment::Cell => {
                if matches!(steps.get(i + 1), Some(PathSegment::State)) {
                    text.push_str(".cell_contents");
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            PathSegment::State => {
                // state -> dict value, or state -> (dict, slots)[n] -> value: show `.name`.
                let next = steps.get(i + 1);
                let after = steps.get(i + 2);
                let attr_key = match (next, after) {
                    (Some(PathSegment::Value(k)), _) => Some((k, 2)),
                    (Some(PathSegment::Item(0 | 1)), Some(PathSegment::Value(k))) => Some((k, 3)),
                    _ => None,
                };
                if let Some((key, consumed)) = attr_key {
                    let key = key.bind(py);
                    if is_identifier(py, key) {
                        text.push('.');
                        text.push_str(&key.to_string());
                    } else {
                        let _ = write!(text, ".__dict__[{}]", short_repr(key));
                    }
                    i += consumed;
                    continue;
                }
                let _ = write!(text, ".__reduce_ex__({proto})[2]");
            }
            PathSegment::Attr(name) => {
                text.push('.');
                text.push_str(name);
            }
            PathSegment::Item(n) => {
                let _ = write!(text, "[{n}]");
            }
            PathSegment::Value(k) => {
                let _ = write!(text, "[{}]", short_repr(k.bind(py)));
            }
            PathSegment::Key(k) => {
                let _ = write!(text, " (the key {})", short_repr(k.bind(py)));
            }
            PathSegment::SetItem(n) => {
                let _ = write!(text, " (set element #{n})");
            }
            PathSegment::ReduceCallable => {
                let _ = write!(text, ".__reduce_ex__({proto})[0]");
            }
            PathSegment::ReduceArgs => {
                let _ = write!(text, ".__reduce_ex__({proto})[1]");
            }
            PathSegment::Class => text.push_str(".__class__"),
            PathSegment::PersistentId => text.push_str(" (its persistent_id)"),
        }
        i += 1;
    }
    text
}

/// The attribute a step into a by-value function's reduce value stands for, and how many
/// steps it covers: args `(code, globals, name, defaults, closure)`, state `(dict, slotstate)`.
fn function_step(py: Python<'_>, steps: &[&PathSegment]) -> (String, usize) {
    match steps {
        [PathSegment::ReduceArgs, PathSegment::Item(0), ..] => (".__code__".into(), 2),
        [PathSegment::ReduceArgs, PathSegment::Item(1), ..] => (".__globals__".into(), 2),
        [PathSegment::ReduceArgs, PathSegment::Item(4), PathSegment::Item(n), ..] => {
            (format!(".__closure__[{n}]"), 3)
        }
        [PathSegment::State, PathSegment::Item(1), PathSegment::Value(k), ..] => {
            let key = k.bind(py).to_string();
            (format!(".{key}"), 3)
        }
        [PathSegment::State, PathSegment::Item(0), PathSegment::Value(k), ..] => {
            (format!(".__dict__[{}]", short_repr(k.bind(py))), 3)
        }
        _ => (String::new(), 0),
    }
}

/// Longest path rendered in a note; deeper failures show both ends.
const MAX_PATH_STEPS: usize = 40;

fn add_note(py: Python<'_>, err: &PyErr, note: String) {
    let value = err.value(py);
    // 3.11+: BaseException.add_note. 3.9/3.10: the same attribute, set by hand.
    if value
        .hasattr(pyo3::intern!(py, "add_note"))
        .unwrap_or(false)
    {
        let _ = value.call_method1(pyo3::intern!(py, "add_note"), (note,));
        return;
    }
    let notes = if let Ok(existing) = value.getattr(pyo3::intern!(py, "__notes__")) {
        existing
    } else {
        let list = pyo3::types::PyList::empty(py).into_any();
        if value
            .setattr(pyo3::intern!(py, "__notes__"), &list)
            .is_err()
        {
            return;
        }
        list
    };
    let _ = notes.call_method1(pyo3::intern!(py, "append"), (note,));
}

/// Turn a failed dump's error into the exception the caller sees.
pub fn finish_error(py: Python<'_>, error: SaveError, proto: u8) -> PyErr {
    let Inner { err, path } = *error.0;
    if err.is_instance_of::<PyRecursionError>(py) {
        // cloudpickle's contract: deep recursion is a PicklingError, caused by the RecursionError.
        let converted = pickling_error(
            py,
            "Could not pickle object as excessively deep recursion required.",
        );
        converted.set_cause(py, Some(err));
        return converted;
    }
    if !path.is_empty() {
        let note = if path.len() > MAX_PATH_STEPS {
            let head = format_path(py, &path[path.len() - MAX_PATH_STEPS / 2..], proto);
            let tail = format_path(py, &path[..MAX_PATH_STEPS / 2], proto);
            format!(
                "when pickling {head} ... ({} steps) ... {}",
                path.len() - MAX_PATH_STEPS,
                tail.trim_start_matches("obj")
            )
        } else {
            format!("when pickling {}", format_path(py, &path, proto))
        };
        add_note(py, &err, note);
    }
    err
}
