//! The writer layer: bytes, opcodes and frames, with no Python in sight.
//!
//! `Output` appends to a growable [`Buffer`] and implements protocol 4 framing the way
//! `_pickle.c` does: a 9-byte FRAME header is reserved when a frame opens, back-patched when it
//! is committed (or removed if the frame holds fewer than 4 bytes), and a frame is committed at
//! the first opcode boundary after it reaches 64 KiB. Payloads of 64 KiB and more are written
//! outside any frame so that `dump(obj, file)` can hand them to the file without copying.

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
    len: usize,
    /// Where the open frame's header starts, if a frame is open.
    frame_start: Option<usize>,
    /// Whether writes open frames (protocol 4+, after the PROTO opcode).
    framing: bool,
}

impl<B: Buffer> Output<B> {
    pub fn new(buf: B) -> Self {
        Output {
            buf,
            len: 0,
            frame_start: None,
            framing: false,
        }
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
        // buffer is valid for `capacity() >= len` bytes.
        unsafe { std::slice::from_raw_parts(self.buf.as_mut_ptr(), self.len) }
    }

    /// Append `data`, opening a frame first if framing is on and none is open.
    #[inline]
    pub fn write(&mut self, data: &[u8]) -> Result<(), OutOfMemory> {
        let header = if self.framing && self.frame_start.is_none() {
            FRAME_HEADER_SIZE
        } else {
            0
        };
        let needed = self.len + header + data.len();
        if needed > self.buf.capacity() {
            self.grow_for(needed)?;
        }
        let base = self.buf.as_mut_ptr();
        if header != 0 {
            self.frame_start = Some(self.len);
            // SAFETY: `needed <= capacity`, so `len + FRAME_HEADER_SIZE` bytes are in bounds.
            // The header bytes are placeholders, patched in `commit_frame`.
            unsafe { std::ptr::write_bytes(base.add(self.len), 0xfe, FRAME_HEADER_SIZE) };
            self.len += FRAME_HEADER_SIZE;
        }
        // SAFETY: `len + data.len() <= needed <= capacity`; `data` cannot alias our storage
        // because `&mut self` is held.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), base.add(self.len), data.len()) };
        self.len += data.len();
        Ok(())
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
            .max(WRITE_BUF_SIZE);
        self.buf.grow(self.len, target)
    }

    /// Close the open frame: write its header, or drop the header if the frame is tiny.
    pub fn commit_frame(&mut self) {
        let Some(start) = self.frame_start.take() else {
            return;
        };
        let frame_len = self.len - start - FRAME_HEADER_SIZE;
        let base = self.buf.as_mut_ptr();
        if frame_len >= FRAME_SIZE_MIN {
            let mut header = [0u8; FRAME_HEADER_SIZE];
            header[0] = opcodes::FRAME;
            header[1..].copy_from_slice(&(frame_len as u64).to_le_bytes());
            // SAFETY: `start + FRAME_HEADER_SIZE <= len <= capacity`.
            unsafe {
                std::ptr::copy_nonoverlapping(header.as_ptr(), base.add(start), FRAME_HEADER_SIZE)
            };
        } else {
            // SAFETY: both ranges lie within the first `len` bytes; `ptr::copy` allows overlap.
            unsafe {
                std::ptr::copy(base.add(start + FRAME_HEADER_SIZE), base.add(start), frame_len)
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
        let framing = self.framing;
        self.framing = false;
        let result = self.write(header).and_then(|()| self.write(payload));
        self.framing = framing;
        result
    }

    /// Give back the buffer and the number of bytes written, leaving `fresh` in its place.
    /// Any open frame must have been committed.
    pub fn take(&mut self, fresh: B) -> (B, usize) {
        debug_assert!(self.frame_start.is_none());
        let len = std::mem::replace(&mut self.len, 0);
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
        assert_eq!(&data[..13], &[FRAME, 4, 0, 0, 0, 0, 0, 0, 0, EMPTY_LIST, MEMOIZE, MARK, NONE]);
        assert_eq!(&data[13..18], &[BINBYTES, 0, 0, 1, 0]);
        assert_eq!(data.len(), 13 + 5 + FRAME_SIZE_TARGET + 2);
        // The two trailing opcodes are under FRAME_SIZE_MIN, so they carry no header.
        assert_eq!(&data[data.len() - 2..], &[APPENDS, STOP]);
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
