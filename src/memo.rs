//! The memo: object identity -> memo index, keeping every memoised object alive.
//!
//! Keyed by address like `_pickle.c`'s PyMemoTable, and like it the memo holds a strong
//! reference to each key for as long as the entry exists: otherwise a temporary created by a
//! reducer could die, and a new object reusing its address would be written as a memo GET of
//! the wrong object.

use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;

/// Hash for object addresses: drop the alignment bits, then spread them (Fibonacci hashing),
/// so both the low bits (bucket) and the high bits (hashbrown's tag) vary.
#[derive(Default)]
pub struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = ((n as u64) >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type AddressMap = hashbrown::HashMap<usize, usize, BuildHasherDefault<AddressHasher>>;

/// The memo of one dump (or of a `Pickler` across dumps).
pub struct Memo<'py> {
    index: AddressMap,
    objects: Vec<Bound<'py, PyAny>>,
}

/// A memo kept between `Pickler.dump` calls, detached from any interpreter borrow.
#[derive(Default)]
pub struct MemoStore {
    index: AddressMap,
    objects: Vec<Py<PyAny>>,
}

impl<'py> Memo<'py> {
    pub fn new() -> Self {
        Memo {
            index: AddressMap::default(),
            objects: Vec::new(),
        }
    }

    #[inline]
    pub fn get(&self, obj: &Bound<'py, PyAny>) -> Option<usize> {
        if self.objects.is_empty() {
            return None;
        }
        self.index.get(&(obj.as_ptr() as usize)).copied()
    }

    #[inline]
    pub fn contains(&self, obj: &Bound<'py, PyAny>) -> bool {
        self.get(obj).is_some()
    }

    /// Record `obj` under the next index and return that index.
    #[inline]
    pub fn put(&mut self, obj: &Bound<'py, PyAny>) -> usize {
        let idx = self.objects.len();
        self.index.insert(obj.as_ptr() as usize, idx);
        self.objects.push(obj.clone());
        idx
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn into_store(self) -> MemoStore {
        MemoStore {
            index: self.index,
            objects: self.objects.into_iter().map(Bound::unbind).collect(),
        }
    }

    pub fn from_store(py: Python<'py>, store: MemoStore) -> Self {
        Memo {
            index: store.index,
            objects: store
                .objects
                .into_iter()
                .map(|o| o.into_bound(py))
                .collect(),
        }
    }
}

impl Default for Memo<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoStore {
    pub fn objects(&self) -> &[Py<PyAny>] {
        &self.objects
    }
}
