//! Class tracking (cloudpickle's `_DYNAMIC_CLASS_TRACKER_*`), shared by the dump side
//! (`by_value/`, which gives each class its id) and the load side (`rebuild/`, which finds
//! the class an id stands for): every class, enum or TypeVar pickled by value gets a random
//! id; loading the same id twice in one process gives the first object back, so a class sent
//! to a worker and back is the original class, and two payloads with the same class share it.
//! The maps hold their classes weakly. What a class received again takes is the reload
//! policy, in `reload`.
//!
//! The cloudpickle copies of the process (cloudpickle itself, and the copies PySpark, Ray,
//! joblib, ... vendor) keep trackers of their own, and workers often answer with one of them.
//! `skypickle._bridge` (Python) keeps the trackers in agreement: every (class, id) pair this
//! tracker learns is registered in each copy that is imported, or is imported later; an id a
//! copy already gave a class is taken rather than a new one invented; and an id this tracker
//! does not know is looked up in the copies before a class is built. The bridge is called only
//! when this tracker learns something (once per class), never with the lock held.

pub mod reload;

use std::cell::Cell;
use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;
use pyo3::sync::{MutexExt, PyOnceLock};
use pyo3::types::{PyDict, PyList, PyTuple};

struct Maps {
    by_class: Py<PyAny>,
    by_id: Py<PyAny>,
    /// Classes whose tracker id was made here, by pickling them: this process defined them
    /// (a `weakref.WeakSet`).
    defined_here: Py<PyAny>,
    /// Class -> fingerprints of the class dict its last payload carried
    /// (a `weakref.WeakKeyDictionary`; the fingerprints never refer to the class).
    last_state: Py<PyAny>,
    /// Deterministic mode: class -> the id derived from its definition when this process
    /// first pickled it in that mode (a `weakref.WeakKeyDictionary`; see `by_value::identity`).
    content_ids: Py<PyAny>,
    /// `skypickle._bridge.adopt_id(obj)`: `(id, defined_here)` from a cloudpickle copy that
    /// tracks `obj`, or None.
    adopt_id: Py<PyAny>,
    /// `skypickle._bridge.adopt_class(id)`: `(obj, defined_here)` from a cloudpickle copy
    /// that tracks `id`, or None.
    adopt_class: Py<PyAny>,
    /// `skypickle._bridge.share(obj, id)`: register the pair in every imported copy.
    share: Py<PyAny>,
}

static MAPS: PyOnceLock<Maps> = PyOnceLock::new();
/// Guards the maps together. Taken with `lock_py_attached`, which lets go of the interpreter
/// while it waits, so threads blocked here cannot deadlock with the holder.
static LOCK: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread holds `LOCK`. The maps' operations hash classes, which runs a
    /// metaclass's `__hash__`, and allocate, which may run the garbage collector and so any
    /// `__del__`: user code that may pickle or load a class on this same thread. Waiting for
    /// the lock there would wait for ourselves forever; the nested operation goes ahead
    /// instead (each map operation is atomic under the interpreter, and the outer one
    /// tolerates an entry made meanwhile).
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// The tracker lock for the duration of a scope (nothing, when this thread already has it).
struct Held(Option<MutexGuard<'static, ()>>);

impl Drop for Held {
    fn drop(&mut self) {
        if self.0.is_some() {
            HOLDING.with(|holding| holding.set(false));
        }
    }
}

fn hold(py: Python<'_>) -> Held {
    if HOLDING.with(Cell::get) {
        return Held(None);
    }
    let guard = LOCK
        .lock_py_attached(py)
        .unwrap_or_else(PoisonError::into_inner);
    HOLDING.with(|holding| holding.set(true));
    Held(Some(guard))
}

fn maps(py: Python<'_>) -> PyResult<&'static Maps> {
    MAPS.get_or_try_init(py, || {
        let weakref = py.import("weakref")?;
        // Imported on first use, not at module init: the package is still importing then.
        let bridge = py.import("skypickle._bridge")?;
        Ok(Maps {
            by_class: weakref.getattr("WeakKeyDictionary")?.call0()?.unbind(),
            by_id: weakref.getattr("WeakValueDictionary")?.call0()?.unbind(),
            defined_here: weakref.getattr("WeakSet")?.call0()?.unbind(),
            last_state: weakref.getattr("WeakKeyDictionary")?.call0()?.unbind(),
            content_ids: weakref.getattr("WeakKeyDictionary")?.call0()?.unbind(),
            adopt_id: bridge.getattr("adopt_id")?.unbind(),
            adopt_class: bridge.getattr("adopt_class")?.unbind(),
            share: bridge.getattr("share")?.unbind(),
        })
    })
}

/// The id this tracker has for `obj`, if any. The caller holds the lock.
fn own_id<'py>(maps: &Maps, obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    weak_key_get(maps.by_class.bind(obj.py()), obj)
}

/// `weak_map.get(obj)` for a `WeakKeyDictionary`.
fn weak_key_get<'py>(
    by_class: &Bound<'py, PyAny>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    // What `WeakKeyDictionary.get` does, without its Python frame: look the class up by a
    // weak reference to it in the underlying dict.
    let data = by_class.getattr(pyo3::intern!(py, "data"))?;
    if let Ok(data) = data.cast::<PyDict>() {
        let key = crate::ffi::weakref_new(obj)?;
        return data.get_item(&key);
    }
    Ok(by_class
        .call_method1("get", (obj,))
        .ok()
        .filter(|v| !v.is_none()))
}

/// The tracker id of `obj`: the one this tracker has, else the one a cloudpickle copy gave
/// it, else a new one (32 hex digits). A new pair is registered in the copies.
pub fn get_or_create_tracker_id<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let maps = maps(py)?;
    {
        let _held = hold(py);
        if let Some(id) = own_id(maps, obj)? {
            return Ok(id);
        }
    }
    // New to this tracker. Outside the lock: the bridge runs Python code (the copies' locks,
    // their weak maps hashing the class).
    let adopted = maps.adopt_id.bind(py).call1((obj,))?;
    let (id, defined) = if adopted.is_none() {
        let id = py.import("uuid")?.call_method0("uuid4")?.getattr("hex")?;
        (id, true)
    } else {
        adopted.extract::<(Bound<'py, PyAny>, bool)>()?
    };
    {
        let _held = hold(py);
        // Another thread may have tracked it meanwhile: its id stands.
        if let Some(id) = own_id(maps, obj)? {
            return Ok(id);
        }
        maps.by_class.bind(py).set_item(obj, &id)?;
        maps.by_id.bind(py).set_item(&id, obj)?;
        if defined {
            maps.defined_here
                .bind(py)
                .call_method1(pyo3::intern!(py, "add"), (obj,))?;
        }
    }
    maps.share.bind(py).call1((obj, &id))?;
    Ok(id)
}

/// Deterministic mode: `obj` travels under `id`, derived from its content
/// (`by_value::identity`). Make the id lead back to `obj` here (a worker that sends the class
/// back names it by this id), also when `obj` already has a random id from the normal mode: an
/// object may be known under several ids. When another class of identical definition had the
/// id (an earlier run of the same notebook cell), the id now leads to `obj`, the one this
/// process is sending.
pub fn track_content_id<'py>(obj: &Bound<'py, PyAny>, id: &Bound<'py, PyAny>) -> PyResult<()> {
    let py = obj.py();
    let maps = maps(py)?;
    {
        let _held = hold(py);
        maps.content_ids.bind(py).set_item(obj, id)?;
        let by_id = maps.by_id.bind(py);
        // What `WeakValueDictionary.get` does, without its Python frame.
        let data = by_id.getattr(pyo3::intern!(py, "data"))?;
        if let Ok(data) = data.cast::<PyDict>() {
            if let Some(reference) = data.get_item(id)? {
                if reference.call0()?.is(obj) {
                    return Ok(());
                }
            }
        }
        by_id.set_item(id, obj)?;
        if own_id(maps, obj)?.is_none() {
            maps.by_class.bind(py).set_item(obj, id)?;
            maps.defined_here
                .bind(py)
                .call_method1(pyo3::intern!(py, "add"), (obj,))?;
        }
    }
    maps.share.bind(py).call1((obj, id))?;
    Ok(())
}

/// Deterministic mode: the id `obj` got from its definition when this process first pickled
/// it in that mode, if it did.
pub fn content_id_of<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    let maps = maps(py)?;
    let _held = hold(py);
    weak_key_get(maps.content_ids.bind(py), obj)
}

/// Whether this process defined `cls` (it pickled the class before any payload brought it):
/// loading its own class back must not replace its namespace with copies.
pub fn defined_here(cls: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = cls.py();
    let maps = maps(py)?;
    maps.defined_here.bind(py).contains(cls)
}

/// Track `obj` under `tracker_id` unless something already is; return what is.
fn track<'py>(
    maps: &Maps,
    tracker_id: &Bound<'py, PyAny>,
    obj: &Bound<'py, PyAny>,
    defined: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let _held = hold(py);
    let known = maps
        .by_id
        .bind(py)
        .call_method1(pyo3::intern!(py, "setdefault"), (tracker_id, obj))?;
    maps.by_class.bind(py).set_item(&known, tracker_id)?;
    if defined && known.is(obj) {
        maps.defined_here
            .bind(py)
            .call_method1(pyo3::intern!(py, "add"), (obj,))?;
    }
    Ok(known)
}

/// On load: the class already known under `tracker_id`, or `obj` (now tracked).
pub fn lookup_class_or_track<'py>(
    tracker_id: &Bound<'py, PyAny>,
    obj: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if tracker_id.is_none() {
        return Ok(obj);
    }
    if let Some(known) = lookup_class(tracker_id)? {
        return Ok(known);
    }
    let py = obj.py();
    let maps = maps(py)?;
    let known = track(maps, tracker_id, &obj, false)?;
    maps.share.bind(py).call1((&known, tracker_id))?;
    Ok(known)
}

/// On load, before building anything: the class known under `tracker_id`, here or in a
/// cloudpickle copy of this process (a class loaded from a cloudpickle payload, received again
/// from skypickle), if any. Building a skeleton only to throw it away would run its bases'
/// `__init_subclass__` on a class nobody will see.
pub fn lookup_class<'py>(tracker_id: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    if tracker_id.is_none() {
        return Ok(None);
    }
    let py = tracker_id.py();
    let maps = maps(py)?;
    {
        let _held = hold(py);
        let known = maps
            .by_id
            .bind(py)
            .call_method1(pyo3::intern!(py, "get"), (tracker_id,))?;
        if !known.is_none() {
            return Ok(Some(known));
        }
    }
    let adopted = maps.adopt_class.bind(py).call1((tracker_id,))?;
    if adopted.is_none() {
        return Ok(None);
    }
    let (obj, defined) = adopted.extract::<(Bound<'py, PyAny>, bool)>()?;
    let known = track(maps, tracker_id, &obj, defined)?;
    maps.share.bind(py).call1((&known, tracker_id))?;
    Ok(Some(known))
}

/// `_tracked_classes()`: the (object, id) pairs this tracker holds, for the bridge to give to
/// a cloudpickle copy that has just been imported.
#[pyfunction]
#[pyo3(name = "_tracked_classes")]
pub fn tracked_classes_py(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let maps = maps(py)?;
    // A copy of the weak-value map's underlying dict (id -> weak reference), taken under the
    // lock in one C call; the references are called afterwards, outside it.
    let snapshot = {
        let _held = hold(py);
        maps.by_id
            .bind(py)
            .getattr(pyo3::intern!(py, "data"))?
            .call_method0(pyo3::intern!(py, "copy"))?
            .cast_into::<PyDict>()?
    };
    let pairs = PyList::empty(py);
    // `snapshot` is private to this function: nothing else can change its size.
    for (id, reference) in snapshot.iter() {
        let obj = reference.call0()?;
        if !obj.is_none() {
            pairs.append(PyTuple::new(py, [obj, id])?)?;
        }
    }
    Ok(pairs)
}

/// Record `state` (fingerprints of a class dict) as what `cls` last received; return the
/// previous record, if any.
pub fn swap_last_state<'py>(
    cls: &Bound<'py, PyAny>,
    state: &Bound<'py, pyo3::types::PyDict>,
) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
    let py = cls.py();
    let maps = maps(py)?;
    let _held = hold(py);
    let last = maps.last_state.bind(py);
    let previous = last.call_method1(pyo3::intern!(py, "get"), (cls,))?;
    last.set_item(cls, state)?;
    Ok(previous.cast_into::<pyo3::types::PyDict>().ok())
}
