//! Coverage-guided fuzzing of the pure-Rust writer: each input is a program of writer
//! operations, run and checked by `writer::check::run` (which panics on a broken invariant).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    _skypickle::writer::check::run(data);
});
