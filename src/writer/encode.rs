//! Pure encoders: how integers, floats, lengths and memo indices look on the wire.
//!
//! Each function returns the bytes to write (a small stack array plus its length) so the
//! writer can append them in one copy. Nothing here touches Python.

use super::opcodes::*;

/// An opcode with its fixed-size argument, as a value of the exact size.
///
/// Each variant is a fixed-size array so the writer stores it with one constant-size move
/// straight from registers; a variable-length copy of bytes just written to the stack would
/// stall on store forwarding, which costs more than the whole opcode on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Small {
    B1([u8; 1]),
    B2([u8; 2]),
    B3([u8; 3]),
    B5([u8; 5]),
    B9([u8; 9]),
}

impl Small {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Small::B1(a) => a,
            Small::B2(a) => a,
            Small::B3(a) => a,
            Small::B5(a) => a,
            Small::B9(a) => a,
        }
    }
}

#[inline]
fn op1(op: u8, arg: u8) -> Small {
    Small::B2([op, arg])
}

#[inline]
fn op2(op: u8, arg: [u8; 2]) -> Small {
    Small::B3([op, arg[0], arg[1]])
}

#[inline]
fn op4(op: u8, arg: [u8; 4]) -> Small {
    Small::B5([op, arg[0], arg[1], arg[2], arg[3]])
}

#[inline]
fn op8(op: u8, a: [u8; 8]) -> Small {
    Small::B9([op, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]])
}

/// An int that fits in a signed 32-bit value, binary protocols (1+): BININT1 / BININT2 / BININT.
/// Mirrors `_pickle.c`: the shortest form whose unsigned reading equals the value.
#[inline]
pub fn binint(value: i32) -> Small {
    if (0..=0xff).contains(&value) {
        op1(BININT1, value as u8)
    } else if (0..=0xffff).contains(&value) {
        op2(BININT2, (value as u16).to_le_bytes())
    } else {
        op4(BININT, value.to_le_bytes())
    }
}

/// Protocol 0 text form of an int: `I<decimal>\n`.
pub fn text_int(value: i64) -> Vec<u8> {
    format!("I{value}\n").into_bytes()
}

/// The two's-complement little-endian body of LONG1/LONG4 for a value that fits in i64,
/// trimmed the way `pickle.encode_long` trims it (no redundant sign byte).
pub fn long_bytes_i64(value: i64) -> Vec<u8> {
    if value == 0 {
        return Vec::new();
    }
    let bytes = value.to_le_bytes();
    // nbytes = bit_length // 8 + 1, as encode_long computes it.
    let bits = if value < 0 {
        64 - (!value).leading_zeros()
    } else {
        64 - value.leading_zeros()
    };
    let mut n = (bits / 8 + 1) as usize;
    if n > 8 {
        n = 8;
    }
    // A negative value may need one byte fewer: drop a 0xff whose successor has its sign bit set.
    if value < 0 && n > 1 && bytes[n - 1] == 0xff && bytes[n - 2] & 0x80 != 0 {
        n -= 1;
    }
    bytes[..n].to_vec()
}

/// Header of a LONG1 / LONG4 opcode for a body of `n` bytes.
pub fn long_header(n: usize) -> Small {
    if n < 256 {
        op1(LONG1, n as u8)
    } else {
        op4(LONG4, (n as u32).to_le_bytes())
    }
}

/// BINFLOAT: the IEEE 754 double, big-endian.
#[inline]
pub fn binfloat(value: f64) -> Small {
    op8(BINFLOAT, value.to_be_bytes())
}

/// Which length form a str/bytes payload needs.
#[derive(Debug, PartialEq, Eq)]
pub enum TooLarge {
    /// The payload is 4 GiB or more and the protocol has no 8-byte length form.
    NeedsProtocol4,
}

/// Header for a UTF-8 str payload of `len` bytes (binary protocols).
pub fn unicode_header(len: usize, proto: u8) -> Result<Small, TooLarge> {
    if len <= 0xff && proto >= 4 {
        Ok(op1(SHORT_BINUNICODE, len as u8))
    } else if len <= 0xffff_ffff {
        Ok(op4(BINUNICODE, (len as u32).to_le_bytes()))
    } else if proto >= 4 {
        Ok(op8(BINUNICODE8, (len as u64).to_le_bytes()))
    } else {
        Err(TooLarge::NeedsProtocol4)
    }
}

/// Header for a bytes payload of `len` bytes (protocol 3+).
pub fn bytes_header(len: usize, proto: u8) -> Result<Small, TooLarge> {
    if len <= 0xff {
        Ok(op1(SHORT_BINBYTES, len as u8))
    } else if len <= 0xffff_ffff {
        Ok(op4(BINBYTES, (len as u32).to_le_bytes()))
    } else if proto >= 4 {
        Ok(op8(BINBYTES8, (len as u64).to_le_bytes()))
    } else {
        Err(TooLarge::NeedsProtocol4)
    }
}

/// Header for a bytearray payload (protocol 5).
pub fn bytearray_header(len: usize) -> Small {
    op8(BYTEARRAY8, (len as u64).to_le_bytes())
}

/// Why a memo index cannot be written.
#[derive(Debug, PartialEq, Eq)]
pub struct MemoIndexTooLarge;

/// Protocol 0 memo opcodes are text: `p<index>\n` (PUT) and `g<index>\n` (GET).
pub fn text_memo(op: u8, index: usize) -> Vec<u8> {
    format!("{}{index}\n", op as char).into_bytes()
}

/// The binary opcode that stores the top of the stack in memo slot `index` (protocol 1+).
/// Protocol 4+ uses MEMOIZE (the index is implicit); 1–3 use BINPUT/LONG_BINPUT.
#[inline]
pub fn memo_put(index: usize, proto: u8) -> Result<Small, MemoIndexTooLarge> {
    if proto >= 4 {
        Ok(Small::B1([MEMOIZE]))
    } else if index < 256 {
        Ok(op1(BINPUT, index as u8))
    } else if index <= 0xffff_ffff {
        Ok(op4(LONG_BINPUT, (index as u32).to_le_bytes()))
    } else {
        Err(MemoIndexTooLarge)
    }
}

/// The binary opcode that pushes memo slot `index` (protocol 1+).
#[inline]
pub fn memo_get(index: usize) -> Result<Small, MemoIndexTooLarge> {
    if index < 256 {
        Ok(op1(BINGET, index as u8))
    } else if index <= 0xffff_ffff {
        Ok(op4(LONG_BINGET, (index as u32).to_le_bytes()))
    } else {
        Err(MemoIndexTooLarge)
    }
}

/// EXT1 / EXT2 / EXT4 for a `copyreg` extension code (1 ..= 0x7fffffff).
pub fn ext(code: u32) -> Small {
    if code <= 0xff {
        op1(EXT1, code as u8)
    } else if code <= 0xffff {
        op2(EXT2, (code as u16).to_le_bytes())
    } else {
        op4(EXT4, code.to_le_bytes())
    }
}

/// The protocol 0 escaping of a str for the UNICODE opcode, applied to code points:
/// backslash, NUL, newline, carriage return and ^Z become `\uXXXX`; code points of 256 and
/// above become `\uXXXX` / `\UXXXXXXXX` (what `raw-unicode-escape` does); the rest are Latin-1 bytes.
pub fn raw_unicode_escape(chars: impl Iterator<Item = u32>, out: &mut Vec<u8>) {
    for c in chars {
        if c >= 0x10000 {
            out.extend_from_slice(format!("\\U{c:08x}").as_bytes());
        } else if c >= 256 || c == u32::from(b'\\') || c == 0 || c == 10 || c == 13 || c == 0x1a {
            out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
        } else {
            out.push(c as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binint_forms() {
        assert_eq!(binint(0).as_slice(), &[BININT1, 0]);
        assert_eq!(binint(255).as_slice(), &[BININT1, 255]);
        assert_eq!(binint(256).as_slice(), &[BININT2, 0, 1]);
        assert_eq!(binint(65535).as_slice(), &[BININT2, 255, 255]);
        assert_eq!(binint(65536).as_slice(), &[BININT, 0, 0, 1, 0]);
        assert_eq!(binint(-1).as_slice(), &[BININT, 255, 255, 255, 255]);
        assert_eq!(binint(i32::MIN).as_slice(), &[BININT, 0, 0, 0, 0x80]);
    }

    #[test]
    fn long_bodies_match_encode_long() {
        // Values and bodies as pickle.encode_long produces them.
        assert_eq!(long_bytes_i64(0), b"");
        assert_eq!(long_bytes_i64(255).as_slice(), &[0xff, 0x00]);
        assert_eq!(long_bytes_i64(-256).as_slice(), &[0x00, 0xff]);
        assert_eq!(long_bytes_i64(-128).as_slice(), &[0x80]);
        assert_eq!(long_bytes_i64(-129).as_slice(), &[0x7f, 0xff]);
        assert_eq!(long_bytes_i64(1 << 31).as_slice(), &[0, 0, 0, 0x80, 0]);
        assert_eq!(long_bytes_i64(i64::MAX).as_slice(), &i64::MAX.to_le_bytes());
        assert_eq!(long_bytes_i64(i64::MIN).as_slice(), &i64::MIN.to_le_bytes());
        assert_eq!(
            long_bytes_i64(-(1 << 31) - 1).as_slice(),
            &[0xff, 0xff, 0xff, 0x7f, 0xff]
        );
    }

    #[test]
    fn length_forms() {
        assert_eq!(
            unicode_header(3, 4).unwrap().as_slice(),
            &[SHORT_BINUNICODE, 3]
        );
        assert_eq!(
            unicode_header(3, 3).unwrap().as_slice(),
            &[BINUNICODE, 3, 0, 0, 0]
        );
        assert_eq!(unicode_header(1 << 32, 3), Err(TooLarge::NeedsProtocol4));
        assert_eq!(
            unicode_header(1 << 32, 4).unwrap().as_slice()[0],
            BINUNICODE8
        );
        assert_eq!(
            bytes_header(256, 3).unwrap().as_slice(),
            &[BINBYTES, 0, 1, 0, 0]
        );
        assert_eq!(bytes_header(1 << 32, 5).unwrap().as_slice().len(), 9);
        assert_eq!(
            bytearray_header(2).as_slice(),
            &[BYTEARRAY8, 2, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn memo_forms() {
        assert_eq!(memo_put(7, 5).unwrap().as_slice(), &[MEMOIZE]);
        assert_eq!(text_memo(PUT, 7), b"p7\n");
        assert_eq!(
            memo_put(300, 2).unwrap().as_slice(),
            &[LONG_BINPUT, 44, 1, 0, 0]
        );
        assert_eq!(memo_get(3).unwrap().as_slice(), &[BINGET, 3]);
        assert_eq!(text_memo(GET, 12), b"g12\n");
        assert_eq!(memo_get(1 << 33), Err(MemoIndexTooLarge));
    }

    #[test]
    fn ext_and_float() {
        assert_eq!(ext(1).as_slice(), &[EXT1, 1]);
        assert_eq!(ext(0x100).as_slice(), &[EXT2, 0, 1]);
        assert_eq!(ext(0x10000).as_slice(), &[EXT4, 0, 0, 1, 0]);
        assert_eq!(
            binfloat(1.0).as_slice(),
            &[BINFLOAT, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn protocol0_escape() {
        let mut out = Vec::new();
        raw_unicode_escape(
            "a\\\n\u{e9}\u{20ac}\u{1f600}".chars().map(u32::from),
            &mut out,
        );
        assert_eq!(out, b"a\\u005c\\u000a\xe9\\u20ac\\U0001f600");
    }
}
