//! The writer layer: bytes, opcodes and frames, with no Python in sight.
//!
//! `Output` appends to a growable [`Buffer`] and implements protocol 4 framing the way
//! `_pickle.c` does: a 9-byte FRAME header is reserved when a frame opens, back-patched when it
//! is committed (or removed if the frame holds fewer than 4 bytes), and a frame is committed at
//! the first opcode boundary after it reaches 64 KiB. Payloads of 64 KiB and more are written
//! outside any frame so that `dump(obj, file)` can hand them to the file without copying.

// The self-checking driver exists for `cargo test` and the fuzz target only.
#[cfg(any(test, feature = "fuzzing"))]
pub mod check;
pub mod encode;
pub mod opcodes;

/// A frame is committed at the first opcode boundary once it holds this many bytes.
pub const FRAME_SIZE_TARGET: usize = 64 * 1024;
/// Frames shorter than this are not worth their header: the header is dropped.
pub const FRAME_SIZE_MIN: usize = 4;
/// FRAME opcode plus its 8-byte length.
pub const FRAME_HEADER_SIZE: usize = 9;
/// Initial buffer size (`_pickle.c`'s WRITE_BUF_SIZE).
pub const WRITE_BUF_SIZE: usize = 4096;

/// Copy `src` to `dst`. Opcodes and their arguments are a few bytes long: for those, a
/// couple of (possibly overlapping) fixed-size moves beat a call to `memcpy`, as `_pickle.c`
/// also finds for short writes.
///
/// # Safety
/// `dst` must be valid for `src.len()` bytes of writes and not overlap `src`.
#[inline(always)]
unsafe fn copy_bytes(src: &[u8], dst: *mut u8) {
    let n = src.len();
    let s = src.as_ptr();
    // SAFETY: in every arm, each read lies within `src` and each write within `dst[..n]`,
    // which the caller guarantees is valid and disjoint from `src`.
    unsafe {
        if n >= 16 {
            std::ptr::copy_nonoverlapping(s, dst, n);
        } else if n >= 8 {
            let a = std::ptr::read_unaligned(s.cast::<u64>());
            let b = std::ptr::read_unaligned(s.add(n - 8).cast::<u64>());
            std::ptr::write_unaligned(dst.cast::<u64>(), a);
            std::ptr::write_unaligned(dst.add(n - 8).cast::<u64>(), b);
        } else if n >= 4 {
            let a = std::ptr::read_unaligned(s.cast::<u32>());
            let b = std::ptr::read_unaligned(s.add(n - 4).cast::<u32>());
            std::ptr::write_unaligned(dst.cast::<u32>(), a);
            std::ptr::write_unaligned(dst.add(n - 4).cast::<u32>(), b);
        } else if n >= 2 {
            let a = std::ptr::read_unaligned(s.cast::<u16>());
            let b = std::ptr::read_unaligned(s.add(n - 2).cast::<u16>());
            std::ptr::write_unaligned(dst.cast::<u16>(), a);
            std::ptr::write_unaligned(dst.add(n - 2).cast::<u16>(), b);
        } else if n == 1 {
            *dst = *s;
        }
    }
}

/// The buffer could not grow.
#[derive(Debug, PartialEq, Eq)]
pub struct OutOfMemory;

/// Storage the writer appends to. Implemented for `Vec<u8>` (tests, pure Rust) and by the
/// Python layer for a `bytes` object under construction (so `dumps` returns it without a copy).
pub trait Buffer {
    /// Bytes that can be written without growing.
    fn capacity(&self) -> usize;
    /// Start of the storage; valid for `capacity()` bytes until the next `grow`.
    fn as_mut_ptr(&mut self) -> *mut u8;
    /// Make room for at least `min_capacity` bytes, keeping the first `len` bytes.
    fn grow(&mut self, len: usize, min_capacity: usize) -> Result<(), OutOfMemory>;
}

impl Buffer for Vec<u8> {
    fn capacity(&self) -> usize {
        self.len()
    }
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_slice().as_mut_ptr()
    }
    fn grow(&mut self, _len: usize, min_capacity: usize) -> Result<(), OutOfMemory> {
        self.try_reserve(min_capacity.saturating_sub(self.len()))
            .map_err(|_| OutOfMemory)?;
        self.resize(min_capacity, 0);
        Ok(())
    }
}

/// Appends opcodes to a [`Buffer`], managing protocol 4 frames.
pub struct Output<B: Buffer> {
    buf: B,
    /// The buffer's storage and capacity, cached: refreshed after every `grow`.
    ptr: *mut u8,
    cap: usize,
    len: usize,
    /// Where the open frame's header starts, if a frame is open.
    frame_start: Option<usize>,
    /// Whether writes open frames (protocol 4+, after the PROTO opcode).
    framing: bool,
    /// Growth stops at this capacity unless a single write needs more (`max_bytes`: the dump
    /// fails past it anyway, so the buffer need not be ready for more).
    growth_limit: usize,
}

impl<B: Buffer> Output<B> {
    pub fn new(mut buf: B) -> Self {
        Output {
            ptr: buf.as_mut_ptr(),
            cap: buf.capacity(),
            buf,
            len: 0,
            frame_start: None,
            framing: false,
            growth_limit: usize::MAX,
        }
    }

    /// See `growth_limit`.
    pub fn set_growth_limit(&mut self, limit: usize) {
        self.growth_limit = limit;
    }

    /// Number of bytes written so far (including any open frame's reserved header).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn set_framing(&mut self, framing: bool) {
        self.framing = framing;
    }

    pub fn framing(&self) -> bool {
        self.framing
    }

    /// The bytes written so far.
    pub fn as_slice(&mut self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the first `len` bytes of the buffer were all written by `write`, and the
        // buffer is valid for `cap >= len` bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Append `data`, opening a frame first if framing is on and none is open.
    #[inline(always)]
    pub fn write(&mut self, data: &[u8]) -> Result<(), OutOfMemory> {
        let needs_header = self.framing && self.frame_start.is_none();
        if !needs_header && data.len() <= self.cap - self.len {
            // SAFETY: `len + data.len() <= cap`, the cached capacity of `ptr`; `data` cannot
            // alias our storage because `&mut self` is held.
            unsafe { copy_bytes(data, self.ptr.add(self.len)) };
            self.len += data.len();
            return Ok(());
        }
        self.write_slow(data)
    }

    /// `write` when a frame must be opened or the buffer must grow.
    #[inline(never)]
    fn write_slow(&mut self, data: &[u8]) -> Result<(), OutOfMemory> {
        let header = if self.framing && self.frame_start.is_none() {
            FRAME_HEADER_SIZE
        } else {
            0
        };
        let needed = self.len + header + data.len();
        if needed > self.cap {
            self.grow_for(needed)?;
        }
        if header != 0 {
            self.frame_start = Some(self.len);
            // SAFETY: `needed <= cap`, so `len + FRAME_HEADER_SIZE` bytes are in bounds.
            // The header bytes are placeholders, patched in `commit_frame`.
            unsafe { std::ptr::write_bytes(self.ptr.add(self.len), 0xfe, FRAME_HEADER_SIZE) };
            self.len += FRAME_HEADER_SIZE;
        }
        // SAFETY: `len + data.len() <= needed <= cap`; no aliasing (see `write`).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(self.len), data.len()) };
        self.len += data.len();
        Ok(())
    }

    /// Append an encoded opcode; each size is one constant-size store.
    #[inline(always)]
    pub fn write_small(&mut self, small: encode::Small) -> Result<(), OutOfMemory> {
        use encode::Small;
        match small {
            Small::B1(a) => self.write(&a),
            Small::B2(a) => self.write(&a),
            Small::B3(a) => self.write(&a),
            Small::B5(a) => self.write(&a),
            Small::B9(a) => self.write(&a),
        }
    }

    #[inline]
    pub fn write_byte(&mut self, byte: u8) -> Result<(), OutOfMemory> {
        self.write(&[byte])
    }

    #[cold]
    fn grow_for(&mut self, needed: usize) -> Result<(), OutOfMemory> {
        // Grow by half again, as `_pickle.c` does, so appends stay amortised O(1).
        let target = needed
            .checked_add(needed / 2)
            .ok_or(OutOfMemory)?
            .max(WRITE_BUF_SIZE)
            .min(self.growth_limit.max(needed));
        self.buf.grow(self.len, target)?;
        self.ptr = self.buf.as_mut_ptr();
        self.cap = self.buf.capacity();
        Ok(())
    }

    /// Close the open frame: write its header, or drop the header if the frame is tiny.
    pub fn commit_frame(&mut self) {
        let Some(start) = self.frame_start.take() else {
            return;
        };
        let frame_len = self.len - start - FRAME_HEADER_SIZE;
        let base = self.ptr;
        if frame_len >= FRAME_SIZE_MIN {
            let mut header = [0u8; FRAME_HEADER_SIZE];
            header[0] = opcodes::FRAME;
            header[1..].copy_from_slice(&(frame_len as u64).to_le_bytes());
            // SAFETY: `start + FRAME_HEADER_SIZE <= len <= capacity`.
            unsafe {
                std::ptr::copy_nonoverlapping(header.as_ptr(), base.add(start), FRAME_HEADER_SIZE);
            };
        } else {
            // SAFETY: both ranges lie within the first `len` bytes; `ptr::copy` allows overlap.
            unsafe {
                std::ptr::copy(
                    base.add(start + FRAME_HEADER_SIZE),
                    base.add(start),
                    frame_len,
                );
            };
            self.len -= FRAME_HEADER_SIZE;
        }
    }

    /// Called between opcodes: commits the open frame once it reached the target size.
    /// Returns true when a frame was committed (the caller may then flush to a file).
    #[inline]
    pub fn opcode_boundary(&mut self) -> bool {
        match self.frame_start {
            Some(start) if self.len - start - FRAME_HEADER_SIZE >= FRAME_SIZE_TARGET => {
                self.commit_frame();
                true
            }
            _ => false,
        }
    }

    /// Whether a payload of `len` bytes should bypass frames (written between them).
    pub fn is_large_payload(len: usize) -> bool {
        len >= FRAME_SIZE_TARGET
    }

    /// Write a header and a payload of at least FRAME_SIZE_TARGET bytes outside any frame,
    /// as `_pickle.c` does: the open frame is committed and framing paused for the payload.
    pub fn write_unframed(&mut self, header: &[u8], payload: &[u8]) -> Result<(), OutOfMemory> {
        self.commit_frame();
        // Room for the payload plus a frame's worth of what follows, rather than half as much
        // again: a large payload is usually most of the pickle, and untouched slack is waste.
        let needed = self.len + header.len() + payload.len() + FRAME_SIZE_TARGET;
        if needed > self.cap {
            self.buf.grow(self.len, needed)?;
            self.ptr = self.buf.as_mut_ptr();
            self.cap = self.buf.capacity();
        }
        let framing = self.framing;
        self.framing = false;
        let result = self.write(header).and_then(|()| self.write(payload));
        self.framing = framing;
        result
    }

    /// Forget the bytes written, keeping the storage (they have been handed on). Any open
    /// frame must have been committed.
    pub fn clear(&mut self) {
        debug_assert!(self.frame_start.is_none());
        self.len = 0;
    }

    /// Give back the buffer and the number of bytes written, leaving `fresh` in its place.
    /// Any open frame must have been committed.
    pub fn take(&mut self, mut fresh: B) -> (B, usize) {
        debug_assert!(self.frame_start.is_none());
        let len = std::mem::replace(&mut self.len, 0);
        self.ptr = fresh.as_mut_ptr();
        self.cap = fresh.capacity();
        (std::mem::replace(&mut self.buf, fresh), len)
    }
}

#[cfg(test)]
mod tests {
    use super::opcodes::*;
    use super::*;

    fn out() -> Output<Vec<u8>> {
        Output::new(Vec::new())
    }

    #[test]
    fn unframed_writes_are_plain() {
        let mut o = out();
        o.write(&[PROTO, 2]).unwrap();
        o.write_byte(NONE).unwrap();
        o.write_byte(STOP).unwrap();
        assert_eq!(o.as_slice(), &[PROTO, 2, NONE, STOP]);
    }

    #[test]
    fn tiny_frame_loses_its_header() {
        let mut o = out();
        o.write(&[PROTO, 4]).unwrap();
        o.set_framing(true);
        o.write(&[NONE, STOP]).unwrap();
        o.commit_frame();
        assert_eq!(o.as_slice(), &[PROTO, 4, NONE, STOP]);
    }

    #[test]
    fn frame_header_is_patched() {
        let mut o = out();
        o.write(&[PROTO, 4]).unwrap();
        o.set_framing(true);
        o.write(&[EMPTY_LIST, MEMOIZE, NONE, APPEND, STOP]).unwrap();
        o.commit_frame();
        let mut expected = vec![PROTO, 4, FRAME, 5, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&[EMPTY_LIST, MEMOIZE, NONE, APPEND, STOP]);
        assert_eq!(o.as_slice(), expected.as_slice());
    }

    #[test]
    fn frames_split_at_target_size_on_boundaries() {
        let mut o = out();
        o.set_framing(true);
        let chunk = [NONE; 1000];
        let mut commits = 0;
        for _ in 0..200 {
            o.write(&chunk).unwrap();
            if o.opcode_boundary() {
                commits += 1;
            }
        }
        o.commit_frame();
        assert_eq!(commits, 3); // 200_000 bytes: frames of 66_000 bytes, then the rest
        let data = o.as_slice().to_vec();
        // Walk the frames: each FRAME header announces exactly the bytes that follow it.
        let mut pos = 0;
        let mut total = 0;
        while pos < data.len() {
            assert_eq!(data[pos], FRAME);
            let n = u64::from_le_bytes(data[pos + 1..pos + 9].try_into().unwrap()) as usize;
            assert!(data[pos + 9..pos + 9 + n].iter().all(|&b| b == NONE));
            total += n;
            pos += 9 + n;
        }
        assert_eq!(total, 200_000);
    }

    #[test]
    fn large_payload_goes_between_frames() {
        let mut o = out();
        o.set_framing(true);
        o.write(&[EMPTY_LIST, MEMOIZE, MARK, NONE]).unwrap();
        let payload = vec![7u8; FRAME_SIZE_TARGET];
        o.write_unframed(&[BINBYTES, 0, 0, 1, 0], &payload).unwrap();
        o.write(&[APPENDS, STOP]).unwrap();
        o.commit_frame();
        let data = o.as_slice();
        assert_eq!(
            &data[..13],
            &[FRAME, 4, 0, 0, 0, 0, 0, 0, 0, EMPTY_LIST, MEMOIZE, MARK, NONE]
        );
        assert_eq!(&data[13..18], &[BINBYTES, 0, 0, 1, 0]);
        assert_eq!(data.len(), 13 + 5 + FRAME_SIZE_TARGET + 2);
        // The two trailing opcodes are under FRAME_SIZE_MIN, so they carry no header.
        assert_eq!(&data[data.len() - 2..], &[APPENDS, STOP]);
    }

    #[test]
    fn short_copies_of_every_length() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n as u8)
                .map(|b| b.wrapping_mul(7).wrapping_add(1))
                .collect();
            let mut o = out();
            o.write(b"x").unwrap();
            o.write(&data).unwrap();
            o.write(b"y").unwrap();
            let mut expected = b"x".to_vec();
            expected.extend_from_slice(&data);
            expected.push(b'y');
            assert_eq!(o.as_slice(), expected.as_slice(), "length {n}");
        }
    }

    #[test]
    fn take_resets() {
        let mut o = out();
        o.write(b"abc").unwrap();
        let (buf, len) = o.take(Vec::new());
        assert_eq!(&buf[..len], b"abc");
        assert!(o.is_empty());
    }
}
