//! Buffers: bytearray (BYTEARRAY8 at protocol 5, a `bytearray(bytes)` reduction before) and
//! `pickle.PickleBuffer`, in-band or out-of-band through `buffer_callback`.

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyTuple};

use super::Dumper;
use crate::errors::{pickling_error, SaveResult};
use crate::ffi::BufferView;
use crate::writer::encode;
use crate::writer::opcodes::*;

impl<'py> Dumper<'py> {
    pub(super) fn save_bytearray(&mut self, array: &Bound<'py, PyByteArray>) -> SaveResult {
        let py = self.py;
        let obj = array.as_any();
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
        let owned = BufferView::get(obj)?;
        let (readonly, contiguous) = (owned.readonly(), owned.is_contiguous());
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
            if self.trace.is_some() {
                let len = owned.as_bytes()?.len();
                self.in_entry(
                    super::trace::Kind::Buffer,
                    || (format!("{len} bytes, out of band"), None),
                    |_| Ok(()),
                )?;
            }
            return if readonly {
                self.write(&[NEXT_BUFFER, READONLY_BUFFER])
            } else {
                self.write(&[NEXT_BUFFER])
            };
        }
        // Borrowed from `owned`, which is dropped only after the last use of the slice:
        // whatever user code did or does meanwhile (release the PickleBuffer, drop its base),
        // the memory stays.
        let data = owned.as_bytes()?;
        let result = self.in_entry(
            super::trace::Kind::Buffer,
            || (format!("{} bytes, in band", data.len()), None),
            |this| {
                if readonly {
                    this.save_bytes_data(obj, data)
                } else {
                    this.write_bytes(&encode::bytearray_header(data.len()), data, Some(obj))
                        .and_then(|()| this.memo_put(obj))
                }
            },
        );
        drop(owned);
        result
    }
}
