//! The memo: object identity -> memo index, keeping every memoised object alive.
//!
//! Keyed by address like `_pickle.c`'s PyMemoTable, and like it the memo holds a strong
//! reference to each key for as long as the entry exists: otherwise a temporary created by a
//! reducer could die, and a new object reusing its address would be written as a memo GET of
//! the wrong object.

use pyo3::prelude::*;

/// Open-addressing table from object address to memo index, with linear probing.
///
/// One 16-byte slot per entry and the key checked in place: a lookup is usually one cache
/// line, which is what matters when the memo outgrows the CPU caches. Address 0 marks an empty
/// slot (no object lives at address 0).
#[derive(Default)]
struct AddressTable {
    slots: Vec<(usize, usize)>,
    /// log2 of the slot count.
    bits: u32,
    len: usize,
}

impl AddressTable {
    #[inline]
    fn slot_of(&self, key: usize) -> usize {
        // Fibonacci hashing of the address without its alignment bits; the top `bits` bits.
        (((key >> 4) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.bits)) as usize
    }

    #[inline]
    fn get(&self, key: usize) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(key);
        loop {
            let (k, v) = self.slots[i];
            if k == key {
                return Some(v);
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    fn insert(&mut self, key: usize, value: usize) {
        // Keep the load under 2/3 (as CPython's memo does): probe runs stay short and the
        // table stays small enough to keep in cache longer.
        if (self.len + 1) * 3 > self.slots.len() * 2 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(key);
        loop {
            let slot = &mut self.slots[i];
            if slot.0 == 0 {
                *slot = (key, value);
                self.len += 1;
                return;
            }
            if slot.0 == key {
                slot.1 = value;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn grow(&mut self) {
        // x4 while small, x2 once large (CPython's memo grows the same way).
        let bits = if self.bits == 0 {
            6
        } else if self.len < 50_000 {
            self.bits + 2
        } else {
            self.bits + 1
        };
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); 1 << bits]);
        self.bits = bits;
        self.len = 0;
        for (k, v) in old {
            if k != 0 {
                self.insert(k, v);
            }
        }
    }
}

thread_local! {
    /// One emptied table kept from the last dump on this thread: a dump's table then starts
    /// at the size the previous one reached, without growing (and rehashing) its way there.
    static SPARE_TABLE: std::cell::RefCell<Option<AddressTable>> =
        const { std::cell::RefCell::new(None) };
}

/// Tables above this many slots (64 KiB) are freed rather than kept: clearing one costs more
/// than growing a small one.
const MAX_SPARE_BITS: u32 = 12;

impl AddressTable {
    fn recycled() -> Self {
        SPARE_TABLE
            .try_with(|spare| spare.borrow_mut().take())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn recycle(mut self) {
        if self.bits == 0 || self.bits > MAX_SPARE_BITS {
            return;
        }
        if self.len > 0 {
            self.slots.fill((0, 0));
            self.len = 0;
        }
        let _ = SPARE_TABLE.try_with(|spare| *spare.borrow_mut() = Some(self));
    }
}

/// The memo of one dump (or of a `Pickler` across dumps).
pub struct Memo<'py> {
    index: AddressTable,
    objects: Vec<Bound<'py, PyAny>>,
    /// Objects indexed under another object's entry ([`Memo::alias`]), kept alive with it.
    aliases: Vec<Bound<'py, PyAny>>,
    /// Deterministic mode's str and bytes by content (kept with the memo across a
    /// `Pickler`'s dumps, like the identity index).
    content: ContentIndex,
}

/// A memo kept between `Pickler.dump` calls, detached from any interpreter borrow.
#[derive(Default)]
pub struct MemoStore {
    index: AddressTable,
    objects: Vec<Py<PyAny>>,
    aliases: Vec<Py<PyAny>>,
    content: ContentIndex,
}

impl<'py> Memo<'py> {
    pub fn new() -> Self {
        Memo {
            index: AddressTable::recycled(),
            objects: Vec::new(),
            aliases: Vec::new(),
            content: ContentIndex::default(),
        }
    }

    #[inline]
    pub fn get(&self, obj: &Bound<'py, PyAny>) -> Option<usize> {
        self.index.get(obj.as_ptr() as usize)
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
        if self.objects.capacity() == 0 {
            self.objects.reserve(32);
        }
        self.objects.push(obj.clone());
        idx
    }

    /// Reserve the next index for an object the memo does not track by identity (a str
    /// written by its text): None holds its place.
    pub fn put_anonymous(&mut self, py: Python<'py>) -> usize {
        let idx = self.objects.len();
        self.objects.push(py.None().into_bound(py));
        idx
    }

    /// Deterministic mode: the index of a memoised object that `same` accepts among those
    /// stored under content key `key`; if none, the next index (which the caller then
    /// memoises its object under, with nothing memoised in between) is recorded for `key`.
    pub fn find_or_reserve_content(
        &mut self,
        key: u64,
        same: impl Fn(&Bound<'py, PyAny>) -> bool,
    ) -> Option<usize> {
        let next = self.objects.len();
        let objects = &self.objects;
        self.content
            .find_or_insert(key, next, |idx| objects.get(idx).is_some_and(&same))
    }

    /// Record content key `key` for memo index `idx`.
    pub fn insert_content(&mut self, key: u64, idx: usize) {
        self.content.insert(key, idx);
    }

    /// Deterministic mode: the index of a memoised object that `same` accepts among those
    /// stored under content key `key`, without recording anything.
    pub fn find_content(
        &self,
        key: u64,
        same: impl Fn(&Bound<'py, PyAny>) -> bool,
    ) -> Option<usize> {
        self.content
            .find(key, |idx| self.objects.get(idx).is_some_and(&same))
    }

    /// Record `obj` under the next index without making it findable by identity (a str
    /// deterministic mode finds by content only): the memo keeps it alive and comparable.
    pub fn put_unindexed(&mut self, obj: &Bound<'py, PyAny>) -> usize {
        let idx = self.objects.len();
        self.objects.push(obj.clone());
        idx
    }

    /// Make `obj` found by identity under the existing index `idx`: deterministic mode's str
    /// or bytes equal to one memoised before. The memo keeps `obj` alive too (its address must
    /// not be reused by another object while the entry exists).
    pub fn alias(&mut self, obj: &Bound<'py, PyAny>, idx: usize) {
        self.index.insert(obj.as_ptr() as usize, idx);
        self.aliases.push(obj.clone());
    }

    /// The object stored under `idx`.
    pub fn object(&self, idx: usize) -> Option<&Bound<'py, PyAny>> {
        self.objects.get(idx)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn into_store(mut self) -> MemoStore {
        MemoStore {
            index: std::mem::take(&mut self.index),
            objects: std::mem::take(&mut self.objects)
                .into_iter()
                .map(Bound::unbind)
                .collect(),
            aliases: std::mem::take(&mut self.aliases)
                .into_iter()
                .map(Bound::unbind)
                .collect(),
            content: std::mem::take(&mut self.content),
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
            aliases: store
                .aliases
                .into_iter()
                .map(|o| o.into_bound(py))
                .collect(),
            content: store.content,
        }
    }
}

impl Drop for Memo<'_> {
    fn drop(&mut self) {
        std::mem::take(&mut self.index).recycle();
    }
}

impl Default for Memo<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoStore {
    /// Every object the memo keeps alive (for the garbage collector's traversal).
    pub fn objects(&self) -> impl Iterator<Item = &Py<PyAny>> {
        self.objects.iter().chain(&self.aliases)
    }
}

/// Deterministic mode's memo for str and bytes: content -> memo index, so that equal texts
/// share one entry whatever their identity.
///
/// Keyed by a hash of the content (the whole content up to [`FULL_HASH_LIMIT`] bytes, then its
/// length and its two ends); the caller confirms a candidate by comparing the content, so a
/// collision costs a comparison, never a wrong memo GET. No copy of the content is kept: the
/// memo holds the objects.
#[derive(Default)]
pub struct ContentIndex {
    first: crate::fxhash::FxHashMap<u64, usize>,
    /// Further entries whose key collided with an earlier one (rare).
    more: crate::fxhash::FxHashMap<u64, Vec<usize>>,
}

/// Content longer than this is keyed by its length and its first and last bytes: hashing a
/// large payload in full would cost more than writing it.
const FULL_HASH_LIMIT: usize = 1024;
const SAMPLE: usize = 256;

impl ContentIndex {
    /// The key of `data`, of kind `kind` (str and bytes of equal content are different keys).
    pub fn key(kind: u8, data: &[u8]) -> u64 {
        use std::hash::Hasher;
        let mut h = crate::fxhash::FxHasher::default();
        h.write_u8(kind);
        h.write_usize(data.len());
        if data.len() <= FULL_HASH_LIMIT {
            h.write(data);
        } else {
            h.write(&data[..SAMPLE]);
            h.write(&data[data.len() - SAMPLE..]);
        }
        // FxHash's last multiply leaves the low bits depending on the low bits of the last
        // word only (texts that differ in their last bytes share them), and the table picks
        // buckets by the low bits: mix the high bits down (MurmurHash3's finaliser).
        Self::finish(h.finish())
    }

    /// The key of content hashed elsewhere (tuples and frozensets of atoms), of kind `kind`.
    pub fn key_of_hash(kind: u8, hash: u64) -> u64 {
        Self::finish(hash ^ (u64::from(kind) << 56).rotate_left(7))
    }

    /// Mix the high bits down (see `key`).
    fn finish(mut x: u64) -> u64 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    /// The memo index of an entry under `key` that `same` accepts; if there is none, `next`
    /// (the index the caller is about to memoise the content under) is recorded and None
    /// returned. One table probe either way.
    /// The memo index of the first entry under `key` that `same` accepts.
    pub fn find(&self, key: u64, mut same: impl FnMut(usize) -> bool) -> Option<usize> {
        let first = *self.first.get(&key)?;
        if same(first) {
            return Some(first);
        }
        self.more.get(&key)?.iter().copied().find(|&idx| same(idx))
    }

    pub fn insert(&mut self, key: u64, idx: usize) {
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(idx);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(key).or_default().push(idx);
            }
        }
    }

    pub fn find_or_insert(
        &mut self,
        key: u64,
        next: usize,
        mut same: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(next);
                None
            }
            std::collections::hash_map::Entry::Occupied(slot) => {
                let first = *slot.get();
                if same(first) {
                    return Some(first);
                }
                let more = self.more.entry(key).or_default();
                if let Some(found) = more.iter().copied().find(|&idx| same(idx)) {
                    return Some(found);
                }
                more.push(next);
                None
            }
        }
    }
}
