//! The public pickler: the `Pickler` class (subclassable from Python, like cloudpickle's) and
//! the `dumps` / `dump` functions.
//!
//! A dump reads the pickler's hooks once, at its start: `persistent_id`, a `reducer_override`
//! that differs from the base one, and `dispatch_table` when it is not the default
//! `ChainMap(Pickler.dispatch, copyreg.dispatch_table)`. The default is consulted natively,
//! so plain `dumps` never calls Python for it. The memo lives in the pickler between dumps
//! (until `clear_memo()`); during a dump it is moved out, so user code that re-enters the same
//! pickler sees an empty one instead of a borrow conflict.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PySet, PyString, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::by_value::per_call;
use crate::deterministic::Mode;
use crate::errors::{finish_error, pickling_error};
use crate::known::{self, Known};
use crate::memo::{Memo, MemoStore};
use crate::save::{resolve_compat_target, Compat, Dumper, Hooks};
use crate::writer::opcodes::HIGHEST_PROTOCOL;

/// The protocol used when none is given: the highest, as cloudpickle does.
pub const DEFAULT_PROTOCOL: u8 = HIGHEST_PROTOCOL;

/// `None` -> DEFAULT_PROTOCOL, negative -> highest, above highest -> ValueError.
fn resolve_protocol(protocol: Option<&Bound<'_, PyAny>>) -> PyResult<u8> {
    let Some(protocol) = protocol.filter(|p| !p.is_none()) else {
        return Ok(DEFAULT_PROTOCOL);
    };
    let value: i64 = protocol.extract()?;
    if value < 0 {
        Ok(HIGHEST_PROTOCOL)
    } else if value > i64::from(HIGHEST_PROTOCOL) {
        Err(PyValueError::new_err(format!(
            "pickle protocol must be <= {HIGHEST_PROTOCOL}"
        )))
    } else {
        Ok(value as u8)
    }
}

fn check_buffer_callback<'py>(
    proto: u8,
    buffer_callback: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match buffer_callback.filter(|c| !c.is_none()) {
        Some(_) if proto < 5 => Err(PyValueError::new_err("buffer_callback needs protocol >= 5")),
        other => Ok(other.cloned()),
    }
}

fn file_write<'py>(file: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    file.getattr_opt(pyo3::intern!(file.py(), "write"))?
        .ok_or_else(|| PyTypeError::new_err("file must have a 'write' attribute"))
}

/// `deterministic=` and `normalize_paths=` as a mode; `normalize_paths` alone is refused (it
/// names what deterministic mode does with source locations).
fn resolve_mode(deterministic: bool, normalize_paths: bool) -> PyResult<Mode> {
    if normalize_paths && !deterministic {
        return Err(PyValueError::new_err(
            "normalize_paths=True needs deterministic=True",
        ));
    }
    Ok(Mode {
        deterministic,
        normalize_paths,
    })
}

/// A dumper for a module-level call (`dumps`, `dump`, `fingerprint`, `_explain`): the default
/// hooks, and the call's checked options.
fn call_dumper<'py>(
    py: Python<'py>,
    proto: u8,
    buffer_callback: Option<Bound<'py, PyAny>>,
    file_write: Option<Bound<'py, PyAny>>,
    compat: Option<Bound<'py, PyString>>,
    mode: Mode,
    by_value: Option<Bound<'py, PySet>>,
) -> PyResult<Dumper<'py>> {
    let lk = known::get(py)?;
    let hooks = default_hooks(py, lk)?;
    let mut dumper = Dumper::new(
        py,
        lk,
        proto,
        Memo::new(),
        hooks,
        buffer_callback,
        file_write,
    );
    dumper.compat = compat.map(Compat::new);
    dumper.mode = mode;
    dumper.by_value_modules = by_value;
    Ok(dumper)
}

/// Run one dump and turn its error into what the caller sees.
fn run_dump<'py>(dumper: &mut Dumper<'py>, obj: &Bound<'py, PyAny>) -> PyResult<()> {
    let proto = dumper.proto;
    dumper
        .dump(obj)
        .map_err(|e| finish_error(dumper.py, e, proto))
}

/// Hooks for a plain `dumps`/`dump` call: the class-level `dispatch_table` unless someone
/// replaced it on `Pickler`.
fn default_hooks<'py>(py: Python<'py>, lk: &Known) -> PyResult<Hooks<'py>> {
    let table = py
        .get_type::<Pickler>()
        .getattr(pyo3::intern!(py, "dispatch_table"))?;
    Ok(Hooks {
        dispatch_table: if table.is(&lk.default_dispatch_table) {
            None
        } else {
            Some(table)
        },
        ..Hooks::default()
    })
}

/// `dumps(obj, protocol=None, buffer_callback=None, *, compat=None, deterministic=False,
/// normalize_paths=False, by_value=None)`: the pickle of `obj` as bytes. `compat` names the
/// cloudpickle copy the loader has instead of skypickle (`"cloudpickle"`,
/// `"pyspark.cloudpickle.cloudpickle"`, ...): see `save/compat.rs`. `deterministic`: see
/// `deterministic.rs`. `by_value`: modules (or their names) pickled by value for this call
/// only, see `by_value/per_call.rs`.
#[pyfunction]
#[pyo3(signature = (
    obj, protocol=None, buffer_callback=None, *, compat=None, deterministic=false,
    normalize_paths=false, max_bytes=None, by_value=None
))]
#[allow(clippy::too_many_arguments)]
pub fn dumps<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    protocol: Option<&Bound<'py, PyAny>>,
    buffer_callback: Option<&Bound<'py, PyAny>>,
    compat: Option<&Bound<'py, PyAny>>,
    deterministic: bool,
    normalize_paths: bool,
    max_bytes: Option<usize>,
    by_value: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let proto = resolve_protocol(protocol)?;
    let buffer_callback = check_buffer_callback(proto, buffer_callback)?;
    let compat = resolve_compat_target(py, compat)?;
    let mode = resolve_mode(deterministic, normalize_paths)?;
    let by_value = per_call::resolve(py, by_value)?;
    let mut dumper = call_dumper(py, proto, buffer_callback, None, compat, mode, by_value)?;
    dumper.set_max_bytes(max_bytes);
    run_dump(&mut dumper, obj)?;
    dumper.take_output()
}

/// `_explain(obj, protocol=None, compat=None, by_value=None)`: what a payload of `obj` carries, measured by
/// pickling it once with nothing kept but the measurements (see save/trace.rs); the Python
/// side (`skypickle.explain`) makes an `Explanation` of the dict returned.
#[pyfunction]
#[pyo3(name = "_explain", signature = (obj, protocol=None, compat=None, by_value=None))]
pub fn explain<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    protocol: Option<&Bound<'py, PyAny>>,
    compat: Option<&Bound<'py, PyAny>>,
    by_value: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let proto = resolve_protocol(protocol)?;
    let compat = resolve_compat_target(py, compat)?;
    let by_value = per_call::resolve(py, by_value)?;
    let mut dumper = call_dumper(py, proto, None, None, compat, Mode::default(), by_value)?;
    dumper.discard = true;
    dumper.trace = Some(Box::default());
    run_dump(&mut dumper, obj)?;
    dumper.flush_to_file()?;
    dumper.trace_report()
}

/// `fingerprint(obj, *, protocol=None, normalize_paths=False, by_value=None)`: the BLAKE3
/// digest (64 hex digits) of `obj`'s deterministic pickle, hashed frame by frame as it is
/// written: the payload is never built whole, and large buffers (numpy arrays at protocol 5)
/// are hashed where they lie. Equal to `blake3(dumps(obj, protocol, deterministic=True,
/// normalize_paths=normalize_paths, by_value=by_value))`.
#[pyfunction]
#[pyo3(signature = (obj, *, protocol=None, normalize_paths=false, by_value=None))]
pub fn fingerprint<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    protocol: Option<&Bound<'py, PyAny>>,
    normalize_paths: bool,
    by_value: Option<&Bound<'py, PyAny>>,
) -> PyResult<String> {
    let proto = resolve_protocol(protocol)?;
    let mode = resolve_mode(true, normalize_paths)?;
    let by_value = per_call::resolve(py, by_value)?;
    let mut dumper = call_dumper(py, proto, None, None, None, mode, by_value)?;
    dumper.hasher = Some(Box::default());
    run_dump(&mut dumper, obj)?;
    dumper.finish_hash()
}

/// `dump(obj, file, protocol=None, buffer_callback=None, *, compat=None, deterministic=False,
/// normalize_paths=False, by_value=None)`: write the pickle of `obj` to `file`.
#[pyfunction]
#[pyo3(signature = (
    obj, file, protocol=None, buffer_callback=None, *, compat=None, deterministic=false,
    normalize_paths=false, max_bytes=None, by_value=None
))]
#[allow(clippy::too_many_arguments)]
pub fn dump<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    file: &Bound<'py, PyAny>,
    protocol: Option<&Bound<'py, PyAny>>,
    buffer_callback: Option<&Bound<'py, PyAny>>,
    compat: Option<&Bound<'py, PyAny>>,
    deterministic: bool,
    normalize_paths: bool,
    max_bytes: Option<usize>,
    by_value: Option<&Bound<'py, PyAny>>,
) -> PyResult<()> {
    let proto = resolve_protocol(protocol)?;
    let buffer_callback = check_buffer_callback(proto, buffer_callback)?;
    let compat = resolve_compat_target(py, compat)?;
    let mode = resolve_mode(deterministic, normalize_paths)?;
    let by_value = per_call::resolve(py, by_value)?;
    let write = file_write(file)?;
    let mut dumper = call_dumper(
        py,
        proto,
        buffer_callback,
        Some(write),
        compat,
        mode,
        by_value,
    )?;
    dumper.set_max_bytes(max_bytes);
    run_dump(&mut dumper, obj)?;
    dumper.flush_to_file()
}

/// Pickler(file, protocol=None, buffer_callback=None, *, compat=None, deterministic=False,
/// normalize_paths=False, by_value=None)
///
/// Writes pickles of objects to `file` (anything with a `write(bytes)` method). Subclasses may
/// define `persistent_id(obj)`, override `reducer_override(obj)` (call the base one with
/// `super()`), and set `dispatch_table` per class or per instance; reducers registered in the
/// class-level `Pickler.dispatch` mapping apply to every pickler.
#[pyclass(subclass, dict, module = "skypickle", name = "Pickler")]
pub struct Pickler {
    write: Option<Py<PyAny>>,
    protocol: u8,
    /// The protocol argument as given (cloudpickle's `proto` attribute is not normalised).
    proto_arg: Option<Py<PyAny>>,
    buffer_callback: Option<Py<PyAny>>,
    /// `compat=`: the module path of the cloudpickle copy payloads are written for.
    compat: Option<Py<PyString>>,
    /// `deterministic=`, `normalize_paths=`.
    mode: Mode,
    /// `max_bytes=`, per dump.
    max_bytes: Option<usize>,
    /// `by_value=`, checked and normalised once, in `__init__`: every dump of this pickler
    /// (and its `reducer_override`) uses it.
    by_value: Option<Py<PySet>>,
    memo: MemoStore,
    /// cloudpickle's `globals_ref` (see `Dumper::globals_ref`), kept across dumps like the memo.
    globals_ref: Py<PyDict>,
    /// Set by `__new__`. CPython can run the garbage collector while a subclass instance is
    /// still being allocated (its `__dict__` is created before our fields are), and the
    /// collector then traverses zeroed memory: `__traverse__` must not read the fields then.
    initialized: bool,
}

impl Pickler {
    /// The hooks this pickler's class and instance define.
    fn hooks<'py>(slf: &Bound<'py, Self>, lk: &Known) -> PyResult<Hooks<'py>> {
        let py = slf.py();
        let base = py.get_type::<Pickler>();
        let cls = slf.get_type();
        let instance_dict = slf
            .getattr_opt(pyo3::intern!(py, "__dict__"))?
            .and_then(|d| d.cast_into::<PyDict>().ok());
        let has_instance_attrs = instance_dict.as_ref().is_some_and(|d| !d.is_empty());
        if cls.is(&base) && !has_instance_attrs {
            return default_hooks(py, lk);
        }
        let persistent_id = slf.getattr_opt(pyo3::intern!(py, "persistent_id"))?;
        let base_override = base.getattr(pyo3::intern!(py, "reducer_override"))?;
        let overridden = !cls
            .getattr(pyo3::intern!(py, "reducer_override"))?
            .is(&base_override)
            || instance_dict
                .as_ref()
                .map(|d| d.contains(pyo3::intern!(py, "reducer_override")))
                .transpose()?
                .unwrap_or(false);
        let reducer_override = if overridden {
            Some(slf.getattr(pyo3::intern!(py, "reducer_override"))?)
        } else {
            None
        };
        let dispatch_table = slf
            .getattr_opt(pyo3::intern!(py, "dispatch_table"))?
            .filter(|t| !t.is(&lk.default_dispatch_table));
        Ok(Hooks {
            persistent_id: persistent_id.filter(|p| !p.is_none()),
            reducer_override,
            dispatch_table,
        })
    }
}

#[pymethods]
impl Pickler {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn __new__(
        py: Python<'_>,
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> Self {
        // Arguments are taken by __init__, so subclasses may have their own signatures.
        Pickler {
            write: None,
            protocol: DEFAULT_PROTOCOL,
            proto_arg: None,
            buffer_callback: None,
            compat: None,
            mode: Mode::default(),
            max_bytes: None,
            by_value: None,
            memo: MemoStore::default(),
            globals_ref: PyDict::new(py).unbind(),
            initialized: true,
        }
    }

    #[pyo3(signature = (
        file, protocol=None, buffer_callback=None, *, compat=None, deterministic=false,
        normalize_paths=false, max_bytes=None, by_value=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn __init__(
        &mut self,
        file: &Bound<'_, PyAny>,
        protocol: Option<&Bound<'_, PyAny>>,
        buffer_callback: Option<&Bound<'_, PyAny>>,
        compat: Option<&Bound<'_, PyAny>>,
        deterministic: bool,
        normalize_paths: bool,
        max_bytes: Option<usize>,
        by_value: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.max_bytes = max_bytes;
        let proto = resolve_protocol(protocol)?;
        let buffer_callback = check_buffer_callback(proto, buffer_callback)?;
        self.compat = resolve_compat_target(file.py(), compat)?.map(Bound::unbind);
        self.mode = resolve_mode(deterministic, normalize_paths)?;
        self.by_value = per_call::resolve(file.py(), by_value)?.map(Bound::unbind);
        self.write = Some(file_write(file)?.unbind());
        self.protocol = proto;
        self.proto_arg = protocol
            .filter(|p| !p.is_none())
            .map(|p| p.clone().unbind());
        self.buffer_callback = buffer_callback.map(Bound::unbind);
        self.memo = MemoStore::default();
        Ok(())
    }

    /// Write a pickle of `obj` to the file.
    fn dump(slf: &Bound<'_, Self>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let lk = known::get(py)?;
        let (write, proto, buffer_callback, memo, globals_ref, compat, mode, max_bytes, by_value) = {
            let mut this = slf.try_borrow_mut()?;
            let Some(write) = this.write.as_ref().map(|w| w.clone_ref(py)) else {
                let name = slf.get_type().name()?;
                return Err(pickling_error(
                    py,
                    format!("Pickler.__init__() was not called by {name}.__init__()"),
                ));
            };
            let memo = std::mem::take(&mut this.memo);
            (
                write,
                this.protocol,
                this.buffer_callback.as_ref().map(|c| c.clone_ref(py)),
                memo,
                this.globals_ref.clone_ref(py),
                this.compat.as_ref().map(|c| c.clone_ref(py)),
                this.mode,
                this.max_bytes,
                this.by_value.as_ref().map(|b| b.clone_ref(py)),
            )
        };
        let hooks = match Self::hooks(slf, lk) {
            Ok(h) => h,
            Err(e) => {
                slf.try_borrow_mut()?.memo = memo;
                return Err(e);
            }
        };
        let mut dumper = Dumper::new(
            py,
            lk,
            proto,
            Memo::from_store(py, memo),
            hooks,
            buffer_callback.map(|c| c.into_bound(py)),
            Some(write.into_bound(py)),
        );
        dumper.globals_ref = globals_ref.into_bound(py);
        dumper.compat = compat.map(|c| Compat::new(c.into_bound(py)));
        dumper.mode = mode;
        dumper.set_max_bytes(max_bytes);
        dumper.by_value_modules = by_value.map(|b| b.into_bound(py));
        let result = run_dump(&mut dumper, obj).and_then(|()| dumper.flush_to_file());
        let memo = std::mem::take(&mut dumper.memo).into_store();
        drop(dumper);
        // Keep the memo, as pickle does, even after an error. A re-entrant dump on this same
        // pickler (from user code) may have stored one meanwhile: ours is the outer, it wins.
        if let Ok(mut this) = slf.try_borrow_mut() {
            this.memo = memo;
        }
        result
    }

    /// Forget the objects pickled so far (later dumps no longer refer back to them).
    fn clear_memo(&mut self) {
        self.memo = MemoStore::default();
    }

    /// cloudpickle's hook, consulted before the dispatch table: the by-value reduce value of
    /// a function or class that cannot be imported by the loader, else `NotImplemented`.
    /// Subclasses that override it can call it with `super().reducer_override(obj)`.
    fn reducer_override(&self, obj: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = obj.py();
        // Called by a subclass during its dump (the mode and list are already set) or directly.
        let _mode = crate::deterministic::enter(self.mode);
        let _by_value = per_call::enter(self.by_value.as_ref().map(|b| b.clone_ref(py)));
        match crate::by_value::reducer_override(obj, self.globals_ref.bind(py))? {
            Some(rv) => Ok(rv.into_any().unbind()),
            None => Ok(py.NotImplemented()),
        }
    }

    /// cloudpickle's `globals_ref` (id of a function's globals -> its base globals dict).
    #[getter]
    fn globals_ref(&self, py: Python<'_>) -> Py<PyDict> {
        self.globals_ref.clone_ref(py)
    }

    /// The protocol as passed to the constructor (cloudpickle's `proto` attribute).
    #[getter]
    fn proto(&self, py: Python<'_>) -> Py<PyAny> {
        match &self.proto_arg {
            Some(p) => p.clone_ref(py),
            // Cannot fail: a u8 converts to an int infallibly.
            None => self.protocol.into_pyobject(py).unwrap().into_any().unbind(),
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if !self.initialized {
            return Ok(());
        }
        if let Some(w) = &self.write {
            visit.call(w)?;
        }
        if let Some(p) = &self.proto_arg {
            visit.call(p)?;
        }
        if let Some(c) = &self.buffer_callback {
            visit.call(c)?;
        }
        if let Some(b) = &self.by_value {
            visit.call(b)?;
        }
        for obj in self.memo.objects() {
            visit.call(obj)?;
        }
        visit.call(&self.globals_ref)?;
        Ok(())
    }

    fn __clear__(&mut self) {
        self.write = None;
        self.proto_arg = None;
        self.buffer_callback = None;
        self.by_value = None;
        self.memo = MemoStore::default();
    }
}

/// Install the class-level dispatch mappings on `Pickler`.
pub fn init_class(py: Python<'_>, cls: &Bound<'_, PyType>) -> PyResult<()> {
    let lk = known::get(py)?;
    cls.setattr("dispatch_table", lk.default_dispatch_table.bind(py))?;
    cls.setattr("dispatch", lk.default_dispatch_table.bind(py))?;
    cls.setattr("_dispatch_table", lk.dispatch_registry.bind(py))?;
    Ok(())
}
