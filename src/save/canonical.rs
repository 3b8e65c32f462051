//! Deterministic mode on the save path (see `crate::deterministic` for the rules): str and
//! bytes, and tuples and frozensets made of atoms, memoised by content, and sets written in a
//! canonical order.
//!
//! **Set order.** The items are sorted by a key that depends on the item's content alone:
//! for atoms (None, bool, int, float, str, bytes) and tuples and frozensets of atoms, a tagged
//! encoding (`deterministic::atom_key`); for anything else, the item's own deterministic
//! pickle, made by a fresh dumper with an empty memo (so the key does not depend on what the
//! payload wrote before). Mixed types sort by their tag first; items whose keys tie (objects
//! told apart by identity alone) by their memo index when the payload wrote them before the
//! set. The items are then written in that order by this dumper, with its memo, as usual.
//!
//! A set whose item leads back to the set (through an object's state) would make keying
//! recurse forever: while a set's items are keyed, a sub-dump that meets the same set writes
//! a fixed placeholder instead (keys are compared, never loaded).
//!
//! Keying a non-atom item runs its reducers once more (the sub-dump) before the item is
//! written: deterministic mode calls user reducers of set items twice.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyString};

use super::Dumper;
use crate::deterministic::{atom_key, atoms_content_hash, atoms_equal};
use crate::errors::SaveResult;
use crate::memo::{ContentIndex, Memo};
use crate::writer::opcodes::*;

/// Content kinds of the content memo.
const STR: u8 = b's';
const BYTES: u8 = b'b';
/// Tuples and frozensets made of atoms (their `atom_key` says which).
const ATOMS: u8 = b'a';

impl<'py> Dumper<'py> {
    /// A str, memoised by its text: a memo GET when an equal str was written before.
    pub(super) fn save_str_by_content(&mut self, text: &Bound<'py, PyString>) -> SaveResult {
        // Lone surrogates have no UTF-8 form to key: such a str is written in full each time.
        let Some(utf8) = crate::ffi::str_utf8(text) else {
            return self.write_str(text);
        };
        let key = ContentIndex::key(STR, utf8);
        let next = self.memo.len();
        let found = self.memo.find_or_reserve_content(key, |o| {
            o.cast::<PyString>().ok().and_then(crate::ffi::str_utf8) == Some(utf8)
        });
        // Interned strs (keys, identifiers) are met again as the very same object: they are
        // indexed by identity too, so that `save`'s memo lookup finds them with one address
        // probe (the entry content would find). Other strs (built at run time) are rarely met
        // twice as one object: a second table entry would cost more than it saves.
        let interned = crate::ffi::str_is_interned(text);
        if let Some(idx) = found {
            if interned {
                self.memo.alias(text.as_any(), idx);
            }
            return self.memo_get(idx);
        }
        self.write_str(text)?;
        let idx = if interned {
            self.memo.put(text.as_any())
        } else {
            self.memo.put_unindexed(text.as_any())
        };
        debug_assert_eq!(idx, next);
        self.write_memo_put(idx)
    }

    /// A bytes object, memoised by its content.
    pub(super) fn save_bytes_by_content(&mut self, bytes: &Bound<'py, PyBytes>) -> SaveResult {
        let data = bytes.as_bytes();
        let key = ContentIndex::key(BYTES, data);
        let found = self.memo.find_content(key, |o| {
            o.cast::<PyBytes>().is_ok_and(|b| b.as_bytes() == data)
        });
        if let Some(idx) = found {
            self.memo.alias(bytes.as_any(), idx);
            return self.memo_get(idx);
        }
        // Protocols 0-2 write bytes through a reduce, whose parts take memo entries first:
        // the index is known only now.
        self.write_bytes_value(bytes)?;
        let idx = self.memo.put(bytes.as_any());
        self.memo.insert_content(key, idx);
        self.write_memo_put(idx)
    }

    /// A tuple or frozenset made of atoms (None, bool, int, float, str, bytes, and tuples and
    /// frozensets of those), memoised by its content: a memo GET when an equal one (same
    /// types, same values) was written before, whatever its identity. `write` saves it the
    /// usual way otherwise. Like a str, such a value has no identity worth keeping, and its
    /// sharing varies where the program does not: the compiler shares equal constants of the
    /// code objects it builds in one go, the code constructor of 3.12+ copies a frozenset
    /// constant to intern its strings, CPython 3.9 makes every empty frozenset one object.
    pub(super) fn save_atoms_by_content(
        &mut self,
        obj: &Bound<'py, PyAny>,
        write: impl FnOnce(&mut Self) -> SaveResult,
    ) -> SaveResult {
        let Some(hash) = atoms_content_hash(obj)? else {
            return write(self);
        };
        let hash = ContentIndex::key_of_hash(ATOMS, hash);
        let found = self
            .memo
            .find_content(hash, |other| atoms_equal(obj, other));
        if let Some(idx) = found {
            return self.memo_get(idx);
        }
        write(self)?;
        if let Some(idx) = self.memo.get(obj) {
            self.memo.insert_content(hash, idx);
        }
        Ok(())
    }

    /// Whether this dumper is keying `set`'s items (a sub-dump that met the set again): the
    /// caller writes a placeholder instead of the set.
    pub(super) fn is_being_keyed(&self, set: &Bound<'py, PyAny>) -> bool {
        self.keying.contains(&(set.as_ptr() as usize))
    }

    /// The items of a set or frozenset in canonical order.
    pub(super) fn canonical_items<T: crate::ffi::SetLayout>(
        &mut self,
        set: &Bound<'py, T>,
    ) -> SaveResult<Vec<Bound<'py, PyAny>>> {
        let items = crate::ffi::set_items(set);
        if items.len() < 2 {
            return Ok(items);
        }
        if let Some(order) = simple_atoms_order(&items)? {
            return Ok(order.into_iter().map(|i| items[i].clone()).collect());
        }
        self.keying.push(set.as_ptr() as usize);
        let keyed = items
            .into_iter()
            .map(|item| {
                // Items whose keys tie are told apart by identity alone (say, two sentinel
                // objects): their order would follow addresses. One the payload wrote before
                // the set is written as a memo GET, so it goes by its memo index, which the
                // stream so far determines. (Ties between items not written yet stay in
                // iteration order: they are written alike, unless the payload refers to one
                // of them again after the set, which this single pass cannot know.)
                let written_at = self.memo.get(&item).unwrap_or(usize::MAX);
                Ok((self.sort_key(&item)?, written_at, item))
            })
            .collect::<SaveResult<Vec<_>>>();
        self.keying.pop();
        let mut keyed = keyed?;
        keyed.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Ok(keyed.into_iter().map(|(_, _, item)| item).collect())
    }

    /// The sort key of one set item.
    fn sort_key(&mut self, item: &Bound<'py, PyAny>) -> SaveResult<Vec<u8>> {
        let mut key = Vec::new();
        if atom_key(item, &mut key, 0)? {
            return Ok(key);
        }
        key.clear();
        key.push(b'~');
        let mut sub = Dumper::new(
            self.py,
            self.lk,
            self.proto,
            Memo::for_sort_key(),
            self.hooks.clone(),
            None,
            None,
        );
        sub.mode = self.mode;
        sub.keying.clone_from(&self.keying);
        sub.reduced = Some(self.reduced.get_or_insert_with(Default::default).clone());
        sub.depth = self.depth;
        sub.save(item)?;
        key.extend_from_slice(sub.take_output()?.as_bytes());
        Ok(key)
    }

    /// The reduce value of `obj` at `step`: computed by `reduce`, or the one a sort-key
    /// sub-dump of this dump computed already.
    ///
    /// Why: a set item that is not an atom is keyed by pickling it alone (`sort_key`), then
    /// written; without this its reducer, and those of everything under it, would run twice.
    /// Running once is what `pickle` does, what a reducer with side effects (a counter, a
    /// lock taken) expects, and it makes an item's key and its written form come from the
    /// same reduce value. Only values computed while keying are kept: keeping the dump's own
    /// would hold every reduce value of a large dump until its end, so an object the dump
    /// wrote before the set is reduced once more by the sub-dump. Each entry holds its
    /// object, so its address cannot be reused within the dump.
    pub(super) fn reduce_once(
        &mut self,
        obj: &Bound<'py, PyAny>,
        step: ReduceStep,
        reduce: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(cache) = self.reduced.clone() else {
            return reduce();
        };
        let key = (obj.as_ptr() as usize, step);
        let cached = cache.borrow().get(&key).map(|(_, rv)| rv.clone());
        if let Some(rv) = cached {
            return Ok(rv);
        }
        let rv = reduce()?;
        if !self.keying.is_empty() {
            cache.borrow_mut().insert(key, (obj.clone(), rv.clone()));
        }
        Ok(rv)
    }

    /// What a sub-dump writes for a set it is already keying.
    pub(super) fn save_keying_placeholder(&mut self) -> SaveResult {
        self.write(&[NONE])
    }
}

/// Which reduce value [`Dumper::reduce_once`] keeps: a `reducer_override`'s answer (which
/// may be NotImplemented, and then is followed by the reduce proper) or the reduce proper
/// (the dispatch table's reducer, `__reduce_ex__` or `__reduce__`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum ReduceStep {
    Override,
    Reduce,
}

/// Reduce values by (object address, step), each with its object (see
/// [`Dumper::reduce_once`]).
pub(super) type ReduceCache<'py> = std::cell::RefCell<
    crate::fxhash::FxHashMap<(usize, ReduceStep), (Bound<'py, PyAny>, Bound<'py, PyAny>)>,
>;

/// The order [`Dumper::canonical_items`] gives a set made only of simple atoms (None, bool,
/// int within 64 bits, float, str, bytes), computed without building keys: each item's key
/// is borrowed from the item or held in 8 bytes, and compared as `atom_key`'s encoding
/// compares (tag, then length, then bytes), so the order is the same either way. None when
/// an item is anything else (the caller keys it the general way).
fn simple_atoms_order(items: &[Bound<'_, PyAny>]) -> PyResult<Option<Vec<usize>>> {
    enum Data<'a> {
        Inline([u8; 8], usize),
        Borrowed(&'a [u8]),
    }
    impl Data<'_> {
        fn bytes(&self) -> &[u8] {
            match self {
                Data::Inline(buf, len) => &buf[..*len],
                Data::Borrowed(b) => b,
            }
        }
    }
    let mut keys: Vec<(u8, Data<'_>, usize)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (tag, data) = if item.is_none() {
            (0, Data::Inline([0; 8], 0))
        } else if let Ok(b) = item.cast_exact::<pyo3::types::PyBool>() {
            (
                1,
                Data::Inline([u8::from(b.is_true()), 0, 0, 0, 0, 0, 0, 0], 1),
            )
        } else if let Ok(int) = item.cast_exact::<PyInt>() {
            match crate::ffi::int_as_i64(int)? {
                Some(v) => (2, Data::Inline(v.to_le_bytes(), 8)),
                None => return Ok(None),
            }
        } else if let Ok(f) = item.cast_exact::<PyFloat>() {
            (3, Data::Inline(f.value().to_bits().to_be_bytes(), 8))
        } else if let Ok(text) = item.cast_exact::<PyString>() {
            match crate::ffi::str_utf8(text) {
                Some(utf8) => (4, Data::Borrowed(utf8)),
                None => return Ok(None),
            }
        } else if let Ok(b) = item.cast_exact::<PyBytes>() {
            (5, Data::Borrowed(b.as_bytes()))
        } else {
            return Ok(None);
        };
        keys.push((tag, data, i));
    }
    keys.sort_by(|a, b| {
        let (x, y) = (a.1.bytes(), b.1.bytes());
        (a.0, x.len(), x).cmp(&(b.0, y.len(), y))
    });
    Ok(Some(keys.into_iter().map(|(_, _, i)| i).collect()))
}
