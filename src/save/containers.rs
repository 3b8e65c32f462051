//! Containers: list, dict, tuple, set, frozenset, and the batched APPENDS / SETITEMS /
//! ADDITEMS writers (`batch_list`, `batch_dict` in `_pickle.c`).
//!
//! Exact lists and dicts are walked by index / `PyDict_Next`, re-reading the size each step,
//! so a reducer that mutates the container mid-dump cannot make us read out of bounds; like
//! CPython, a dict that changes size is reported after the batch.

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyList, PySet, PyTuple};

use super::Dumper;
use crate::errors::{PathSegment, SaveResult};
use crate::ffi::{dict_next, iter_next, list_item};
use crate::writer::opcodes::*;

impl<'py> Dumper<'py> {
    pub(super) fn save_list(&mut self, list: &Bound<'py, PyList>) -> SaveResult {
        let obj = list.as_any();
        if self.bin {
            self.write(&[EMPTY_LIST])?;
        } else {
            self.write(&[MARK, LIST])?;
        }
        self.memo_put(obj)?;
        if list.is_empty() {
            return Ok(());
        }
        if self.proto == 0 {
            let mut i = 0;
            while let Some(item) = list_item(list, i) {
                self.save_at(&item, || PathSegment::Item(i))?;
                self.write(&[APPEND])?;
                i += 1;
            }
            return Ok(());
        }
        if list.len() == 1 {
            let item = list.get_item(0)?;
            self.save_at(&item, || PathSegment::Item(0))?;
            return self.write(&[APPEND]);
        }
        let mut total = 0;
        loop {
            self.write(&[MARK])?;
            let mut in_batch = 0;
            while let Some(item) = list_item(list, total) {
                self.save_at(&item, || PathSegment::Item(total))?;
                total += 1;
                in_batch += 1;
                if in_batch == BATCHSIZE {
                    break;
                }
            }
            self.write(&[APPENDS])?;
            if total >= list.len() {
                return Ok(());
            }
        }
    }

    /// Items from an iterator (a reduce value's listitems, or a list walked generically).
    pub(super) fn batch_list(&mut self, iter: &Bound<'py, PyAny>) -> SaveResult {
        let next = || iter_next(iter);
        let mut index = 0usize;
        if self.proto == 0 {
            while let Some(item) = next()? {
                self.save_at(&item, || PathSegment::Item(index))?;
                self.write(&[APPEND])?;
                index += 1;
            }
            return Ok(());
        }
        loop {
            let Some(first) = next()? else { return Ok(()) };
            let Some(second) = next()? else {
                self.save_at(&first, || PathSegment::Item(index))?;
                return self.write(&[APPEND]);
            };
            self.write(&[MARK])?;
            self.save_at(&first, || PathSegment::Item(index))?;
            index += 1;
            let mut n = 1;
            let mut item = Some(second);
            while let Some(current) = item {
                self.save_at(&current, || PathSegment::Item(index))?;
                index += 1;
                n += 1;
                if n == BATCHSIZE {
                    break;
                }
                item = next()?;
            }
            self.write(&[APPENDS])?;
            if n != BATCHSIZE {
                return Ok(());
            }
        }
    }

    pub(super) fn save_dict(&mut self, dict: &Bound<'py, PyDict>) -> SaveResult {
        let obj = dict.as_any();
        if self.bin {
            self.write(&[EMPTY_DICT])?;
        } else {
            self.write(&[MARK, DICT])?;
        }
        self.memo_put(obj)?;
        if dict.is_empty() {
            return Ok(());
        }
        if self.proto == 0 {
            let items = dict.call_method0(pyo3::intern!(self.py, "items"))?;
            return self.batch_dict(&items.try_iter()?.into_any());
        }
        self.batch_dict_exact(dict)
    }

    #[inline(always)]
    fn save_item_pair(&mut self, key: &Bound<'py, PyAny>, value: &Bound<'py, PyAny>) -> SaveResult {
        self.save_at(key, || PathSegment::Key(key.clone().unbind()))?;
        self.save_at(value, || PathSegment::Value(key.clone().unbind()))
    }

    fn batch_dict_exact(&mut self, dict: &Bound<'py, PyDict>) -> SaveResult {
        let size = dict.len();
        let mut pos: ffi::Py_ssize_t = 0;
        if size == 1 {
            if let Some((key, value)) = dict_next(dict, &mut pos) {
                self.save_item_pair(&key, &value)?;
                return self.write(&[SETITEM]);
            }
            return Ok(());
        }
        loop {
            self.write(&[MARK])?;
            let mut in_batch = 0;
            while let Some((key, value)) = dict_next(dict, &mut pos) {
                self.save_item_pair(&key, &value)?;
                in_batch += 1;
                if in_batch == BATCHSIZE {
                    break;
                }
            }
            self.write(&[SETITEMS])?;
            if dict.len() != size {
                return Err(
                    PyRuntimeError::new_err("dictionary changed size during iteration").into(),
                );
            }
            if in_batch != BATCHSIZE {
                return Ok(());
            }
        }
    }

    /// (key, value) pairs from an iterator: a reduce value's dictitems, or `dict.items()`.
    pub(super) fn batch_dict(&mut self, iter: &Bound<'py, PyAny>) -> SaveResult {
        let next = || -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
            let Some(item) = iter_next(iter)? else {
                return Ok(None);
            };
            match item.cast::<PyTuple>() {
                Ok(pair) if pair.len() == 2 => Ok(Some((pair.get_item(0)?, pair.get_item(1)?))),
                _ => Err(PyTypeError::new_err(
                    "dict items iterator must return 2-tuples",
                )),
            }
        };
        if self.proto == 0 {
            while let Some((key, value)) = next()? {
                self.save_item_pair(&key, &value)?;
                self.write(&[SETITEM])?;
            }
            return Ok(());
        }
        loop {
            let Some(first) = next()? else { return Ok(()) };
            let Some(second) = next()? else {
                self.save_item_pair(&first.0, &first.1)?;
                return self.write(&[SETITEM]);
            };
            self.write(&[MARK])?;
            self.save_item_pair(&first.0, &first.1)?;
            let mut n = 1;
            let mut pair = Some(second);
            while let Some((key, value)) = pair {
                self.save_item_pair(&key, &value)?;
                n += 1;
                if n == BATCHSIZE {
                    break;
                }
                pair = next()?;
            }
            self.write(&[SETITEMS])?;
            if n != BATCHSIZE {
                return Ok(());
            }
        }
    }

    pub(super) fn save_tuple(&mut self, tuple: &Bound<'py, PyTuple>) -> SaveResult {
        let obj = tuple.as_any();
        let len = tuple.len();
        if len == 0 {
            return if self.proto >= 1 {
                self.write(&[EMPTY_TUPLE])
            } else {
                self.write(&[MARK, TUPLE])
            };
        }
        let short = len <= 3 && self.proto >= 2;
        if !short {
            self.write(&[MARK])?;
        }
        for (i, item) in tuple.iter().enumerate() {
            self.save_at(&item, || PathSegment::Item(i))?;
        }
        // A tuple can only reach itself through a mutable container; if saving its items
        // memoised it, throw away what we pushed and fetch the memoised one instead.
        if let Some(idx) = self.memo.get(obj) {
            if short {
                for _ in 0..len {
                    self.write(&[POP])?;
                }
            } else if self.bin {
                self.write(&[POP_MARK])?;
            } else {
                for _ in 0..=len {
                    self.write(&[POP])?;
                }
            }
            return self.memo_get(idx);
        }
        if short {
            self.write(&[[TUPLE1, TUPLE2, TUPLE3][len - 1]])?;
        } else {
            self.write(&[TUPLE])?;
        }
        self.memo_put(obj)
    }

    /// A set's items in the order they are written: iteration order, or canonical order in
    /// deterministic mode (see canonical.rs).
    fn set_items<T: crate::ffi::SetLayout>(
        &mut self,
        set: &Bound<'py, T>,
    ) -> SaveResult<Vec<Bound<'py, PyAny>>> {
        if self.mode.deterministic {
            return self.canonical_items(set);
        }
        Ok(crate::ffi::set_items(set))
    }

    pub(super) fn save_set(&mut self, set: &Bound<'py, PySet>) -> SaveResult {
        let py = self.py;
        let obj = set.as_any();
        if self.mode.deterministic {
            if self.is_being_keyed(obj) {
                return self.save_keying_placeholder();
            }
            return self.save_set_canonical(set);
        }
        if self.proto < 4 {
            let items = PyList::new(py, self.set_items(set)?)?;
            let args = PyTuple::new(py, [items])?;
            return self.save_reduce_parts(&py.get_type::<PySet>().into_any(), &args, Some(obj));
        }
        self.write(&[EMPTY_SET])?;
        self.memo_put(obj)?;
        let size = obj.len()?;
        if size == 0 {
            return Ok(());
        }
        let mut iter = crate::ffi::set_entries(set);
        let mut index = 0;
        loop {
            // Take the batch before saving it: no user code runs while a set is iterated, so
            // a reducer that mutates the set is caught by the size check below, with
            // CPython's message, rather than by the iterator.
            let mut batch = Vec::with_capacity(BATCHSIZE.min(size));
            for item in iter.by_ref() {
                batch.push(item);
                if batch.len() == BATCHSIZE {
                    break;
                }
            }
            let in_batch = batch.len();
            self.write(&[MARK])?;
            for item in batch {
                self.save_at(&item, || PathSegment::SetItem(index))?;
                index += 1;
            }
            self.write(&[ADDITEMS])?;
            if obj.len()? != size {
                return Err(PyRuntimeError::new_err("set changed size during iteration").into());
            }
            // Like CPython, a full last batch is followed by an empty MARK ADDITEMS.
            if in_batch != BATCHSIZE {
                return Ok(());
            }
        }
    }

    /// Deterministic mode: EMPTY_SET, memoised, then the items in canonical order.
    fn save_set_canonical(&mut self, set: &Bound<'py, PySet>) -> SaveResult {
        let py = self.py;
        let obj = set.as_any();
        let items = self.set_items(set)?;
        if self.proto < 4 {
            let items = PyList::new(py, items)?;
            let args = PyTuple::new(py, [items])?;
            return self.save_reduce_parts(&py.get_type::<PySet>().into_any(), &args, Some(obj));
        }
        self.write(&[EMPTY_SET])?;
        self.memo_put(obj)?;
        let size = items.len();
        for (batch_index, batch) in items.chunks(BATCHSIZE).enumerate() {
            self.write(&[MARK])?;
            for (i, item) in batch.iter().enumerate() {
                let index = batch_index * BATCHSIZE + i;
                self.save_at(item, || PathSegment::SetItem(index))?;
            }
            self.write(&[ADDITEMS])?;
            if obj.len()? != size {
                return Err(PyRuntimeError::new_err("set changed size during iteration").into());
            }
        }
        if size > 0 && size % BATCHSIZE == 0 {
            // Like CPython, a full last batch is followed by an empty MARK ADDITEMS.
            self.write(&[MARK, ADDITEMS])?;
        }
        Ok(())
    }

    pub(super) fn save_frozenset(&mut self, set: &Bound<'py, PyFrozenSet>) -> SaveResult {
        let py = self.py;
        let obj = set.as_any();
        if self.mode.deterministic && self.is_being_keyed(obj) {
            return self.save_keying_placeholder();
        }
        if self.proto < 4 {
            let items = PyList::new(py, self.set_items(set)?)?;
            let args = PyTuple::new(py, [items])?;
            return self.save_reduce_parts(
                &py.get_type::<PyFrozenSet>().into_any(),
                &args,
                Some(obj),
            );
        }
        self.write(&[MARK])?;
        if self.mode.deterministic {
            for (index, item) in self.canonical_items(set)?.iter().enumerate() {
                self.save_at(item, || PathSegment::SetItem(index))?;
            }
        } else {
            for (index, item) in crate::ffi::set_entries(set).enumerate() {
                self.save_at(&item, || PathSegment::SetItem(index))?;
            }
        }
        if let Some(idx) = self.memo.get(obj) {
            self.write(&[POP_MARK])?;
            return self.memo_get(idx);
        }
        self.write(&[FROZENSET])?;
        self.memo_put(obj)
    }
}
