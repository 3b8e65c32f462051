//! Buffers: bytearray (BYTEARRAY8 at protocol 5, a `bytearray(bytes)` reduction before) and
//! `pickle.PickleBuffer`, in-band or out-of-band through `buffer_callback`.

use std::marker::PhantomData;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyTuple};

use super::Dumper;
use crate::errors::{pickling_error, SaveResult};
use crate::writer::encode;
use crate::writer::opcodes::*;

/// A buffer exported to us by `PyObject_GetBuffer`, released when dropped: while it lives, the
/// exporter keeps the memory alive and in place (a bytearray refuses to resize), whatever user
/// code does to the object we got it from.
///
/// Invariant: `view` was filled by a successful `PyObject_GetBuffer` and is released exactly
/// once, by `drop`; the lifetime ties the value to an attached interpreter. The `Py_buffer` is
/// boxed because exporters may point its fields into the struct itself.
struct OwnedView<'py> {
    view: Box<ffi::Py_buffer>,
    _py: PhantomData<Python<'py>>,
}

impl<'py> OwnedView<'py> {
    /// `PyObject_GetBuffer(obj, PyBUF_FULL_RO)`, what `PickleBuffer` itself asks its base for.
    fn get(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        let mut view = Box::new(ffi::Py_buffer::new());
        // SAFETY: `obj` is a live object and `view` points to writable storage for a
        // Py_buffer; on failure nothing needs releasing and an exception is set.
        if unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, ffi::PyBUF_FULL_RO) } < 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(OwnedView {
            view,
            _py: PhantomData,
        })
    }
}

impl Drop for OwnedView<'_> {
    fn drop(&mut self) {
        // SAFETY: a view filled by PyObject_GetBuffer, released once, with the interpreter
        // attached (type invariant).
        unsafe { ffi::PyBuffer_Release(&mut *self.view) };
    }
}

impl<'py> Dumper<'py> {
    pub(super) fn save_bytearray(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        let py = self.py;
        // SAFETY: dispatch guarantees an exact bytearray.
        let array = unsafe { obj.cast_unchecked::<PyByteArray>() };
        if self.proto < 5 {
            let args = if array.is_empty() {
                PyTuple::empty(py)
            } else {
                // A new bytes object every time, as CPython makes (PyBytes::new would hand out
                // the shared one-byte singletons, which the memo would then match).
                let data = array.to_vec();
                let bytes = PyBytes::new_with(py, data.len(), |buf| {
                    buf.copy_from_slice(&data);
                    Ok(())
                })?;
                PyTuple::new(py, [bytes])?
            };
            return self.save_reduce_parts(
                &py.get_type::<PyByteArray>().into_any(),
                &args,
                Some(obj),
            );
        }
        // Copied out first: user code run by a later `save` may resize the bytearray, but
        // nothing runs between this copy and the write.
        let data = array.to_vec();
        self.save_bytearray_data(obj, &data)
    }

    fn save_bytearray_data(&mut self, obj: &Bound<'py, PyAny>, data: &[u8]) -> SaveResult {
        self.write_bytes(&encode::bytearray_header(data.len()), data, None)?;
        self.memo_put(obj)
    }

    pub(super) fn save_picklebuffer(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        let py = self.py;
        if self.proto < 5 {
            // CPython's wording, typo included before 3.13.
            let msg = if cfg!(Py_3_13) {
                "PickleBuffer can only be pickled with protocol >= 5"
            } else {
                "PickleBuffer can only pickled with protocol >= 5"
            };
            return Err(pickling_error(py, msg).into());
        }
        // Our own export of the PickleBuffer's base, not the PickleBuffer's view: user code
        // runs below (the callback, the truth value of what it returns, a file's write()) and
        // may release the PickleBuffer and drop the last reference to its base. `owned` keeps
        // the memory valid until the end of this function, after the last byte is read. A
        // released PickleBuffer raises ValueError here, as `pickle` does.
        let owned = OwnedView::get(obj)?;
        let view: *const ffi::Py_buffer = &*owned.view;
        // SAFETY: a view filled by PyObject_GetBuffer and not yet released (`owned` lives);
        // read-only access to its fields.
        let (buf, len, readonly, contiguous) = unsafe {
            let v = &*view;
            (
                v.buf as *const u8,
                usize::try_from(v.len),
                v.readonly != 0,
                v.suboffsets.is_null()
                    && ffi::PyBuffer_IsContiguous(view, b'A' as std::ffi::c_char) != 0,
            )
        };
        // What an exporter fills in is not ours to trust: no slice from a negative length or a
        // null pointer.
        let len = match len {
            Ok(len) if len == 0 || !buf.is_null() => len,
            _ => {
                return Err(pyo3::exceptions::PyBufferError::new_err(
                    "the PickleBuffer's exporter gave an invalid buffer",
                )
                .into())
            }
        };
        if !contiguous {
            return Err(pickling_error(
                py,
                "PickleBuffer can not be pickled when pointing to a non-contiguous buffer",
            )
            .into());
        }
        let in_band = match self.buffer_callback.clone() {
            Some(callback) => callback.call1((obj,))?.is_truthy()?,
            None => true,
        };
        if !in_band {
            return if readonly {
                self.write(&[NEXT_BUFFER, READONLY_BUFFER])
            } else {
                self.write(&[NEXT_BUFFER])
            };
        }
        let data: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: a contiguous buffer of `len` bytes at `buf`, exported to us by `owned`,
            // which is dropped only after the last use of the slice: whatever user code did or
            // does meanwhile (release the PickleBuffer, drop its base), the memory stays.
            unsafe { std::slice::from_raw_parts(buf, len) }
        };
        let result = if readonly {
            self.save_bytes_data(obj, data)
        } else {
            self.write_bytes(&encode::bytearray_header(data.len()), data, Some(obj))
                .and_then(|()| self.memo_put(obj))
        };
        drop(owned);
        result
    }
}
