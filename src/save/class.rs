//! Classes by value on the save path: the reduce value from `by_value::class`, written like
//! `save_reduce` would write it, except that the class dict goes out as a dict nothing else
//! refers to, with its keys written by their text (no copies of the keys are made, and
//! whether the sender interned them cannot show in the bytes).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::Dumper;
use crate::errors::{AtPath, PathSegment, SaveResult};
use crate::rebuild::op;
use crate::writer::opcodes::*;

impl<'py> Dumper<'py> {
    /// A class by value, from its reduce value `(constructor, args, (class_dict, slotstate),
    /// None, None, _class_setstate)` (or a 2-tuple for `types` classes): like `save_reduce`,
    /// except that the class dict is written as a dict nothing else refers to, its keys by
    /// their text.
    pub(super) fn save_class_by_value(
        &mut self,
        cls: &Bound<'py, PyAny>,
        rv: &Bound<'py, PyTuple>,
    ) -> SaveResult {
        let state = if rv.len() == 6 {
            rv.get_item(2)?.cast_into::<PyTuple>().ok()
        } else {
            None
        };
        let (Some(state), Some(op)) = (state, self.wire_op(&rv.get_item(0)?)) else {
            return self.save_reduce(rv, Some(cls));
        };
        self.begin_wire_call(op)?;
        let args = rv.get_item(1)?.cast_into::<PyTuple>()?;
        for (i, arg) in args.iter().enumerate() {
            self.save(&arg)
                .at(|| PathSegment::Item(i))
                .at(|| PathSegment::ReduceArgs)?;
        }
        self.end_wire_call()?;
        if let Some(idx) = self.memo.get(cls) {
            self.write(&[POP])?;
            return self.memo_get(idx);
        }
        self.memo_put(cls)?;

        self.begin_wire_call(op::CLASS_SETSTATE)?;
        self.save(cls)?;
        self.write(&[MARK])?;
        let class_dict = state.get_item(0)?.cast_into::<PyDict>()?;
        self.save_transient_dict(
            class_dict.iter(),
            |this, key| this.save_name(key),
            |this, key, value| {
                this.save(value)
                    .at(|| PathSegment::Value(key.clone().unbind()))
                    .at(|| PathSegment::Item(0))
                    .at(|| PathSegment::State)
            },
        )?;
        self.save(&state.get_item(1)?).at(|| PathSegment::State)?;
        self.write(&[TUPLE])?;
        self.end_wire_call()?;
        self.write(&[POP])
    }
}
