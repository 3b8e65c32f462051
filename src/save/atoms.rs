//! Atoms: None, bool, int, float, str and bytes (`save_none` ... `save_unicode` in `_pickle.c`).

use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyString, PyTuple};

use super::Dumper;
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

    pub(super) fn save_long(&mut self, obj: &Bound<'py, PyInt>) -> SaveResult {
        if let Some(value) = crate::ffi::int_as_i64(obj)? {
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
    fn save_big_long(&mut self, obj: &Bound<'py, PyInt>) -> SaveResult {
        let raw = crate::ffi::int_to_signed_le_bytes(obj)?;
        let mut n = raw.len();
        // `raw` has at least one byte (one more than the bit length needs).
        let negative = raw.last().is_some_and(|b| b & 0x80 != 0);
        // A negative value may need one byte fewer: drop a 0xff whose successor has its sign bit.
        if negative && n > 1 && raw[n - 1] == 0xff && raw[n - 2] & 0x80 != 0 {
            n -= 1;
        }
        self.write_small(encode::long_header(n))?;
        self.write(&raw[..n])
    }

    pub(super) fn save_float(&mut self, obj: &Bound<'py, PyFloat>) -> SaveResult {
        let value = obj.value();
        if self.bin {
            self.write_small(encode::binfloat(value))
        } else {
            let repr = obj.repr()?;
            self.write(&[FLOAT])?;
            self.write(repr.to_cow()?.as_bytes())?;
            self.write(b"\n")
        }
    }

    pub(super) fn save_str(&mut self, obj: &Bound<'py, PyString>) -> SaveResult {
        self.write_str(obj)?;
        self.memo_put(obj.as_any())
    }

    /// The opcode that pushes a str, without a memo entry.
    pub(super) fn write_str(&mut self, obj: &Bound<'py, PyString>) -> SaveResult {
        if !self.bin {
            return self.write_str_text(obj.as_any());
        }
        if let Some(bytes) = crate::ffi::str_utf8(obj) {
            self.write_str_payload(bytes, None)
        } else {
            // Lone surrogates: not UTF-8; pickle writes them with surrogatepass.
            let encoded = crate::ffi::str_encode_surrogatepass(obj)?;
            self.write_str_payload(encoded.as_bytes(), Some(encoded.as_any()))
        }
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
    fn write_str_text(&mut self, obj: &Bound<'py, PyAny>) -> SaveResult {
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
        self.write(&escaped)
    }

    pub(super) fn save_bytes(&mut self, bytes: &Bound<'py, PyBytes>) -> SaveResult {
        if self.proto < 3 {
            return self.save_bytes_reduced(bytes, Some(bytes.as_any()));
        }
        self.save_bytes_data(bytes.as_any(), bytes.as_bytes())
    }

    /// A bytes object without a memo entry.
    pub(super) fn write_bytes_value(&mut self, bytes: &Bound<'py, PyBytes>) -> SaveResult {
        if self.proto < 3 {
            return self.save_bytes_reduced(bytes, None);
        }
        self.write_bytes_unmemoised(bytes.as_bytes(), Some(bytes.as_any()))
    }

    /// Protocols 0-2 have no bytes opcode: `_codecs.encode(latin-1 text, "latin1")`, or
    /// `bytes()`, memoised as `memo_as` when given.
    fn save_bytes_reduced(
        &mut self,
        bytes: &Bound<'py, PyBytes>,
        memo_as: Option<&Bound<'py, PyAny>>,
    ) -> SaveResult {
        let py = self.py;
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
        self.save_reduce_parts(&callable, &args, memo_as)
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
