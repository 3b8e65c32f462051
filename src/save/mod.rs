//! `save()`: how each object is emitted, in CPython's order.
//!
//! A [`Dumper`] is the state of one `dump` (CPython's `PicklerObject` while `dump()` runs):
//! protocol, output, memo, the subclass hooks and the depth counter. `save` dispatches on the
//! exact type exactly as `_pickle.c`'s `save()` does:
//!
//! persistent_id → None/bool/int/float → memo hit → str/bytes → (depth check) →
//! dict/set/frozenset/list/tuple/bytearray/PickleBuffer → reducer_override → type/function →
//! dispatch_table → other classes → `__reduce_ex__(proto)` → `__reduce__`.
//!
//! The sub-modules hold the `save_*` families: atoms, containers, reduce, global, buffers.

mod atoms;
mod buffers;
mod by_value_class;
mod by_value_function;
mod canonical;
mod compat;
mod containers;
mod global;
mod instance;
mod reduce;
pub mod trace;

pub use compat::{resolve_target as resolve_compat_target, Compat};

use pyo3::exceptions::{PyKeyError, PyRecursionError};
use pyo3::prelude::*;
use pyo3::types::{
    PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyFunction, PyInt, PyList, PySet, PyString,
    PyTuple, PyType,
};
use pyo3::PyTypeInfo;

use crate::by_value::ClassDecision;
use crate::errors::{pickling_error, AtPath, PathSegment, SaveResult};
use crate::known::Known;
use crate::memo::Memo;
use crate::output::PyBytesBuffer;
use crate::writer::encode;
use crate::writer::opcodes::*;
use crate::writer::Output;
use canonical::ReduceStep;

/// Below this much free C stack, `save` moves to a fresh stack segment before recursing, so
/// deep graphs under a raised recursion limit cannot overflow the C stack. Generous, because
/// user reducers run on that stack too.
const STACK_RED_ZONE: usize = 256 * 1024;
/// Size of each extra stack segment.
const STACK_SEGMENT: usize = 4 * 1024 * 1024;

/// An object and its exact type, read once: the dispatch's one cast per object happens here.
#[derive(Clone, Copy)]
struct Typed<'a, 'py> {
    obj: &'a Bound<'py, PyAny>,
    tp: *mut pyo3::ffi::PyTypeObject,
}

impl<'a, 'py> Typed<'a, 'py> {
    #[inline(always)]
    fn new(obj: &'a Bound<'py, PyAny>) -> Self {
        Typed {
            obj,
            tp: obj.get_type_ptr(),
        }
    }

    /// The object as a `T` when its type is exactly `T`: a comparison of the type pointer read
    /// once, like `cast_exact` without the error value it builds on a miss (the dispatch
    /// misses several times for most objects).
    #[inline(always)]
    fn exact<T: PyTypeInfo>(self) -> Option<&'a Bound<'py, T>> {
        if std::ptr::eq(self.tp, T::type_object_raw(self.obj.py())) {
            // SAFETY: `tp`, read from the object in `new`, is exactly `T`'s type object. The
            // object is still a `T`: `T` is a builtin (static) type, and CPython refuses
            // `__class__` assignment to or from a static type.
            Some(unsafe { self.obj.cast_unchecked::<T>() })
        } else {
            None
        }
    }
}

/// The customisation points a `Pickler` subclass (or instance) provides.
#[derive(Default, Clone)]
pub struct Hooks<'py> {
    /// Bound `persistent_id`, when the pickler defines one.
    pub persistent_id: Option<Bound<'py, PyAny>>,
    /// Bound `reducer_override`, when a subclass overrides the base one.
    pub reducer_override: Option<Bound<'py, PyAny>>,
    /// A `dispatch_table` other than the default `ChainMap(Pickler.dispatch, copyreg)`.
    /// `None` means the default, which is consulted natively.
    pub dispatch_table: Option<Bound<'py, PyAny>>,
}

/// The state of one dump.
pub struct Dumper<'py> {
    pub py: Python<'py>,
    pub lk: &'static Known,
    /// The normalised protocol, 0..=5.
    pub proto: u8,
    /// Binary protocol (1+).
    pub bin: bool,
    pub out: Output<PyBytesBuffer<'py>>,
    pub memo: Memo<'py>,
    pub hooks: Hooks<'py>,
    pub buffer_callback: Option<Bound<'py, PyAny>>,
    /// `file.write` when dumping to a file: completed frames and large payloads go there.
    pub file_write: Option<Bound<'py, PyAny>>,
    /// cloudpickle's `globals_ref`: id(function globals) -> the base globals dict written for
    /// functions of that namespace (shared by all of them within this pickler).
    pub globals_ref: Bound<'py, PyDict>,
    depth: usize,
    max_depth: usize,
    plain_classes: instance::PlainClasses,
    by_value: by_value_function::ByValueCache,
    /// `compat=`: the cloudpickle copy whose reconstructors this dump names instead of
    /// skypickle's (see compat.rs), or None for skypickle's own format.
    pub compat: Option<compat::Compat<'py>>,
    /// Deterministic mode and its options (`crate::deterministic`).
    pub mode: crate::deterministic::Mode,
    /// `by_value=`: the modules this dump pickles by value besides the registered ones
    /// (`crate::by_value::per_call`), already checked and normalised to names.
    pub by_value_modules: Option<Bound<'py, PySet>>,
    /// Deterministic mode: the sets whose items are being keyed (see canonical.rs).
    keying: Vec<usize>,
    /// Deterministic mode: the reduce values computed while keying set items, shared by the
    /// dump and its sort-key sub-dumps, so that each object's reducer runs once per dump
    /// (see canonical.rs).
    reduced: Option<std::rc::Rc<canonical::ReduceCache<'py>>>,
    /// `fingerprint`: the stream goes into this hash instead of a `bytes` object or a file.
    pub hasher: Option<Box<blake3::Hasher>>,
    /// `explain`: the stream is only measured, then dropped.
    pub discard: bool,
    /// Bytes already handed on (to the file, the hash, or dropped): with the buffer's length,
    /// the position in the stream.
    flushed: usize,
    /// `explain`, `max_bytes`: what the payload carries, measured while it is written.
    pub trace: Option<Box<trace::Trace>>,
    /// `max_bytes`: the dump stops with PicklingError once the stream would exceed it.
    pub max_bytes: Option<usize>,
    /// Any of `hasher`, `discard`, `max_bytes` (set by `dump`): opcode boundaries take the
    /// slow path.
    special_sink: bool,
}

impl<'py> Dumper<'py> {
    pub fn new(
        py: Python<'py>,
        lk: &'static Known,
        proto: u8,
        memo: Memo<'py>,
        hooks: Hooks<'py>,
        buffer_callback: Option<Bound<'py, PyAny>>,
        file_write: Option<Bound<'py, PyAny>>,
    ) -> Self {
        let limit = crate::ffi::recursion_limit(py);
        Dumper {
            py,
            lk,
            proto,
            bin: proto >= 1,
            out: Output::new(PyBytesBuffer::new(py)),
            memo,
            hooks,
            buffer_callback,
            file_write,
            globals_ref: PyDict::new(py),
            depth: 0,
            plain_classes: instance::PlainClasses::default(),
            by_value: by_value_function::ByValueCache::default(),
            compat: None,
            mode: crate::deterministic::Mode::default(),
            by_value_modules: None,
            keying: Vec::new(),
            reduced: None,
            hasher: None,
            discard: false,
            flushed: 0,
            trace: None,
            max_bytes: None,
            special_sink: false,
            max_depth: usize::try_from(limit).unwrap_or(1000).max(1),
        }
    }

    /// Write a whole pickle of `obj`: PROTO, the object, STOP, then the last frame.
    pub fn dump(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        self.special_sink = self.consumes_output() || self.max_bytes.is_some();
        // The by-value layer's reducers read the mode and the by-value list from the thread
        // (see deterministic.rs and by_value/per_call.rs): they are also called from Python.
        let _mode = crate::deterministic::enter(self.mode);
        let _by_value = crate::by_value::per_call::enter(
            self.by_value_modules
                .as_ref()
                .map(|names| names.clone().unbind()),
        );
        if self.proto >= 2 {
            self.write(&[PROTO, self.proto])?;
            if self.proto >= 4 {
                self.out.set_framing(true);
            }
        }
        // `max_bytes` with a file: the payload is held until it is complete (the caller's
        // `flush_to_file` then writes it), so a refused dump writes nothing to the file, or
        // to the socket behind it. What is held is at most the limit plus one frame, the
        // bound the limit sets for `dumps` too. Taken after the last `?` above: the writer
        // is given back whatever the save's outcome.
        let held_write = if self.max_bytes.is_some() {
            self.file_write.take()
        } else {
            None
        };
        let result = self.save(obj).and_then(|()| self.write(&[STOP]));
        self.out.commit_frame();
        self.out.set_framing(false);
        if held_write.is_some() {
            self.file_write = held_write;
        }
        // `max_bytes` is checked between opcodes; the last ones are checked here, once the
        // last frame's header is final (a tiny frame loses it).
        result.and_then(|()| self.check_limit(0))
    }

    /// The output so far, as a `bytes` object; the buffer starts afresh.
    pub fn take_output(&mut self) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        self.out.commit_frame();
        let (buf, len) = self.out.take(PyBytesBuffer::new(self.py));
        buf.finish(self.py, len)
    }

    /// Hand everything written so far to `file.write` (or to the fingerprint's hash).
    pub fn flush_to_file(&mut self) -> PyResult<()> {
        if self.consumes_output() {
            self.flushed += self.out.len();
            if let Some(hasher) = self.hasher.as_mut() {
                hasher.update(self.out.as_slice());
            }
            self.out.clear();
            return Ok(());
        }
        if let Some(write) = self.file_write.clone() {
            if !self.out.is_empty() {
                self.flushed += self.out.len();
                let data = self.take_output()?;
                write.call1((data,))?;
            }
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn write(&mut self, data: &[u8]) -> SaveResult {
        Ok(self.out.write(data)?)
    }

    #[inline(always)]
    pub(crate) fn write_small(&mut self, op: encode::Small) -> SaveResult {
        Ok(self.out.write_small(op)?)
    }

    /// Write `header` + `payload`; payloads of 64 KiB and more go outside frames and, when
    /// dumping to a file, straight to `file.write` (as `payload_obj` if given: no copy).
    pub(crate) fn write_bytes(
        &mut self,
        header: &encode::Small,
        payload: &[u8],
        payload_obj: Option<&Bound<'py, PyAny>>,
    ) -> SaveResult {
        if !Output::<PyBytesBuffer<'py>>::is_large_payload(payload.len()) {
            self.write_small(*header)?;
            return self.write(payload);
        }
        let header = header.as_slice();
        // Committed first (as each branch below would): a tiny frame's header is dropped
        // then, and the limit counts the bytes that stay.
        self.out.commit_frame();
        self.check_limit(header.len() + payload.len())?;
        if self.consumes_output() {
            // Hashed (or counted) where it lies, never copied into the output.
            self.flush_to_file()?;
            if let Some(hasher) = self.hasher.as_mut() {
                hasher.update(header);
                hasher.update(payload);
            }
            self.flushed += header.len() + payload.len();
            return Ok(());
        }
        match self.file_write.clone() {
            None => Ok(self.out.write_unframed(header, payload)?),
            Some(write) => {
                self.out.commit_frame();
                let framing = self.out.framing();
                self.out.set_framing(false);
                let result = (|| -> SaveResult {
                    self.write(header)?;
                    self.flush_to_file()?;
                    self.flushed += payload.len();
                    match payload_obj {
                        Some(obj) => write.call1((obj,))?,
                        None => write.call1((pyo3::types::PyBytes::new(self.py, payload),))?,
                    };
                    Ok(())
                })();
                self.out.set_framing(framing);
                result
            }
        }
    }

    /// Between opcodes: commit a full frame and, when writing to a file, flush it.
    #[inline(always)]
    fn opcode_boundary(&mut self) -> SaveResult {
        if self.special_sink {
            return self.opcode_boundary_special();
        }
        if self.out.opcode_boundary() && self.file_write.is_some() {
            self.flush_to_file()?;
        }
        Ok(())
    }

    /// `opcode_boundary` for `fingerprint`, `explain` and `max_bytes` dumps.
    #[inline(never)]
    fn opcode_boundary_special(&mut self) -> SaveResult {
        if self.max_bytes.is_some() {
            self.check_limit(0)?;
        }
        let hands_on = self.file_write.is_some() || self.consumes_output();
        if self.out.opcode_boundary() && hands_on {
            self.flush_to_file()?;
        } else if self.consumes_output()
            && !self.out.framing()
            && self.out.len() >= crate::writer::FRAME_SIZE_TARGET
        {
            // Protocols 0-3 have no frames: the stream is taken in slices of this size.
            self.flush_to_file()?;
        }
        Ok(())
    }

    /// Whether the output is consumed as it is written (hashed by `fingerprint`, dropped by
    /// `explain`) rather than kept for a `bytes` object or a file.
    fn consumes_output(&self) -> bool {
        self.hasher.is_some() || self.discard
    }

    /// `fingerprint`: the hex digest of everything written.
    pub fn finish_hash(&mut self) -> PyResult<String> {
        self.out.commit_frame();
        self.flush_to_file()?;
        let hasher = self.hasher.take().unwrap_or_default();
        Ok(hasher.finalize().to_hex().to_string())
    }

    #[inline]
    pub(crate) fn memo_put(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        let idx = self.memo.put(obj);
        self.write_memo_put(idx)
    }

    /// The opcode that stores the top of the stack under memo index `idx`.
    #[inline]
    pub(crate) fn write_memo_put(&mut self, idx: usize) -> SaveResult {
        if self.proto == 0 {
            return self.write(&encode::text_memo(PUT, idx));
        }
        match encode::memo_put(idx, self.proto) {
            Ok(op) => self.write_small(op),
            Err(_) => Err(pickling_error(self.py, "memo id too large for LONG_BINPUT").into()),
        }
    }

    #[inline]
    pub(crate) fn memo_get(&mut self, idx: usize) -> SaveResult {
        if self.proto == 0 {
            return self.write(&encode::text_memo(GET, idx));
        }
        match encode::memo_get(idx) {
            Ok(op) => self.write_small(op),
            Err(_) => Err(pickling_error(self.py, "memo id too large for LONG_BINGET").into()),
        }
    }

    /// Emit `obj`.
    pub fn save(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        if self.trace.is_some() {
            return self.save_traced(obj);
        }
        self.save_obj(obj, true)
    }

    /// `save` while tracing: large objects are remembered (see trace.rs).
    #[cold]
    fn save_traced(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        let start = self.position();
        if obj.is_instance_of::<pyo3::types::PyModule>() {
            return self.save_module_traced(obj);
        }
        self.save_obj(obj, true)?;
        self.trace_written(obj, start);
        Ok(())
    }

    /// `max_bytes`: refuse to go past the limit with the next `upcoming` bytes, naming the
    /// largest contributors so far.
    fn check_limit(&self, upcoming: usize) -> SaveResult {
        let Some(limit) = self.max_bytes else {
            return Ok(());
        };
        let total = self.position() + upcoming;
        if total <= limit {
            return Ok(());
        }
        let mut msg = format!(
            "the pickle would exceed max_bytes={limit} (it reaches {total} bytes and is not \
             finished)"
        );
        let top = self.top_contributors(5, upcoming);
        if !top.is_empty() {
            msg.push_str("; the largest parts so far:");
        }
        for (path, kind, bytes) in top {
            let _ = std::fmt::Write::write_fmt(
                &mut msg,
                format_args!("\n  {path} ({kind}): {bytes} bytes"),
            );
        }
        msg.push_str("\nstopped while writing ");
        msg.push_str(&self.path_text());
        Err(pickling_error(self.py, msg).into())
    }

    fn save_obj(&mut self, obj: &Bound<'py, PyAny>, allow_persistent: bool) -> SaveResult {
        self.opcode_boundary()?;
        if allow_persistent {
            if let Some(func) = self.hooks.persistent_id.clone() {
                if self.save_persistent(&func, obj)? {
                    return Ok(());
                }
            }
        }
        let subject = Typed::new(obj);
        let tp = subject.tp as usize;
        let types = &self.lk.types;
        if obj.is_none() {
            return self.write(&[NONE]);
        }
        if tp == types.bool {
            return self.save_bool(obj);
        }
        // Each exact type is cast once, here, and its save_* takes the subject reference.
        if let Some(int) = subject.exact::<PyInt>() {
            return self.save_long(int);
        }
        if let Some(float) = subject.exact::<PyFloat>() {
            return self.save_float(float);
        }
        if let Some(idx) = self.memo.get(obj) {
            if self.trace.is_some() {
                self.trace_memo_hit(obj);
            }
            return self.memo_get(idx);
        }
        if self.mode.deterministic {
            if let Some(text) = subject.exact::<PyString>() {
                return self.save_str_by_content(text);
            }
            if let Some(bytes) = subject.exact::<PyBytes>() {
                return self.save_bytes_by_content(bytes);
            }
        }
        if let Some(text) = subject.exact::<PyString>() {
            return self.save_str(text);
        }
        if let Some(bytes) = subject.exact::<PyBytes>() {
            return self.save_bytes(bytes);
        }
        // Depth is counted only for objects that can contain others (as CPython does).
        if self.depth >= self.max_depth {
            return Err(PyRecursionError::new_err(
                "maximum recursion depth exceeded while pickling an object",
            )
            .into());
        }
        self.depth += 1;
        let result = stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || {
            self.save_compound(subject)
        });
        self.depth -= 1;
        result
    }

    fn save_compound(&mut self, subject: Typed<'_, 'py>) -> SaveResult {
        let (obj, tp) = (subject.obj, subject.tp as usize);
        let types = &self.lk.types;
        if let Some(dict) = subject.exact::<PyDict>() {
            return self.save_dict(dict);
        }
        if let Some(list) = subject.exact::<PyList>() {
            return self.save_list(list);
        }
        if let Some(tuple) = subject.exact::<PyTuple>() {
            if self.mode.deterministic && !tuple.is_empty() {
                return self.save_atoms_by_content(obj, |dumper| dumper.save_tuple(tuple));
            }
            return self.save_tuple(tuple);
        }
        if let Some(set) = subject.exact::<PySet>() {
            return self.save_set(set);
        }
        if let Some(set) = subject.exact::<PyFrozenSet>() {
            if self.mode.deterministic {
                return self.save_atoms_by_content(obj, |dumper| dumper.save_frozenset(set));
            }
            return self.save_frozenset(set);
        }
        if let Some(array) = subject.exact::<PyByteArray>() {
            return self.save_bytearray(array);
        }
        if tp == types.picklebuffer {
            return self.save_picklebuffer(obj);
        }
        let py = self.py;
        if let Some(hook) = self.hooks.reducer_override.clone() {
            let rv = self.reduce_once(obj, ReduceStep::Override, || hook.call1((obj,)))?;
            if !rv.is(py.NotImplemented()) {
                return self.save_reduce_value(obj, &rv);
            }
        } else if let Some(func) = subject.exact::<PyFunction>() {
            // cloudpickle's reducer_override for functions, natively.
            return match crate::by_value::function_decision(func)? {
                crate::by_value::FunctionDecision::ByValue => self
                    .in_entry(
                        trace::Kind::Function,
                        || trace::describe_function(func),
                        |this| this.save_function_by_value(func),
                    )
                    .at(|| PathSegment::Function),
                crate::by_value::FunctionDecision::Reduce(rv) => self
                    .save_reduce(&rv, Some(obj))
                    .at(|| PathSegment::Function),
                crate::by_value::FunctionDecision::ByReference => {
                    self.save_function_by_reference(obj)
                }
            };
        } else if let Ok(cls) = obj.cast::<PyType>() {
            // cloudpickle's reducer_override, natively: classes that must travel by value.
            match crate::by_value::class_decision(cls, false)? {
                ClassDecision::ByValue(parts) => {
                    return self.in_entry(
                        trace::Kind::Class,
                        || (trace::qualified_name(obj), None),
                        |this| this.save_class_by_value(obj, &parts),
                    );
                }
                ClassDecision::Reduce(rv) => return self.save_reduce(&rv, Some(obj)),
                ClassDecision::ByReference => {}
            }
        }
        if tp == types.type_ {
            return self.save_type(obj);
        }
        if tp == types.function {
            return self.save_global(obj, None);
        }
        let rv = if let Some(reducer) = self.dispatch_lookup(obj)? {
            if tp == types.code && self.is_default_code_reducer(&reducer) {
                return self.save_code(obj);
            }
            if tp == types.cell {
                if self.is_default_cell_reducer(&reducer) {
                    return self.save_cell(obj).at(|| PathSegment::Cell);
                }
                let rv = reducer.call1((obj,))?;
                return self.save_reduce_value(obj, &rv).at(|| PathSegment::Cell);
            }
            self.reduce_once(obj, ReduceStep::Reduce, || reducer.call1((obj,)))?
        } else if obj.is_instance_of::<pyo3::types::PyType>() {
            return self.save_global(obj, None);
        } else if (tp == types.builtin_function && self.save_known_global(obj)?)
            || (self.proto >= 2
                && self.hooks.persistent_id.is_none()
                && self.save_plain_instance(obj)?)
        {
            // Fast paths that write what `__reduce_ex__` would lead to: skypickle's own
            // reconstructors by name, and plain-class instances.
            return Ok(());
        } else if let Some(reduce_ex) = obj.getattr_opt(pyo3::intern!(py, "__reduce_ex__"))? {
            let proto = self.proto;
            self.reduce_once(obj, ReduceStep::Reduce, || reduce_ex.call1((proto,)))?
        } else if let Some(reduce) = obj.getattr_opt(pyo3::intern!(py, "__reduce__"))? {
            self.reduce_once(obj, ReduceStep::Reduce, || reduce.call0())?
        } else {
            let name = obj.get_type().name()?;
            return Err(pickling_error(
                py,
                format!("can't pickle '{name}' object: {}", obj.repr()?),
            )
            .into());
        };
        self.save_reduce_value(obj, &rv)
    }

    /// The reducer registered for `type(obj)`, if any: the pickler's own `dispatch_table`
    /// when it has one, else `Pickler.dispatch` then the live `copyreg.dispatch_table`.
    fn dispatch_lookup(&self, obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = self.py;
        let tp = obj.get_type();
        match &self.hooks.dispatch_table {
            None => {
                let registry = self.lk.dispatch_registry.bind(py);
                if !registry.is_empty() {
                    if let Some(reducer) = registry.get_item(&tp)? {
                        return Ok(Some(reducer));
                    }
                }
                self.lk.copyreg_dispatch.bind(py).get_item(&tp)
            }
            Some(table) => {
                if let Ok(dict) = table.cast_exact::<PyDict>() {
                    return dict.get_item(&tp);
                }
                match table.get_item(&tp) {
                    Ok(reducer) => Ok(Some(reducer)),
                    Err(e) if e.is_instance_of::<PyKeyError>(py) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// What a reducer returned: a string names a global, a tuple is a reduce value.
    pub(crate) fn save_reduce_value(
        &mut self,
        obj: &Bound<'py, PyAny>,
        rv: &Bound<'py, PyAny>,
    ) -> SaveResult {
        if let Ok(name) = rv.cast::<PyString>() {
            return self.save_global(obj, Some(name));
        }
        let Ok(tuple) = rv.cast::<PyTuple>() else {
            return Err(pickling_error(self.py, "__reduce__ must return a string or tuple").into());
        };
        self.save_reduce(tuple, Some(obj))
    }

    /// `persistent_id(obj)`: a non-None result is written instead of the object.
    fn save_persistent(
        &mut self,
        func: &Bound<'py, PyAny>,
        obj: &Bound<'py, PyAny>,
    ) -> SaveResult<bool> {
        let pid = func.call1((obj,))?;
        if pid.is_none() {
            return Ok(false);
        }
        if self.bin {
            self.save_obj(&pid, false)
                .at(|| PathSegment::PersistentId)?;
            self.write(&[BINPERSID])?;
        } else {
            let text = pid.str()?;
            // Lone surrogates (no UTF-8 form) are not ASCII either: pickle's error.
            let text = match text.to_cow() {
                Ok(text) if text.is_ascii() => text,
                _ => {
                    return Err(pickling_error(
                        self.py,
                        "persistent IDs in protocol 0 must be ASCII strings",
                    )
                    .into())
                }
            };
            self.write(&[PERSID])?;
            self.write(text.as_bytes())?;
            self.write(b"\n")?;
        }
        Ok(true)
    }
}
