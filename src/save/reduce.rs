//! `save_reduce`: writing a reduce value `(callable, args[, state[, listitems[, dictitems[,
//! state_setter]]]])` with REDUCE, NEWOBJ or NEWOBJ_EX, then the items and the state,
//! validated and emitted exactly as `_pickle.c` does.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use super::trace::Kind;
use super::Dumper;
use crate::errors::{pickling_error, AtPath, PathSegment, SaveResult};
use crate::writer::opcodes::*;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// How the callable is to be invoked on load.
enum Construct {
    Reduce,
    NewObj,
    NewObjEx,
}

impl<'py> Dumper<'py> {
    /// A reduce value from a reducer, for `obj` (or `None` when nothing is to be memoised).
    pub(crate) fn save_reduce(
        &mut self,
        rv: &Bound<'py, PyTuple>,
        obj: Option<&Bound<'py, PyAny>>,
    ) -> SaveResult {
        let py = self.py;
        let size = rv.len();
        if !(2..=6).contains(&size) {
            return Err(pickling_error(
                py,
                "tuple returned by __reduce__ must contain 2 through 6 elements",
            )
            .into());
        }
        let item = |i: usize| -> PyResult<Option<Bound<'py, PyAny>>> {
            if i < size {
                let value = rv.get_item(i)?;
                Ok(if value.is_none() { None } else { Some(value) })
            } else {
                Ok(None)
            }
        };
        let callable = rv.get_item(0)?;
        let args = rv.get_item(1)?;
        let state = item(2)?;
        let listitems = item(3)?;
        let dictitems = item(4)?;
        let state_setter = item(5)?;
        if !callable.is_callable() {
            return Err(pickling_error(
                py,
                "first item of the tuple returned by __reduce__ must be callable",
            )
            .into());
        }
        let Ok(args) = args.cast_into::<PyTuple>() else {
            return Err(pickling_error(
                py,
                "second item of the tuple returned by __reduce__ must be a tuple",
            )
            .into());
        };
        if let Some(items) = &listitems {
            if !crate::ffi::is_iterator(items) {
                return Err(pickling_error(
                    py,
                    format!(
                        "fourth element of the tuple returned by __reduce__ must be an iterator, not {}",
                        type_name(items)
                    ),
                )
                .into());
            }
        }
        if let Some(items) = &dictitems {
            if !crate::ffi::is_iterator(items) {
                return Err(pickling_error(
                    py,
                    format!(
                        "fifth element of the tuple returned by __reduce__ must be an iterator, not {}",
                        type_name(items)
                    ),
                )
                .into());
            }
        }
        if let Some(setter) = &state_setter {
            if !setter.is_callable() {
                return Err(pickling_error(
                    py,
                    format!(
                        "sixth element of the tuple returned by __reduce__ must be a function, not {}",
                        type_name(setter)
                    ),
                )
                .into());
            }
        }

        self.save_construct(&callable, &args, obj)?;

        // The object may have been memoised while its own arguments were saved (it was
        // reachable from them): drop what we built and fetch the memoised one.
        if let Some(obj) = obj {
            if let Some(idx) = self.memo.get(obj) {
                self.write(&[POP])?;
                self.memo_get(idx)?;
                return Ok(());
            }
            self.memo_put(obj)?;
        }
        if let Some(items) = &listitems {
            self.batch_list(items)?;
        }
        if let Some(items) = &dictitems {
            self.batch_dict(items)?;
        }
        if let Some(state) = &state {
            if let (Some(setter), Some(obj)) = (&state_setter, obj) {
                if let Some(op) = self.wire_op(setter) {
                    if self.is_compat() {
                        return self
                            .save_compat_setstate(op, obj, state)
                            .at(|| PathSegment::State);
                    }
                    // One of ours: `_reconstruct(op, obj, state)`, kept off the stack.
                    self.begin_wire_call(op).at(|| PathSegment::State)?;
                    self.save(obj)?;
                    self.save_through(state, Some(Kind::State), &[&|| PathSegment::State])?;
                    self.end_wire_call()?;
                    return self.write(&[POP]);
                }
                // setter(obj, state), kept off the stack: TUPLE2 REDUCE POP.
                self.save_at(setter, || PathSegment::State)?;
                self.save(obj)?;
                self.save_through(state, Some(Kind::State), &[&|| PathSegment::State])?;
                self.write(&[TUPLE2, REDUCE, POP])?;
            } else {
                self.save_through(state, Some(Kind::State), &[&|| PathSegment::State])?;
                self.write(&[BUILD])?;
            }
        }
        Ok(())
    }

    /// An internal reduction (bytes below protocol 3, sets below protocol 4, ...):
    /// `callable(*args)`, memoised as `obj`.
    pub(crate) fn save_reduce_parts(
        &mut self,
        callable: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        obj: Option<&Bound<'py, PyAny>>,
    ) -> SaveResult {
        let rv = PyTuple::new(self.py, [callable.clone(), args.clone().into_any()])?;
        self.save_reduce(&rv, obj)
    }

    /// The `_reconstruct` op of `callable` when it is one of skypickle's reconstructors (and
    /// no copyreg extension code could stand for it instead).
    pub(super) fn wire_op(&self, callable: &Bound<'py, PyAny>) -> Option<u8> {
        if callable.get_type_ptr() as usize != self.lk.types.builtin_function
            || !self.lk.extension_registry.bind(self.py).is_empty()
        {
            return None;
        }
        crate::wire::wire(self.py).ok()?.op_of(callable)
    }

    fn construct_kind(&self, callable: &Bound<'py, PyAny>) -> PyResult<Construct> {
        if self.proto < 2 {
            return Ok(Construct::Reduce);
        }
        if callable.is(&self.lk.copyreg_newobj) {
            return Ok(Construct::NewObj);
        }
        let py = self.py;
        let Some(name) = callable.getattr_opt(pyo3::intern!(py, "__name__"))? else {
            return Ok(Construct::Reduce);
        };
        let Ok(name) = name.cast::<PyString>() else {
            return Ok(Construct::Reduce);
        };
        // A name that is not UTF-8 (lone surrogates) is neither of them.
        Ok(match name.to_cow().as_deref() {
            Ok("__newobj_ex__") => Construct::NewObjEx,
            Ok("__newobj__") => Construct::NewObj,
            _ => Construct::Reduce,
        })
    }

    /// Push the constructed object: REDUCE, NEWOBJ or NEWOBJ_EX.
    fn save_construct(
        &mut self,
        callable: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        obj: Option<&Bound<'py, PyAny>>,
    ) -> SaveResult {
        let py = self.py;
        match self.construct_kind(callable)? {
            Construct::NewObjEx => {
                if args.len() != 3 {
                    return Err(pickling_error(
                        py,
                        format!(
                            "length of the NEWOBJ_EX argument tuple must be exactly 3, not {}",
                            args.len()
                        ),
                    )
                    .into());
                }
                let cls = args.get_item(0)?;
                let Ok(cls) = cls.cast_into::<PyType>() else {
                    return Err(pickling_error(
                        py,
                        format!(
                            "first item from NEWOBJ_EX argument tuple must be a class, not {}",
                            type_name(&args.get_item(0)?)
                        ),
                    )
                    .into());
                };
                let cls_args = args.get_item(1)?;
                let Ok(cls_args) = cls_args.cast_into::<PyTuple>() else {
                    return Err(pickling_error(
                        py,
                        format!(
                            "second item from NEWOBJ_EX argument tuple must be a tuple, not {}",
                            type_name(&args.get_item(1)?)
                        ),
                    )
                    .into());
                };
                let kwargs = args.get_item(2)?;
                let Ok(kwargs) = kwargs.cast_into::<PyDict>() else {
                    return Err(pickling_error(
                        py,
                        format!(
                            "third item from NEWOBJ_EX argument tuple must be a dict, not {}",
                            type_name(&args.get_item(2)?)
                        ),
                    )
                    .into());
                };
                if self.proto >= 4 {
                    self.save_at(cls.as_any(), || PathSegment::ReduceArgs)?;
                    self.save_at(cls_args.as_any(), || PathSegment::ReduceArgs)?;
                    self.save_at(kwargs.as_any(), || PathSegment::ReduceArgs)?;
                    return self.write(&[NEWOBJ_EX]);
                }
                // Protocols 2 and 3: partial(cls.__new__, cls, *args, **kwargs)().
                let mut call_args =
                    vec![cls.getattr(pyo3::intern!(py, "__new__"))?, cls.into_any()];
                call_args.extend(cls_args.iter());
                let partial = self
                    .lk
                    .partial
                    .bind(py)
                    .call(PyTuple::new(py, call_args)?, Some(&kwargs))?;
                self.save_at(&partial, || PathSegment::ReduceCallable)?;
                self.save(PyTuple::empty(py).as_any())?;
                self.write(&[REDUCE])
            }
            Construct::NewObj => {
                if args.is_empty() {
                    return Err(pickling_error(py, "__newobj__ arglist is empty").into());
                }
                let cls = args.get_item(0)?;
                if !cls.is_instance_of::<PyType>() {
                    return Err(
                        pickling_error(py, "args[0] from __newobj__ args is not a type").into(),
                    );
                }
                if let Some(obj) = obj {
                    let obj_class = match obj.getattr(pyo3::intern!(py, "__class__")) {
                        Ok(c) => c,
                        Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => {
                            obj.get_type().into_any()
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if !obj_class.is(&cls) {
                        return Err(pickling_error(
                            py,
                            "args[0] from __newobj__ args has the wrong class",
                        )
                        .into());
                    }
                }
                self.save_at(&cls, || PathSegment::Class)?;
                let rest = args.get_slice(1, args.len());
                self.save_at(rest.as_any(), || PathSegment::ReduceArgs)?;
                self.write(&[NEWOBJ])
            }
            Construct::Reduce => {
                if let Some(op) = self.wire_op(callable) {
                    if self.is_compat() {
                        return self.save_compat_construct(op, args);
                    }
                    // One of skypickle's reconstructors: `_reconstruct(op, *args)`, so the
                    // loader looks up one global for all of them.
                    self.begin_wire_call(op)
                        .at(|| PathSegment::ReduceCallable)?;
                    for (i, arg) in args.iter().enumerate() {
                        self.save_through(
                            &arg,
                            None,
                            &[&|| PathSegment::ReduceArgs, &|| PathSegment::Item(i)],
                        )?;
                    }
                    return self.end_wire_call();
                }
                self.save_at(callable, || PathSegment::ReduceCallable)?;
                self.save_at(args.as_any(), || PathSegment::ReduceArgs)?;
                self.write(&[REDUCE])
            }
        }
    }
}
