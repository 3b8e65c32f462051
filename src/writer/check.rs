//! A self-checking driver for the writer, shared by the fuzz target (`fuzz/`, cargo-fuzz) and
//! a bounded property test run by `cargo test`.
//!
//! [`run`] reads its input as a program of writer operations (writes of various sizes, opcode
//! boundaries, large unframed payloads, frame commits, taking the output), runs it against an
//! [`Output`] over a `Vec<u8>`, and checks the result against a model: with every written
//! byte below 0x80, each 0x95 byte in the output must start a FRAME header, each header's
//! length must cover exactly the bytes up to the next header or unframed payload, no frame may
//! be tiny, and the output without its headers must be exactly what was written, in order.

use super::{encode, opcodes, Output};

/// What a program did, for the property test's statistics.
#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub writes: usize,
    pub frames: usize,
    pub unframed: usize,
}

/// Runs the program in `input`.
///
/// # Panics
/// When the writer's output breaks an invariant: that is what the fuzzer looks for.
pub fn run(input: &[u8]) -> Stats {
    let mut stats = Stats::default();
    let mut out = Output::new(Vec::new());
    let mut logical: Vec<u8> = Vec::new();
    // Where large payloads were written, as ranges of the logical stream.
    let mut unframed: Vec<(usize, usize)> = Vec::new();
    out.write(&[opcodes::PROTO, 4]).expect("memory");
    logical.extend_from_slice(&[opcodes::PROTO, 4]);
    out.set_framing(true);
    let mut taken: Vec<u8> = Vec::new();
    let mut it = input.iter().copied();
    let mut counter: u8 = 0;
    let mut next_byte = || {
        counter = counter.wrapping_add(1);
        counter & 0x7f
    };
    while let Some(op) = it.next() {
        let arg = usize::from(it.next().unwrap_or(0));
        match op % 6 {
            0 | 1 => {
                // A write of 0..=255 bytes (or up to ~64 KiB when op is large).
                let len = if op >= 0xf0 { arg * 257 } else { arg };
                let data = vec![next_byte(); len];
                out.write(&data).expect("memory");
                logical.extend_from_slice(&data);
                stats.writes += 1;
            }
            2 => {
                let byte = next_byte();
                out.write_small(encode::Small::B1([byte])).expect("memory");
                logical.push(byte);
            }
            3 => {
                out.opcode_boundary();
            }
            4 => {
                // A large payload, written between frames.
                let len = 64 * 1024 + arg * 13;
                assert!(Output::<Vec<u8>>::is_large_payload(len));
                let header = [next_byte(), next_byte()];
                let payload = vec![next_byte(); len];
                out.write_unframed(&header, &payload).expect("memory");
                let start = logical.len();
                logical.extend_from_slice(&header);
                logical.extend_from_slice(&payload);
                unframed.push((start, logical.len()));
                stats.unframed += 1;
            }
            _ => {
                out.commit_frame();
                if arg % 4 == 0 {
                    // Hand over what was written (as dump() does when flushing to a file).
                    let (buf, len) = out.take(Vec::new());
                    taken.extend_from_slice(&buf[..len]);
                }
            }
        }
    }
    out.commit_frame();
    let (buf, len) = out.take(Vec::new());
    taken.extend_from_slice(&buf[..len]);
    stats.frames = check_output(&taken, &logical, &unframed);
    stats
}

/// Checks `output` against the `logical` stream; returns the number of frames.
fn check_output(output: &[u8], logical: &[u8], unframed: &[(usize, usize)]) -> usize {
    let mut content: Vec<u8> = Vec::with_capacity(logical.len());
    let mut frames = 0;
    let mut i = 0;
    // (logical start, logical end) of each frame's content.
    let mut frame_spans: Vec<(usize, usize)> = Vec::new();
    while i < output.len() {
        if output[i] == opcodes::FRAME {
            let header = output.get(i + 1..i + 9).expect("a FRAME header cut short");
            let len = u64::from_le_bytes(header.try_into().expect("8 bytes")) as usize;
            assert!(
                len >= 4,
                "a frame of {len} bytes should have lost its header"
            );
            let body = output
                .get(i + 9..i + 9 + len)
                .expect("a frame longer than the output");
            assert!(
                !body.contains(&opcodes::FRAME),
                "a frame's length stops short of the next header"
            );
            frame_spans.push((content.len(), content.len() + len));
            content.extend_from_slice(body);
            frames += 1;
            i += 9 + len;
        } else {
            content.push(output[i]);
            i += 1;
        }
    }
    assert_eq!(content.len(), logical.len(), "bytes lost or added");
    assert!(
        content == logical,
        "the output's content differs from what was written"
    );
    // No large payload inside a frame.
    for &(start, end) in unframed {
        for &(fs, fe) in &frame_spans {
            assert!(
                end <= fs || start >= fe,
                "a large payload was written inside a frame"
            );
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    /// A bounded fuzz run on every `cargo test`: deterministic pseudo-random programs.
    #[test]
    fn random_programs_keep_the_invariants() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut totals = super::Stats::default();
        for round in 0..600 {
            let len = 2 + (round % 97) * 3;
            let program: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            let run = super::run(&program);
            totals.writes += run.writes;
            totals.frames += run.frames;
            totals.unframed += run.unframed;
        }
        assert!(totals.frames > 50 && totals.unframed > 50 && totals.writes > 500);
    }
}
