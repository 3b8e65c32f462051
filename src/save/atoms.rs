//! Atoms: None, bool, int, float, str and bytes (`save_none` ... `save_unicode` in `_pickle.c`).

use pyo3::exceptions::PyOverflowError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyTuple};

use super::Dumper;

unsafe extern "C" {
    // Exported by CPython 3.9–3.13 (non-limited API); pyo3-ffi does not bind it.
    fn _PyLong_NumBits(v: *mut ffi::PyObject) -> usize;
}

/// `_PyLong_AsByteArray(v, bytes, n, little_endian=1, is_signed=1)`; 3.13 added a sixth
/// argument (raise on overflow, which we want).
///
/// # Safety
/// `v` must be an int and `out` large enough for its signed little-endian form.
unsafe fn long_as_byte_array(v: *mut ffi::PyObject, out: &mut [u8]) -> std::ffi::c_int {
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
        // SAFETY: forwarded from the caller.
        unsafe { _PyLong_AsByteArray(v, out.as_mut_ptr(), out.len(), 1, 1, 1) }
    }
    #[cfg(not(Py_3_13))]
    {
        // SAFETY: forwarded from the caller.
        unsafe { ffi::_PyLong_AsByteArray(v.cast(), out.as_mut_ptr(), out.len(), 1, 1) }
    }
}
use crate::errors::SaveResult;
use crate::writer::encode::{self, TooLarge};
use crate::writer::opcodes::*;

impl<'py> Dumper<'py> {
    pub(super) fn save_bool(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        let value = obj.is_truthy()?;
        if self.proto >= 2 {
            self.write(&[if value { NEWTRUE } else { NEWFALSE }])
        } else {
            self.write(if value { b"I01\n" } else { b"I00\n" })
        }
    }

    pub(super) fn save_long(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        let mut overflow: std::ffi::c_int = 0;
        // SAFETY: `obj` is an exact int; the call only reads it.
        let value = unsafe { ffi::PyLong_AsLongLongAndOverflow(obj.as_ptr(), &mut overflow) };
        if overflow == 0 {
            if value == -1 {
                if let Some(err) = PyErr::take(self.py) {
                    return Err(err.into());
                }
            }
            if let Ok(small) = i32::try_from(value) {
                return if self.bin {
                    self.write_small(encode::binint(small))
                } else {
                    self.write(&encode::text_int(value))
                };
            }
            if self.proto >= 2 {
                let body = encode::long_bytes_i64(value);
                self.write_small(encode::long_header(body.len()))?;
                return self.write(&body);
            }
        } else if self.proto >= 2 {
            return self.save_big_long(obj);
        }
        // Protocols 0 and 1 past 32 bits: the decimal text with Python 2's trailing L.
        let repr = obj.repr()?;
        self.write(&[LONG])?;
        self.write(repr.to_cow()?.as_bytes())?;
        self.write(b"L\n")
    }

    /// An int beyond 64 bits, protocol 2+: LONG1/LONG4 with its two's-complement bytes
    /// (`pickle.encode_long`).
    #[cold]
    fn save_big_long(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        // SAFETY: `obj` is an exact int.
        let nbits = unsafe { _PyLong_NumBits(obj.as_ptr()) };
        if nbits == usize::MAX {
            return Err(PyErr::fetch(self.py).into());
        }
        let nbytes = (nbits >> 3) + 1;
        if nbytes > 0x7fff_ffff {
            return Err(PyOverflowError::new_err("int too large to pickle").into());
        }
        let mut raw = vec![0u8; nbytes];
        // SAFETY: `raw` has room for `nbytes` bytes, enough for the signed value.
        let status = unsafe { long_as_byte_array(obj.as_ptr(), &mut raw) };
        if status < 0 {
            return Err(PyErr::fetch(self.py).into());
        }
        // In bounds: nbytes = nbits / 8 + 1 >= 1, and raw[n - 2] is read only when n > 1.
        let negative = raw[nbytes - 1] & 0x80 != 0;
        let mut n = nbytes;
        // A negative value may need one byte fewer: drop a 0xff whose successor has its sign bit.
        if negative && n > 1 && raw[n - 1] == 0xff && raw[n - 2] & 0x80 != 0 {
            n -= 1;
        }
        self.write_small(encode::long_header(n))?;
        self.write(&raw[..n])
    }

    pub(super) fn save_float(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        // SAFETY: dispatch guarantees an exact float.
        let value = unsafe { obj.cast_unchecked::<PyFloat>() }.value();
        if self.bin {
            self.write_small(encode::binfloat(value))
        } else {
            let repr = obj.repr()?;
            self.write(&[FLOAT])?;
            self.write(repr.to_cow()?.as_bytes())?;
            self.write(b"\n")
        }
    }

    pub(super) fn save_str(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        if !self.bin {
            return self.save_str_text(obj);
        }
        let mut size: ffi::Py_ssize_t = 0;
        // SAFETY: `obj` is an exact str; the UTF-8 buffer is cached inside it and stays valid
        // while `obj` lives (we hold it for the whole call).
        let data = unsafe { ffi::PyUnicode_AsUTF8AndSize(obj.as_ptr(), &mut size) };
        if data.is_null() {
            // Lone surrogates: not UTF-8; pickle writes them with surrogatepass.
            let _ = PyErr::take(self.py);
            let encoded = obj.call_method1(
                pyo3::intern!(self.py, "encode"),
                (
                    pyo3::intern!(self.py, "utf-8"),
                    pyo3::intern!(self.py, "surrogatepass"),
                ),
            )?;
            let bytes = encoded.cast::<PyBytes>()?.as_bytes();
            self.write_str_payload(bytes, Some(&encoded))?;
        } else {
            // SAFETY: CPython returned a buffer of `size` bytes owned by `obj`.
            let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size as usize) };
            self.write_str_payload(bytes, None)?;
        }
        self.memo_put(obj)
    }

    pub(super) fn write_str_payload(
        &mut self,
        bytes: &[u8],
        payload_obj: Option<&Bound<'py, PyAny>>,
    ) -> SaveResult {
        match encode::unicode_header(bytes.len(), self.proto) {
            Ok(header) => self.write_bytes(&header, bytes, payload_obj),
            Err(TooLarge::NeedsProtocol4) => Err(PyOverflowError::new_err(
                "serializing a string larger than 4 GiB requires pickle protocol 4 or higher",
            )
            .into()),
        }
    }

    /// Protocol 0: UNICODE with raw-unicode-escape and pickle's extra escapes.
    fn save_str_text(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        let py = self.py;
        let utf32 = obj.call_method1(
            pyo3::intern!(py, "encode"),
            (
                pyo3::intern!(py, "utf-32-le"),
                pyo3::intern!(py, "surrogatepass"),
            ),
        )?;
        let raw = utf32.cast::<PyBytes>()?.as_bytes();
        let mut escaped = Vec::with_capacity(raw.len() / 4 + 2);
        escaped.push(UNICODE);
        // c[0..4] in bounds: chunks_exact(4) yields 4-byte chunks only.
        encode::raw_unicode_escape(
            raw.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            &mut escaped,
        );
        escaped.push(b'\n');
        self.write(&escaped)?;
        self.memo_put(obj)
    }

    pub(super) fn save_bytes(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
        let py = self.py;
        // SAFETY: dispatch guarantees an exact bytes object.
        let bytes = unsafe { obj.cast_unchecked::<PyBytes>() };
        if self.proto < 3 {
            // No bytes opcode: reduce to `_codecs.encode(latin-1 text, "latin1")`, or `bytes()`.
            let (callable, args) = if bytes.as_bytes().is_empty() {
                (py.get_type::<PyBytes>().into_any(), PyTuple::empty(py))
            } else {
                let text =
                    bytes.call_method1(pyo3::intern!(py, "decode"), (self.lk.latin1.bind(py),))?;
                (
                    self.lk.codecs_encode.bind(py).clone(),
                    PyTuple::new(py, [text, self.lk.latin1.bind(py).clone().into_any()])?,
                )
            };
            return self.save_reduce_parts(&callable, &args, Some(obj));
        }
        self.save_bytes_data(obj, bytes.as_bytes())
    }

    /// SHORT_BINBYTES / BINBYTES / BINBYTES8 for `data`, then memoise `obj`.
    pub(super) fn save_bytes_data(&mut self, obj: &Bound<'py, PyAny>, data: &[u8]) -> SaveResult {
        self.write_bytes_unmemoised(data, Some(obj))?;
        self.memo_put(obj)
    }

    /// BINBYTES and friends (protocol 3+), without a memo entry.
    pub(super) fn write_bytes_unmemoised(
        &mut self,
        data: &[u8],
        obj: Option<&Bound<'py, PyAny>>,
    ) -> SaveResult {
        match encode::bytes_header(data.len(), self.proto) {
            Ok(header) => self.write_bytes(&header, data, obj),
            Err(TooLarge::NeedsProtocol4) => Err(PyOverflowError::new_err(
                "serializing a bytes object larger than 4 GiB requires pickle protocol 4 or higher",
            )
            .into()),
        }
    }
}
