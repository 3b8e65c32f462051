//! Classes by value on the save path: the [`ClassParts`] from `by_value/class_parts.rs`,
//! written like `save_reduce` would write their reduce value, except that the class dict goes
//! out as a dict nothing else refers to, with its keys written by their text (no copies of
//! the keys are made, and whether the sender interned them cannot show in the bytes).

use pyo3::prelude::*;

use super::trace::Kind;
use super::Dumper;
use crate::by_value::class_parts::ClassParts;
use crate::errors::{PathSegment, SaveResult};
use crate::wire::op;
use crate::writer::opcodes::*;

impl<'py> Dumper<'py> {
    /// A class by value: `_reconstruct(skeleton op, *skeleton args)`, memoised, then
    /// `_reconstruct(CLASS_SETSTATE, cls, (class_dict, {}))` POP.
    pub(super) fn save_class_by_value(
        &mut self,
        cls: &Bound<'py, PyAny>,
        parts: &ClassParts<'py>,
    ) -> SaveResult {
        let mut args = parts.skeleton_args();
        if self.is_compat() {
            self.check_compat_class(cls, parts)?;
            if parts.skeleton_op() == op::MAKE_SKELETON_ENUM {
                // cloudpickle's enum skeleton ignores `extra` (the enum's own `__init__`):
                // members are built as cloudpickle builds them; the `__init__` still arrives
                // with the namespace.
                if let Some(extra) = args.last_mut() {
                    *extra = self.py.None().into_bound(self.py);
                }
            }
        }
        self.begin_wire_call(parts.skeleton_op())?;
        for (i, arg) in args.iter().enumerate() {
            self.save_through(
                arg,
                None,
                &[&|| PathSegment::ReduceArgs, &|| PathSegment::Item(i)],
            )?;
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
        self.save_transient_dict(
            parts.class_dict.iter(),
            super::Dumper::save_name,
            |this, key, value| {
                this.save_through(
                    value,
                    Some(Kind::ClassAttribute),
                    &[&|| PathSegment::State, &|| PathSegment::Item(0), &|| {
                        PathSegment::Value(key.clone().unbind())
                    }],
                )
            },
        )?;
        // The slot state: always empty (a dict of its own, memoised like any dict, so the
        // bytes are those of the reduce value's form).
        self.save(pyo3::types::PyDict::new(self.py).as_any())?;
        self.write(&[TUPLE])?;
        self.end_wire_call()?;
        self.write(&[POP])
    }
}
