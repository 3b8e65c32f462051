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
        let fresh = take_large_slots(bits).unwrap_or_else(|| vec![(0, 0); 1 << bits]);
        let old = std::mem::replace(&mut self.slots, fresh);
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

/// Tables above this many slots (64 KiB) are not where a dump starts: clearing one costs
/// more than growing a small one, and a small dump's lookups would spread over all of it.
const MAX_SPARE_BITS: u32 = 12;

/// Memory a dump on this thread grew and no longer needs, kept for the next dump that grows
/// as far, when this thread makes such dumps repeatedly.
///
/// Why: a fresh large table is memory the process has not touched, and touching it costs a
/// page fault per 4 KiB. Measured on a list of 50,000 strs dumped in a loop, the faults of the
/// memo's 4 MiB table made a dump 6.5 ms instead of 3 ms, slower than `pickle`, which pays
/// them as well. Clearing kept memory costs a fraction of that.
///
/// What is kept stays bounded (see [`MAX_LARGE_SPARE_BITS`], [`ContentIndex::MAX_KEPT`]),
/// and only while it is likely to be used: a dump's large table is kept when another dump on
/// this thread grew one within its last [`SPARE_IDLE_DUMPS`] dumps (so a one-off big dump
/// keeps nothing), and freed when that many dumps go by without one taking it, or when the
/// thread ends.
struct Spare<T> {
    kept: std::cell::RefCell<Option<T>>,
    /// Dumps started on this thread since a large table was last offered or taken
    /// (`u32::MAX`: never).
    since_large: std::cell::Cell<u32>,
}

/// See [`Spare`].
const SPARE_IDLE_DUMPS: u32 = 64;

impl<T> Spare<T> {
    const fn new() -> Self {
        Spare {
            kept: std::cell::RefCell::new(None),
            since_large: std::cell::Cell::new(u32::MAX),
        }
    }

    /// A dump starts: what is kept ages by one, and goes when it is too old.
    fn age(&self) {
        let dumps = self.since_large.get().saturating_add(1);
        self.since_large.set(dumps);
        if dumps > SPARE_IDLE_DUMPS {
            self.kept.borrow_mut().take();
        }
    }

    /// A dump is done with a large table: kept if another was offered or taken lately.
    fn offer(&self, value: T) {
        if self.since_large.get() <= SPARE_IDLE_DUMPS {
            *self.kept.borrow_mut() = Some(value);
        }
        self.since_large.set(0);
    }

    /// The kept value, if `fits` accepts it.
    fn take_if(&self, fits: impl FnOnce(&T) -> bool) -> Option<T> {
        let value = self.kept.borrow_mut().take_if(|value| fits(value))?;
        self.since_large.set(0);
        Some(value)
    }
}

thread_local! {
    /// The slots of the last table above [`MAX_SPARE_BITS`] (and up to
    /// [`MAX_LARGE_SPARE_BITS`]) a dump grew to, not cleared yet: a dump growing to that
    /// very size takes them instead of fresh memory.
    static LARGE_SLOTS: Spare<Vec<(usize, usize)>> = const { Spare::new() };
    /// The last content index past [`ContentIndex::SMALL`] entries, not cleared yet.
    static LARGE_CONTENT: Spare<crate::fxhash::FxHashMap<u64, usize>> = const { Spare::new() };
}

/// The bytes of memory this thread's kept tables hold (for the tests: that it stays bounded
/// and is given back when no dump takes it).
#[pyfunction]
#[pyo3(name = "_kept_memo_bytes")]
pub fn kept_memo_bytes() -> usize {
    let slot = std::mem::size_of::<(usize, usize)>();
    let small = SPARE_TABLE
        .try_with(|spare| spare.borrow().as_ref().map_or(0, |t| t.slots.len() * slot))
        .unwrap_or(0);
    let large = LARGE_SLOTS
        .try_with(|spare| spare.kept.borrow().as_ref().map_or(0, |s| s.len() * slot))
        .unwrap_or(0);
    // Buckets of a key and an index, plus one control byte each.
    let content = LARGE_CONTENT
        .try_with(|spare| {
            spare.kept.borrow().as_ref().map_or(0, |map| {
                map.capacity() * (std::mem::size_of::<(u64, usize)>() + 1)
            })
        })
        .unwrap_or(0);
    small + large + content
}

/// The largest table kept (2^18 slots, 4 MiB: a memo of up to 174,762 entries). Bigger ones
/// are freed: the memory kept per thread stays bounded (with the content index's 2.1 MiB
/// and the small table's 64 KiB, 6.2 MiB).
const MAX_LARGE_SPARE_BITS: u32 = 18;

/// The kept slots, cleared, if there are `1 << bits` of them.
fn take_large_slots(bits: u32) -> Option<Vec<(usize, usize)>> {
    if bits <= MAX_SPARE_BITS || bits > MAX_LARGE_SPARE_BITS {
        return None;
    }
    let mut slots = LARGE_SLOTS
        .try_with(|spare| spare.take_if(|slots| slots.len() == 1 << bits))
        .ok()
        .flatten()?;
    slots.fill((0, 0));
    Some(slots)
}

impl AddressTable {
    fn recycled() -> Self {
        SPARE_TABLE
            .try_with(|spare| spare.borrow_mut().take())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Give the table back for the next memo on this thread: a small one cleared, a large
    /// one (`offer_large`: a dump's, not a sort key's) offered as it is, for the dump that
    /// takes it to clear.
    fn recycle(mut self, offer_large: bool) {
        if self.bits == 0 {
            return;
        }
        if self.bits > MAX_SPARE_BITS {
            if offer_large && self.bits <= MAX_LARGE_SPARE_BITS {
                let slots = std::mem::take(&mut self.slots);
                let _ = LARGE_SLOTS.try_with(|spare| spare.offer(slots));
            }
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
    /// Whether its large tables are offered for the next dump when it is dropped (see
    /// [`Spare`]).
    offers_large: bool,
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
    /// The memo of a dump.
    pub fn new() -> Self {
        let _ = LARGE_SLOTS.try_with(Spare::age);
        let _ = LARGE_CONTENT.try_with(Spare::age);
        let mut memo = Self::for_sort_key();
        memo.offers_large = true;
        memo
    }

    /// The memo of a sub-dump that makes a set item's sort key: it starts small, and what it
    /// grows is freed with it (it neither ages nor replaces what the dump's memo keeps).
    pub fn for_sort_key() -> Self {
        Memo {
            index: AddressTable::recycled(),
            objects: Vec::new(),
            aliases: Vec::new(),
            content: ContentIndex::default(),
            offers_large: false,
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
            // A `Pickler`'s memo goes back to its store; what it grew is its own.
            offers_large: false,
        }
    }
}

impl Drop for Memo<'_> {
    fn drop(&mut self) {
        std::mem::take(&mut self.index).recycle(self.offers_large);
        if self.offers_large {
            std::mem::take(&mut self.content).offer();
        }
    }
}

/// An empty memo that is not a dump's (what `mem::take` leaves behind): see
/// [`Memo::for_sort_key`].
impl Default for Memo<'_> {
    fn default() -> Self {
        Self::for_sort_key()
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
    /// Up to this many entries the index grows in fresh memory (see [`Spare`]).
    const SMALL: usize = 1 << 10;
    /// The largest index kept for the next dump (a capacity of 2^17 entries: 2^17 buckets
    /// of 17 bytes, 2.1 MiB).
    const MAX_KEPT: usize = 1 << 17;

    /// Before an insertion: when the index is full and past [`Self::SMALL`], move its entries
    /// into the index a previous dump left, if that one is at least twice as large (what the
    /// map would grow to, in memory already touched).
    fn reserve_one(&mut self) {
        let (len, capacity) = (self.first.len(), self.first.capacity());
        if len < capacity || len < Self::SMALL {
            return;
        }
        let kept = LARGE_CONTENT
            .try_with(|spare| spare.take_if(|map| map.capacity() >= 2 * capacity))
            .ok()
            .flatten();
        if let Some(mut map) = kept {
            map.clear();
            map.extend(self.first.drain());
            self.first = map;
        }
    }

    /// Offer this index's memory for the next dump on this thread, when it grew past
    /// [`Self::SMALL`] (and not past [`Self::MAX_KEPT`]).
    fn offer(self) {
        let capacity = self.first.capacity();
        if capacity > Self::SMALL && capacity <= Self::MAX_KEPT {
            let _ = LARGE_CONTENT.try_with(|spare| spare.offer(self.first));
        }
    }

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
        self.reserve_one();
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
        self.reserve_one();
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
