//! The Python side of the writer's storage: a `bytes` object grown in place.
//!
//! `dumps` builds its result directly inside a `bytes` object (as `_pickle.c` does), so large
//! outputs are copied once, not twice. This is the only module that writes into a `bytes`
//! object's storage; every `unsafe` block here relies on the invariants listed on
//! [`PyBytesBuffer`].

use std::marker::PhantomData;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::ffi::raw::_PyBytes_Resize;
use crate::writer::{Buffer, OutOfMemory};

/// A `bytes` object under construction.
///
/// Invariants: `obj` is null or an exact `bytes` object of size `cap` that only this value
/// references (it never escapes before [`PyBytesBuffer::finish`]); the lifetime ties the value
/// to an attached interpreter, so its `Drop` may release the object.
pub struct PyBytesBuffer<'py> {
    obj: *mut ffi::PyObject,
    cap: usize,
    _py: PhantomData<Python<'py>>,
}

impl<'py> PyBytesBuffer<'py> {
    pub fn new(_py: Python<'py>) -> Self {
        PyBytesBuffer {
            obj: std::ptr::null_mut(),
            cap: 0,
            _py: PhantomData,
        }
    }

    /// Shrink to the `len` bytes written and hand the object over.
    pub fn finish(mut self, py: Python<'py>, len: usize) -> PyResult<Bound<'py, PyBytes>> {
        if self.obj.is_null() || len == 0 {
            return Ok(PyBytes::new(py, &[]));
        }
        let mut obj = std::mem::replace(&mut self.obj, std::ptr::null_mut());
        if len != self.cap {
            // SAFETY: `obj` is a bytes object only we reference (type invariant); on failure
            // CPython frees it, sets `obj` to null and raises MemoryError.
            if unsafe { _PyBytes_Resize(&raw mut obj, len as ffi::Py_ssize_t) } < 0 {
                return Err(PyErr::fetch(py));
            }
        }
        // SAFETY: `obj` is a new, owned reference to a bytes object.
        Ok(unsafe { Bound::from_owned_ptr(py, obj).cast_into_unchecked() })
    }
}

impl Buffer for PyBytesBuffer<'_> {
    fn capacity(&self) -> usize {
        self.cap
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        if self.obj.is_null() {
            return std::ptr::NonNull::dangling().as_ptr();
        }
        // SAFETY: `obj` is a live bytes object (type invariant).
        unsafe { ffi::PyBytes_AS_STRING(self.obj) as *mut u8 }
    }

    fn grow(&mut self, _len: usize, min_capacity: usize) -> Result<(), OutOfMemory> {
        let Ok(size) = ffi::Py_ssize_t::try_from(min_capacity) else {
            return Err(OutOfMemory);
        };
        let ok = if self.obj.is_null() {
            // SAFETY: a null source asks CPython for an uninitialised bytes object of `size`.
            self.obj = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), size) };
            !self.obj.is_null()
        } else {
            // SAFETY: see `finish`; the first `len` bytes are preserved by the resize.
            unsafe { _PyBytes_Resize(&raw mut self.obj, size) >= 0 }
        };
        if ok {
            self.cap = min_capacity;
            Ok(())
        } else {
            // The MemoryError CPython raised is replaced by the caller's own; clear it so no
            // exception stays set while we keep calling into the interpreter.
            // SAFETY: the interpreter is attached (lifetime invariant).
            unsafe { ffi::PyErr_Clear() };
            self.obj = std::ptr::null_mut();
            self.cap = 0;
            Err(OutOfMemory)
        }
    }
}

impl Drop for PyBytesBuffer<'_> {
    fn drop(&mut self) {
        // SAFETY: the interpreter is attached for 'py; `obj` is null or owned by us.
        unsafe { ffi::Py_XDECREF(self.obj) };
    }
}
