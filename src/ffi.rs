//! Raw CPython, in one place: the C declarations pyo3-ffi does not provide, and every direct
//! read of an object's fields, each behind a safe function that takes a typed reference (so
//! the type check that makes the call sound is the caller's type, not a comment).
//!
//! Outside this module, `unsafe` remains only where the raw pointer *is* the job: the writer's
//! storage inside a `bytes` object (`output.rs`), and the `_reconstruct` entry point
//! (`wire.rs`), a C function CPython calls.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCode, PyDict, PyFunction, PyInt, PyList, PyString, PyTuple, PyType};

/// Declarations of CPython functions that pyo3-ffi does not bind (or keeps private).
pub(crate) mod raw {
    use pyo3::ffi;

    unsafe extern "C" {
        // Part of CPython's non-limited C API on every supported version (3.9–3.13).
        // Resizes a bytes object that nobody else references yet.
        pub(crate) fn _PyBytes_Resize(
            bytes: *mut *mut ffi::PyObject,
            newsize: ffi::Py_ssize_t,
        ) -> std::ffi::c_int;
        // Exported by CPython 3.9–3.13 (non-limited API).
        pub(crate) fn _PyLong_NumBits(v: *mut ffi::PyObject) -> usize;
    }

    /// `_PyLong_AsByteArray(v, bytes, n, little_endian=1, is_signed=1)`; 3.13 added a sixth
    /// argument (raise on overflow, which we want).
    ///
    /// # Safety
    /// `v` must be an int.
    pub(crate) unsafe fn long_as_byte_array(
        v: *mut ffi::PyObject,
        out: &mut [u8],
    ) -> std::ffi::c_int {
        #[cfg(Py_3_13)]
        {
            unsafe extern "C" {
                fn _PyLong_AsByteArray(
                    v: *mut ffi::PyObject,
                    bytes: *mut u8,
                    n: usize,
                    little_endian: std::ffi::c_int,
                    is_signed: std::ffi::c_int,
                    with_exceptions: std::ffi::c_int,
                ) -> std::ffi::c_int;
            }
            // SAFETY: forwarded from the caller; `out` is a valid buffer of its length.
            unsafe { _PyLong_AsByteArray(v, out.as_mut_ptr(), out.len(), 1, 1, 1) }
        }
        #[cfg(not(Py_3_13))]
        {
            // SAFETY: forwarded from the caller; `out` is a valid buffer of its length.
            unsafe { ffi::_PyLong_AsByteArray(v.cast(), out.as_mut_ptr(), out.len(), 1, 1) }
        }
    }
}

// ---- ints ----------------------------------------------------------------------------------

/// The value of an int that fits in 64 bits, or None.
#[inline]
pub fn int_as_i64(value: &Bound<'_, PyInt>) -> PyResult<Option<i64>> {
    let mut overflow: std::ffi::c_int = 0;
    // SAFETY: `value` is an int; the call only reads it.
    let v = unsafe { ffi::PyLong_AsLongLongAndOverflow(value.as_ptr(), &raw mut overflow) };
    if overflow != 0 {
        return Ok(None);
    }
    if v == -1 {
        if let Some(err) = PyErr::take(value.py()) {
            return Err(err);
        }
    }
    Ok(Some(v))
}

/// The two's-complement little-endian bytes of an int, one byte more than its bit length
/// needs (`pickle.encode_long` trims them).
pub fn int_to_signed_le_bytes(value: &Bound<'_, PyInt>) -> PyResult<Vec<u8>> {
    let py = value.py();
    // SAFETY: `value` is an int.
    let nbits = unsafe { raw::_PyLong_NumBits(value.as_ptr()) };
    if nbits == usize::MAX {
        return Err(PyErr::fetch(py));
    }
    let nbytes = (nbits >> 3) + 1;
    if nbytes > 0x7fff_ffff {
        return Err(pyo3::exceptions::PyOverflowError::new_err(
            "int too large to pickle",
        ));
    }
    let mut out = vec![0u8; nbytes];
    // SAFETY: `value` is an int and `out` has room for its signed form.
    if unsafe { raw::long_as_byte_array(value.as_ptr(), &mut out) } < 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(out)
}

// ---- strings -------------------------------------------------------------------------------

/// The UTF-8 text of a str, borrowed from the str (CPython caches it there), or None when it
/// holds lone surrogates (not UTF-8).
#[inline]
pub fn str_utf8<'a>(text: &'a Bound<'_, PyString>) -> Option<&'a [u8]> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: `text` is a str; the UTF-8 buffer it caches lives as long as it does, and the
    // slice borrows `text`.
    let data = unsafe { ffi::PyUnicode_AsUTF8AndSize(text.as_ptr(), &raw mut size) };
    if data.is_null() {
        let _ = PyErr::take(text.py());
        return None;
    }
    // SAFETY: CPython returned a buffer of `size` bytes owned by `text`.
    Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size as usize) })
}

/// Whether a str is interned (identifiers, dict keys the compiler or `sys.intern` made so):
/// the strs that are likely to be met again as the very same object.
#[inline]
pub fn str_is_interned(text: &Bound<'_, PyString>) -> bool {
    #[cfg(not(Py_3_14))]
    {
        // SAFETY: `text` is a live str, whose header is a PyASCIIObject; reading the state
        // bitfield's `interned` bits reads memory the object owns.
        unsafe { (*text.as_ptr().cast::<ffi::PyASCIIObject>()).interned() != 0 }
    }
    #[cfg(Py_3_14)]
    {
        let _ = text;
        false
    }
}

/// The text of a str as UTF-8 with lone surrogates written as `pickle` writes them
/// (`surrogatepass`), as a new `bytes`: for the strs [`str_utf8`] refuses.
pub fn str_encode_surrogatepass<'py>(text: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyBytes>> {
    let py = text.py();
    Ok(text
        .call_method1(
            pyo3::intern!(py, "encode"),
            (
                pyo3::intern!(py, "utf-8"),
                pyo3::intern!(py, "surrogatepass"),
            ),
        )?
        .cast_into::<PyBytes>()?)
}

// ---- containers ----------------------------------------------------------------------------

/// The next (key, value) of a dict from position `pos`, as owned references; None at the end.
/// Safe while the dict changes: PyDict_Next checks `pos` against the current table.
#[inline]
pub fn dict_next<'py>(
    dict: &Bound<'py, PyDict>,
    pos: &mut ffi::Py_ssize_t,
) -> Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let mut key = std::ptr::null_mut();
    let mut value = std::ptr::null_mut();
    // SAFETY: `dict` is a live dict; PyDict_Next bounds-checks `pos` against the current
    // table, and returns borrowed references that we immediately own (incref).
    unsafe {
        if ffi::PyDict_Next(dict.as_ptr(), pos, &raw mut key, &raw mut value) == 0 {
            return None;
        }
        let py = dict.py();
        Some((
            Bound::from_borrowed_ptr(py, key),
            Bound::from_borrowed_ptr(py, value),
        ))
    }
}

/// The items of a set or frozenset in iteration order, read off its hash table: what
/// iterating it in Python gives, without the iterator object (and its allocation, and the
/// `__length_hint__` call `collect` makes) that `PyObject_GetIter` costs per set. Sets are
/// the hot spot of deterministic mode's canonical order, which reads each set once or twice.
pub struct SetEntries<'py> {
    set: Bound<'py, PyAny>,
    pos: ffi::Py_ssize_t,
}

/// The two types laid out as a `PySetObject` (subclasses included), whose tables
/// [`set_entries`] reads.
pub trait SetLayout {}
impl SetLayout for pyo3::types::PySet {}
impl SetLayout for pyo3::types::PyFrozenSet {}

/// See [`SetEntries`].
#[inline]
pub fn set_entries<'py, T: SetLayout>(set: &Bound<'py, T>) -> SetEntries<'py> {
    SetEntries {
        set: set.as_any().clone(),
        pos: 0,
    }
}

impl<'py> Iterator for SetEntries<'py> {
    type Item = Bound<'py, PyAny>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        // SAFETY: `set` is a live set or frozenset (typed at construction, and an object's
        // type does not change between set and non-set). The table and its mask are read afresh at
        // every step, so a set resized in between (by code run while an item was being
        // saved) is read within its current table, as PyDict_Next does for dicts; only the
        // order could then be off, and the callers check the size afterwards. An entry is an
        // item when its key is set and its hash is not -1: CPython marks a removed entry
        // (the dummy) with hash -1, which no object's hash can be. The item is owned (incref)
        // before anything else runs.
        unsafe {
            let so = self.set.as_ptr().cast::<ffi::PySetObject>();
            let mask = (*so).mask;
            let table = (*so).table;
            while self.pos <= mask {
                let entry = &*table.offset(self.pos);
                self.pos += 1;
                if !entry.key.is_null() && entry.hash != -1 {
                    return Some(Bound::from_borrowed_ptr(self.set.py(), entry.key));
                }
            }
            None
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // SAFETY: as in `next`; `used` is the number of items.
        let used = unsafe { (*self.set.as_ptr().cast::<ffi::PySetObject>()).used } as usize;
        (0, Some(used))
    }
}

/// The items of a set or frozenset, as [`set_entries`] reads them, with the exact capacity.
pub fn set_items<'py, T: SetLayout>(set: &Bound<'py, T>) -> Vec<Bound<'py, PyAny>> {
    let entries = set_entries(set);
    let mut items = Vec::with_capacity(entries.size_hint().1.unwrap_or(0));
    items.extend(entries);
    items
}

/// Item `i` of a list, or None past its current end (the list may shrink while its items
/// are being saved).
#[inline]
pub fn list_item<'py>(list: &Bound<'py, PyList>, i: usize) -> Option<Bound<'py, PyAny>> {
    // SAFETY: `list` is a live list; the index is checked against its current size before
    // the borrowed item is read, and the item is owned (incref) immediately.
    unsafe {
        let ptr = list.as_ptr();
        if i >= ffi::PyList_GET_SIZE(ptr) as usize {
            return None;
        }
        Some(Bound::from_borrowed_ptr(
            list.py(),
            ffi::PyList_GET_ITEM(ptr, i as ffi::Py_ssize_t),
        ))
    }
}

/// Whether `obj` is an iterator (its type has `tp_iternext`).
#[inline]
pub fn is_iterator(obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: PyIter_Check only reads the type's tp_iternext slot.
    unsafe { ffi::PyIter_Check(obj.as_ptr()) != 0 }
}

/// `next(iterator)`, None when exhausted. Callers check [`is_iterator`] first.
#[inline]
pub fn iter_next<'py>(iterator: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = iterator.py();
    if !is_iterator(iterator) {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "expected an iterator",
        ));
    }
    // SAFETY: `iterator` passed PyIter_Check; PyIter_Next returns a new reference or null
    // (with an exception set, or not at the end).
    let item = unsafe { ffi::PyIter_Next(iterator.as_ptr()) };
    if item.is_null() {
        return match PyErr::take(py) {
            Some(e) => Err(e),
            None => Ok(None),
        };
    }
    // SAFETY: a new reference, owned from here on.
    Ok(Some(unsafe { Bound::from_owned_ptr(py, item) }))
}

// ---- buffers ---------------------------------------------------------------------------

/// A buffer exported to us by `PyObject_GetBuffer`, released when dropped: while it lives, the
/// exporter keeps the memory alive and in place (a bytearray refuses to resize), whatever user
/// code does to the object we got it from (a `PickleBuffer` released, its base dropped).
///
/// Invariant: `view` was filled by a successful `PyObject_GetBuffer` and is released exactly
/// once, by `drop`; the lifetime ties the value to an attached interpreter. The `Py_buffer` is
/// boxed because exporters may point its fields into the struct itself.
pub struct BufferView<'py> {
    view: Box<ffi::Py_buffer>,
    _py: std::marker::PhantomData<Python<'py>>,
}

impl<'py> BufferView<'py> {
    /// `PyObject_GetBuffer(obj, PyBUF_FULL_RO)`, what `PickleBuffer` itself asks its base for
    /// (a released PickleBuffer raises ValueError here, as `pickle` does).
    pub fn get(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        let mut view = Box::new(ffi::Py_buffer::new());
        // SAFETY: `obj` is a live object and `view` points to writable storage for a
        // Py_buffer; on failure nothing needs releasing and an exception is set.
        if unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &raw mut *view, ffi::PyBUF_FULL_RO) } < 0
        {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(BufferView {
            view,
            _py: std::marker::PhantomData,
        })
    }

    pub fn readonly(&self) -> bool {
        self.view.readonly != 0
    }

    /// C- or Fortran-contiguous, without suboffsets.
    pub fn is_contiguous(&self) -> bool {
        // SAFETY: a view filled by PyObject_GetBuffer and not yet released (type invariant);
        // the call only reads it.
        self.view.suboffsets.is_null()
            && unsafe {
                ffi::PyBuffer_IsContiguous(&raw const *self.view, b'A' as std::ffi::c_char)
            } != 0
    }

    /// The bytes, for a contiguous buffer. What an exporter fills in is not ours to trust: a
    /// negative length or a null pointer is a BufferError, not a slice.
    pub fn as_bytes(&self) -> PyResult<&[u8]> {
        let (buf, len) = (self.view.buf.cast::<u8>().cast_const(), self.view.len);
        match usize::try_from(len) {
            Ok(0) => Ok(&[]),
            Ok(len) if !buf.is_null() => {
                // SAFETY: `len` bytes at `buf`, exported to us and kept in place until this
                // view is dropped; the slice borrows the view.
                Ok(unsafe { std::slice::from_raw_parts(buf, len) })
            }
            _ => Err(pyo3::exceptions::PyBufferError::new_err(
                "the buffer's exporter gave an invalid buffer",
            )),
        }
    }
}

impl Drop for BufferView<'_> {
    fn drop(&mut self) {
        // SAFETY: a view filled by PyObject_GetBuffer, released once, with the interpreter
        // attached (type invariant).
        unsafe { ffi::PyBuffer_Release(&raw mut *self.view) };
    }
}

// ---- the interpreter -----------------------------------------------------------------------

/// `sys.getrecursionlimit()`.
pub fn recursion_limit(_py: Python<'_>) -> i32 {
    // SAFETY: reads an interpreter setting; the interpreter is attached (`_py`).
    unsafe { ffi::Py_GetRecursionLimit() }
}

/// The interpreter's `sys.modules` dict itself (not a lookup through the `sys` module).
pub fn sys_modules(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: a borrowed reference to the interpreter's module dict (never null while the
    // interpreter runs), owned from here on.
    let modules = unsafe { Bound::from_borrowed_ptr(py, ffi::PyImport_GetModuleDict()) };
    Ok(modules.cast_into::<PyDict>()?)
}

/// `PyImport_Import(name)`: what `pickle` does to import a global's module.
pub fn import_module<'py>(name: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: PyImport_Import takes a borrowed name and returns a new reference or null.
    unsafe { Bound::from_owned_ptr_or_err(name.py(), ffi::PyImport_Import(name.as_ptr())) }
}

// ---- sys.modules' change stamp --------------------------------------------------------------

/// A value that differs whenever the contents of `modules` (the interpreter's `sys.modules`)
/// may differ from what they were when the same value was last returned; None when this
/// interpreter cannot tell (then nothing derived from `sys.modules` may be kept).
///
/// 3.9-3.11: the dict's PEP 509 version, which every mutation of any dict sets to a new value
/// of one process-wide counter (a new dict gets one too), paired with the dict's address.
/// 3.12 deprecated that field (3.14 removes it), so 3.12+ counts the events of a dict watcher
/// instead (`PyDict_AddWatcher`, 3.12+), which CPython calls before every change to a watched
/// dict, its deallocation included.
pub fn modules_stamp(modules: &Bound<'_, PyDict>) -> Option<(usize, u64)> {
    let address = modules.as_ptr() as usize;
    #[cfg(not(Py_3_12))]
    {
        // SAFETY: `modules` is a dict (its type says so), alive while we hold it; the
        // version is a plain field of PyDictObject on 3.9-3.11.
        let version = unsafe { (*modules.as_ptr().cast::<ffi::PyDictObject>()).ma_version_tag };
        Some((address, version))
    }
    #[cfg(Py_3_12)]
    {
        modules_watch::generation(modules).map(|generation| (address, generation))
    }
}

/// The dict watcher behind [`modules_stamp`] on 3.12+.
#[cfg(Py_3_12)]
mod modules_watch {
    use std::ffi::c_int;
    use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    unsafe extern "C" {
        // Public C API since 3.12, not bound by pyo3-ffi. The callback's first argument is
        // the `PyDict_WatchEvent` enum (an int).
        fn PyDict_AddWatcher(
            callback: unsafe extern "C" fn(
                c_int,
                *mut ffi::PyObject,
                *mut ffi::PyObject,
                *mut ffi::PyObject,
            ) -> c_int,
        ) -> c_int;
    }

    /// `PyDict_EVENT_DEALLOCATED` (the sixth event of `PyDict_WatchEvent`, 3.12-3.14).
    const EVENT_DEALLOCATED: c_int = 5;

    /// Our watcher's id; `UNTRIED` before the first use, `UNAVAILABLE` when CPython had no
    /// free watcher slot (an interpreter has 8, shared with CPython and other extensions).
    static WATCHER: AtomicI32 = AtomicI32::new(UNTRIED);
    const UNTRIED: i32 = -2;
    const UNAVAILABLE: i32 = -1;
    /// The address of the dict being watched (0: none). Reset when that dict is freed, since
    /// a new dict at the same address would not be watched.
    static WATCHED: AtomicUsize = AtomicUsize::new(0);
    /// Bumped by every event of the watched dict, and when another dict is watched.
    static GENERATION: AtomicU64 = AtomicU64::new(0);

    // The module runs with the GIL (gil_used = true): the callback and the readers are
    // serialised by it, so relaxed atomics are enough; atomics only make the statics sound.

    /// Called by CPython, with the GIL, before each change to a watched dict.
    unsafe extern "C" fn on_event(
        event: c_int,
        dict: *mut ffi::PyObject,
        _key: *mut ffi::PyObject,
        _new_value: *mut ffi::PyObject,
    ) -> c_int {
        GENERATION.fetch_add(1, Ordering::Relaxed);
        if event == EVENT_DEALLOCATED {
            let _ =
                WATCHED.compare_exchange(dict as usize, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        0
    }

    /// The current generation, watching `modules` first if it is not watched yet.
    pub(super) fn generation(modules: &Bound<'_, PyDict>) -> Option<u64> {
        let address = modules.as_ptr() as usize;
        if WATCHED.load(Ordering::Relaxed) != address {
            let mut id = WATCHER.load(Ordering::Relaxed);
            if id == UNTRIED {
                // SAFETY: registers a callback that lives as long as the process (this
                // library is never unloaded); returns -1 with an exception when no slot is
                // free.
                id = unsafe { PyDict_AddWatcher(on_event) };
                if id < 0 {
                    let _ = PyErr::take(modules.py());
                    id = UNAVAILABLE;
                }
                WATCHER.store(id, Ordering::Relaxed);
            }
            if id == UNAVAILABLE {
                return None;
            }
            // SAFETY: `id` is our registered watcher and `modules` a live dict; returns -1
            // with an exception on failure.
            if unsafe { ffi::PyDict_Watch(id, modules.as_ptr()) } < 0 {
                let _ = PyErr::take(modules.py());
                return None;
            }
            WATCHED.store(address, Ordering::Relaxed);
            // What was derived from the dict watched before (or from none) is stale.
            GENERATION.fetch_add(1, Ordering::Relaxed);
        }
        Some(GENERATION.load(Ordering::Relaxed))
    }
}

// ---- weak references -----------------------------------------------------------------------

/// A new weak reference to `obj` (an error for objects that cannot be weakly referenced).
pub fn weakref_new<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: PyWeakref_NewRef takes a borrowed object and returns a new reference or null
    // with an exception.
    unsafe {
        Bound::from_owned_ptr_or_err(
            obj.py(),
            ffi::PyWeakref_NewRef(obj.as_ptr(), std::ptr::null_mut()),
        )
    }
}

/// Whether the weak reference `weak` points at `obj` (false once its target is gone, and for
/// anything that is not a weak reference).
pub fn weakref_points_at(weak: &Bound<'_, PyAny>, obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: PyWeakref_Check only reads the object's type.
    if unsafe { ffi::PyWeakref_Check(weak.as_ptr()) } == 0 {
        return false;
    }
    #[cfg(Py_3_13)]
    {
        let mut target: *mut ffi::PyObject = std::ptr::null_mut();
        // SAFETY: `weak` is a live weak reference; on success `target` is a new reference
        // (or null once dead), released right away: only its address is compared.
        unsafe {
            if ffi::PyWeakref_GetRef(weak.as_ptr(), &raw mut target) < 0 {
                ffi::PyErr_Clear();
                return false;
            }
            let same = !target.is_null() && std::ptr::eq(target, obj.as_ptr());
            ffi::Py_XDECREF(target);
            same
        }
    }
    #[cfg(not(Py_3_13))]
    {
        // SAFETY: `weak` is a live weak reference; the result is borrowed (None once dead)
        // and only its address is compared.
        let target = unsafe { ffi::PyWeakref_GetObject(weak.as_ptr()) };
        std::ptr::eq(target, obj.as_ptr())
    }
}

// ---- types ---------------------------------------------------------------------------------

/// A type's deallocator, as an address (0 for none): every class made by `type.__new__` has
/// CPython's `subtype_dealloc`.
pub fn type_dealloc(tp: &Bound<'_, PyType>) -> usize {
    // SAFETY: reading a slot of a live type object.
    unsafe { (*tp.as_type_ptr()).tp_dealloc.map_or(0, |f| f as usize) }
}

/// A type's `tp_name`: `module.Name` for types defined in C, the bare `__name__` for classes
/// made by a class statement. Valid as long as the type lives (the lifetime says so).
pub fn type_name_bytes<'a>(tp: &'a Bound<'_, PyType>) -> &'a [u8] {
    // SAFETY: `tp_name` of a live type is a NUL-terminated string it owns (or null).
    unsafe {
        let name = (*tp.as_type_ptr()).tp_name;
        if name.is_null() {
            return b"";
        }
        std::ffi::CStr::from_ptr(name).to_bytes()
    }
}

/// A class's own namespace dict, read directly (no mappingproxy); None when the type keeps
/// none there (3.12+ builtin static types keep theirs elsewhere).
pub fn type_dict<'py>(tp: &Bound<'py, PyType>) -> Option<Bound<'py, PyDict>> {
    let py = tp.py();
    // SAFETY: reading a field of a live type object (3.12+: through PyType_GetDict, which
    // returns a new reference or null).
    let dict = unsafe {
        #[cfg(Py_3_12)]
        {
            Bound::from_owned_ptr_or_opt(py, ffi::PyType_GetDict(tp.as_type_ptr()))
        }
        #[cfg(not(Py_3_12))]
        {
            Bound::from_borrowed_ptr_or_opt(py, (*tp.as_type_ptr()).tp_dict)
        }
    };
    if dict.is_none() {
        let _ = PyErr::take(py);
    }
    dict.and_then(|d| d.cast_into::<PyDict>().ok())
}

/// The parts of a type's layout the plain-instance fast path depends on.
pub struct TypeLayout {
    /// Its metaclass is exactly `type`.
    pub metatype_is_type: bool,
    /// Its attribute lookup is `object.__getattribute__`'s generic one.
    pub generic_getattr: bool,
    /// Variable-size instances (`tp_itemsize != 0`).
    pub variable_size: bool,
    /// A heap type (created at run time, by a class statement or C code's PyType_FromSpec).
    pub heap: bool,
}

/// The [`TypeLayout`] of `tp`.
pub fn type_layout(tp: &Bound<'_, PyType>) -> TypeLayout {
    let raw = tp.as_type_ptr();
    // SAFETY: `tp` is a live type object; we read plain fields of its PyTypeObject.
    unsafe {
        TypeLayout {
            metatype_is_type: ffi::Py_TYPE(raw.cast()) == std::ptr::addr_of_mut!(ffi::PyType_Type),
            generic_getattr: (*raw).tp_getattro.is_some_and(|f| {
                std::ptr::fn_addr_eq(f, ffi::PyObject_GenericGetAttr as ffi::getattrofunc)
            }),
            variable_size: (*raw).tp_itemsize != 0,
            heap: ffi::PyType_GetFlags(raw) & ffi::Py_TPFLAGS_HEAPTYPE != 0,
        }
    }
}

/// `object.__dict__`'s generic getter: the instance dict, materialised if need be (an
/// AttributeError for objects without one).
pub fn generic_dict<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: PyObject_GenericGetDict takes a borrowed object, checks that its type has an
    // instance dict, and returns a new reference or null with an exception.
    unsafe {
        Bound::from_owned_ptr_or_err(
            obj.py(),
            ffi::PyObject_GenericGetDict(obj.as_ptr(), std::ptr::null_mut()),
        )
    }
}

// ---- functions and cells -------------------------------------------------------------------

/// A function's fields, each as a new reference (None for NULL), read without attribute
/// lookups.
pub struct FunctionFields<'py> {
    pub code: Bound<'py, PyAny>,
    pub globals: Bound<'py, PyAny>,
    pub name: Option<Bound<'py, PyAny>>,
    pub qualname: Option<Bound<'py, PyAny>>,
    pub defaults: Option<Bound<'py, PyAny>>,
    pub kwdefaults: Option<Bound<'py, PyAny>>,
    pub closure: Option<Bound<'py, PyAny>>,
    pub doc: Option<Bound<'py, PyAny>>,
    pub dict: Option<Bound<'py, PyAny>>,
    pub module: Option<Bound<'py, PyAny>>,
    pub annotations: Option<Bound<'py, PyAny>>,
    /// 3.12+ `__type_params__`.
    pub type_params: Option<Bound<'py, PyAny>>,
}

impl<'py> FunctionFields<'py> {
    pub fn of(func: &Bound<'py, PyFunction>) -> PyResult<Self> {
        let py = func.py();
        let field = |ptr: *mut ffi::PyObject| {
            // SAFETY: `ptr` is a field of the live function `func` (a valid borrowed
            // pointer or NULL), owned from here on.
            unsafe { Bound::from_borrowed_ptr_or_opt(py, ptr) }
        };
        let missing = || pyo3::exceptions::PySystemError::new_err("function without code");
        // SAFETY: `func` is a function (its type says so), alive while we hold it; its
        // fields are plain pointers of PyFunctionObject.
        let f = unsafe { &*func.as_ptr().cast::<ffi::PyFunctionObject>() };
        Ok(FunctionFields {
            code: field(f.func_code).ok_or_else(missing)?,
            globals: field(f.func_globals).ok_or_else(missing)?,
            name: field(f.func_name),
            qualname: field(f.func_qualname),
            defaults: field(f.func_defaults),
            kwdefaults: field(f.func_kwdefaults),
            closure: field(f.func_closure),
            doc: field(f.func_doc),
            dict: field(f.func_dict),
            module: field(f.func_module),
            annotations: field(f.func_annotations),
            #[cfg(Py_3_12)]
            type_params: field(f.func_typeparams),
            #[cfg(not(Py_3_12))]
            type_params: None,
        })
    }
}

/// A function's code object.
#[inline]
pub fn function_code<'py>(func: &Bound<'py, PyFunction>) -> Bound<'py, PyAny> {
    // SAFETY: `func` is a function; PyFunction_GetCode returns its (never NULL) code as a
    // borrowed reference, owned from here on.
    unsafe { Bound::from_borrowed_ptr(func.py(), ffi::PyFunction_GetCode(func.as_ptr())) }
}

/// A function's `__dict__` when it has one (None until something is stored on the function:
/// CPython creates it on first access).
pub fn function_dict<'py>(func: &Bound<'py, PyFunction>) -> Option<Bound<'py, PyDict>> {
    // SAFETY: `func` is a function (its type says so), alive while we hold it; `func_dict`
    // is a plain pointer field of PyFunctionObject, NULL or a dict, owned from here on.
    let dict = unsafe {
        let f = &*func.as_ptr().cast::<ffi::PyFunctionObject>();
        Bound::from_borrowed_ptr_or_opt(func.py(), f.func_dict)
    };
    dict.and_then(|d| d.cast_into::<PyDict>().ok())
}

/// A function's globals dict.
pub fn function_globals<'py>(func: &Bound<'py, PyFunction>) -> PyResult<Bound<'py, PyDict>> {
    // SAFETY: `func` is a function; PyFunction_GetGlobals returns its (never NULL) globals as
    // a borrowed reference, owned from here on.
    let globals =
        unsafe { Bound::from_borrowed_ptr(func.py(), ffi::PyFunction_GetGlobals(func.as_ptr())) };
    Ok(globals.cast_into::<PyDict>()?)
}

/// `FunctionType(code, globals)` without its argument parsing, for code that needs no
/// closure; None when it does (then the caller goes through `FunctionType`, which checks the
/// closure against the code).
pub fn new_function<'py>(
    code: &Bound<'py, PyCode>,
    globals: &Bound<'py, PyDict>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = code.py();
    let free = code
        .getattr(pyo3::intern!(py, "co_freevars"))?
        .cast_into::<PyTuple>()?;
    if !free.is_empty() {
        return Ok(None);
    }
    // SAFETY: `code` is a code object without free variables and `globals` a dict;
    // PyFunction_New returns a new reference or null with an exception.
    unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyFunction_New(code.as_ptr(), globals.as_ptr()))
            .map(Some)
    }
}

/// `func.__defaults__ = defaults`.
pub fn set_defaults(func: &Bound<'_, PyFunction>, defaults: &Bound<'_, PyTuple>) -> PyResult<()> {
    // SAFETY: a function and a tuple; returns -1 with an exception on failure.
    if unsafe { ffi::PyFunction_SetDefaults(func.as_ptr(), defaults.as_ptr()) } < 0 {
        return Err(PyErr::fetch(func.py()));
    }
    Ok(())
}

/// `func.__kwdefaults__ = kwdefaults`.
pub fn set_kwdefaults(
    func: &Bound<'_, PyFunction>,
    kwdefaults: &Bound<'_, PyDict>,
) -> PyResult<()> {
    // SAFETY: a function and a dict; returns -1 with an exception on failure.
    if unsafe { ffi::PyFunction_SetKwDefaults(func.as_ptr(), kwdefaults.as_ptr()) } < 0 {
        return Err(PyErr::fetch(func.py()));
    }
    Ok(())
}

/// A new empty cell.
pub fn new_empty_cell(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: PyCell_New(NULL) makes an empty cell; a new reference or null with an error.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyCell_New(std::ptr::null_mut())) }
}
