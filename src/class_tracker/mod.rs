//! Class tracking (cloudpickle's `_DYNAMIC_CLASS_TRACKER_*`), shared by the dump side
//! (`by_value/`, which gives each class its id) and the load side (`rebuild/`, which finds
//! the class an id stands for): every class, enum or TypeVar pickled by value gets a random
//! id; loading the same id twice in one process gives the first object back, so a class sent
//! to a worker and back is the original class, and two payloads with the same class share it.
//! The maps hold their classes weakly. What a class received again takes is the reload
//! policy, in `reload`.

pub mod reload;

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::{MutexExt, PyOnceLock};

struct Maps {
    by_class: Py<PyAny>,
    by_id: Py<PyAny>,
    /// Classes whose tracker id was made here, by pickling them: this process defined them
    /// (a `weakref.WeakSet`).
    defined_here: Py<PyAny>,
    /// Class -> fingerprints of the class dict its last payload carried
    /// (a `weakref.WeakKeyDictionary`; the fingerprints never refer to the class).
    last_state: Py<PyAny>,
}

static MAPS: PyOnceLock<Maps> = PyOnceLock::new();
/// Guards the two maps together. Taken with `lock_py_attached`, which lets go of the
/// interpreter while it waits, so threads blocked here cannot deadlock with the holder.
static LOCK: Mutex<()> = Mutex::new(());

fn maps(py: Python<'_>) -> PyResult<&'static Maps> {
    MAPS.get_or_try_init(py, || {
        let weakref = py.import("weakref")?;
        Ok(Maps {
            by_class: weakref.getattr("WeakKeyDictionary")?.call0()?.unbind(),
            by_id: weakref.getattr("WeakValueDictionary")?.call0()?.unbind(),
            defined_here: weakref.getattr("WeakSet")?.call0()?.unbind(),
            last_state: weakref.getattr("WeakKeyDictionary")?.call0()?.unbind(),
        })
    })
}

/// The tracker id of `obj`, created (32 hex digits) on first use.
pub fn get_or_create_tracker_id<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let maps = maps(py)?;
    let _guard = LOCK
        .lock_py_attached(py)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let by_class = maps.by_class.bind(py);
    // What `WeakKeyDictionary.get` does, without its Python frame: look the class up by a
    // weak reference to it in the underlying dict.
    let data = by_class.getattr(pyo3::intern!(py, "data"))?;
    if let Ok(data) = data.cast::<pyo3::types::PyDict>() {
        let key = crate::ffi::weakref_new(obj)?;
        if let Some(id) = data.get_item(&key)? {
            return Ok(id);
        }
    } else if let Some(id) = by_class
        .call_method1("get", (obj,))
        .ok()
        .filter(|v| !v.is_none())
    {
        return Ok(id);
    }
    let id = py.import("uuid")?.call_method0("uuid4")?.getattr("hex")?;
    by_class.set_item(obj, &id)?;
    maps.by_id.bind(py).set_item(&id, obj)?;
    maps.defined_here
        .bind(py)
        .call_method1(pyo3::intern!(py, "add"), (obj,))?;
    Ok(id)
}

/// Whether this process defined `cls` (it pickled the class before any payload brought it):
/// loading its own class back must not replace its namespace with copies.
pub fn defined_here(cls: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = cls.py();
    let maps = maps(py)?;
    maps.defined_here.bind(py).contains(cls)
}

/// On load: the class already known under `tracker_id`, or `obj` (now tracked).
pub fn lookup_class_or_track<'py>(
    tracker_id: &Bound<'py, PyAny>,
    obj: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if tracker_id.is_none() {
        return Ok(obj);
    }
    let py = obj.py();
    let maps = maps(py)?;
    let _guard = LOCK
        .lock_py_attached(py)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let known = maps
        .by_id
        .bind(py)
        .call_method1("setdefault", (tracker_id, &obj))?;
    maps.by_class.bind(py).set_item(&known, tracker_id)?;
    Ok(known)
}

/// On load, before building anything: the class already known under `tracker_id`, if any.
/// Building a skeleton only to throw it away would run its bases' `__init_subclass__` on a
/// class nobody will see.
pub fn lookup_class<'py>(tracker_id: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    if tracker_id.is_none() {
        return Ok(None);
    }
    let py = tracker_id.py();
    let maps = maps(py)?;
    let _guard = LOCK
        .lock_py_attached(py)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let known = maps
        .by_id
        .bind(py)
        .call_method1(pyo3::intern!(py, "get"), (tracker_id,))?;
    Ok(Some(known).filter(|k| !k.is_none()))
}

/// Record `state` (fingerprints of a class dict) as what `cls` last received; return the
/// previous record, if any.
pub fn swap_last_state<'py>(
    cls: &Bound<'py, PyAny>,
    state: &Bound<'py, pyo3::types::PyDict>,
) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
    let py = cls.py();
    let maps = maps(py)?;
    let _guard = LOCK
        .lock_py_attached(py)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let last = maps.last_state.bind(py);
    let previous = last.call_method1(pyo3::intern!(py, "get"), (cls,))?;
    last.set_item(cls, state)?;
    Ok(previous.cast_into::<pyo3::types::PyDict>().ok())
}
