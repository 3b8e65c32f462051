//! The by-value layer's hot path: functions, code objects and cells written directly as
//! opcodes, calling skypickle's reconstructors through `_reconstruct(op, *args)`.
//!
//! The reduce-value form (`by_value::function_parts::FunctionParts::into_reduce_value`, what
//! `Pickler.reducer_override` returns to Python) loads to the same objects; this path skips
//! building the reduce tuples, their state dicts and the transient containers, and never
//! memoises what nothing else can refer to.
//!
//! A function is written as
//!
//! ```text
//! _reconstruct(NEW_FUNCTION, code, base_globals, closure, globals, defaults, kwdefaults)
//!                                                             memoised as the function
//! <each submodule to import> POP
//! _reconstruct(RESTORE_FUNCTION, func, globals, defaults, kwdefaults, cells, attrs, dict) POP
//! ```
//!
//! Trailing None arguments are left out, and the second call too when there is nothing to
//! restore. A global or default goes to the first call when it cannot lead back to the
//! function (an atom, or an object already memoised: the loader has built it by then), else to
//! the second. The closure's cells are created empty (and memoised) inside the first call and
//! filled by the second, after the function is memoised: a cell that refers back to the
//! function (recursion through a closure) is then a memo hit. A lambda over module constants
//! is one call.

use pyo3::prelude::*;
use pyo3::types::{PyFunction, PyInt, PyString, PyTuple};

use super::trace::Kind;
use super::Dumper;
use crate::by_value::code::{code_args, code_info, CodeArg};
use crate::by_value::function_parts::FunctionParts;
use crate::errors::{AtPath, PathSegment, SaveResult};
use crate::fxhash::FxHashMap;
use crate::wire::{op, python_tag, wire};
use crate::writer::opcodes::*;

/// A cell a function's closure created: its index in the closure, the cell, its contents.
pub(super) type CellFill<'py> = (usize, Bound<'py, PyAny>, Bound<'py, PyAny>);

/// Per-dump caches of the by-value path.
#[derive(Default)]
pub struct ByValueCache {
    /// Text of each str written by value -> its memo index.
    names: FxHashMap<Box<[u8]>, usize>,
}

impl<'py> Dumper<'py> {
    /// Whether `reducer` is skypickle's own reducer for code objects.
    pub(super) fn is_default_code_reducer(&self, reducer: &Bound<'py, PyAny>) -> bool {
        reducer.as_ptr() as usize == self.lk.code_reducer
    }

    /// Whether `reducer` is skypickle's own reducer for cells.
    pub(super) fn is_default_cell_reducer(&self, reducer: &Bound<'py, PyAny>) -> bool {
        reducer.as_ptr() as usize == self.lk.cell_reducer
    }

    /// Start `_reconstruct(op, ...)`: push `_reconstruct`, MARK and the op number. The
    /// arguments follow; [`Dumper::end_wire_call`] closes the call.
    pub(crate) fn begin_wire_call(&mut self, op: u8) -> SaveResult {
        if self.is_compat() {
            return self.begin_compat_call(op);
        }
        let reconstruct = wire(self.py)?.reconstruct.bind(self.py).clone();
        self.save(&reconstruct)?;
        self.write(&[MARK])?;
        if self.bin {
            self.write(&[BININT1, op])
        } else {
            self.save(PyInt::new(self.py, op).as_any())
        }
    }

    /// Close `_reconstruct(op, ...)`: TUPLE REDUCE.
    pub(crate) fn end_wire_call(&mut self) -> SaveResult {
        self.write(&[TUPLE, REDUCE])
    }

    /// A str written by its text: equal strings share one memo entry within a dump, whatever
    /// their identity, so whether the sender had them interned cannot show in the bytes. Any
    /// other object (a non-str dict key) is saved as usual.
    pub(super) fn save_name(&mut self, text: &Bound<'py, PyAny>) -> SaveResult {
        // Anything but an exact str (a dict key may be anything) is saved as usual.
        let Ok(exact) = text.cast_exact::<PyString>() else {
            return self.save(text);
        };
        if !self.bin {
            return self.save(crate::by_value::copy_str(exact)?.as_any());
        }
        match crate::ffi::str_utf8(exact) {
            Some(bytes) => self.save_name_text(bytes),
            // Lone surrogates: the general path encodes them with surrogatepass.
            None => self.save(text),
        }
    }

    /// [`Dumper::save_name`] for UTF-8 text held by Rust (protocol 1+).
    fn save_name_text(&mut self, text: &[u8]) -> SaveResult {
        if let Some(&idx) = self.by_value.names.get(text) {
            return self.memo_get(idx);
        }
        self.write_str_payload(text, None)?;
        let idx = self.memo.put_anonymous(self.py);
        if self.by_value.names.capacity() == 0 {
            // Sized once for a typical by-value dump (its names, attributes and keys) rather
            // than grown, and rehashed, step by step.
            self.by_value.names.reserve(128);
        }
        self.by_value.names.insert(text.into(), idx);
        self.write_memo_put(idx)
    }

    /// A name known to Rust (an attribute name).
    pub(super) fn save_static_name(&mut self, name: &'static str) -> SaveResult {
        if self.bin {
            self.save_name_text(name.as_bytes())
        } else {
            self.save(PyString::new(self.py, name).as_any())
        }
    }

    /// A tuple of names (`co_names`, `co_varnames`, ...), not memoised: in the loader it is
    /// always a new tuple.
    fn save_name_tuple(&mut self, names: &Bound<'py, PyAny>) -> SaveResult {
        let names = names.cast::<PyTuple>()?;
        if names.is_empty() && self.bin {
            return self.write(&[EMPTY_TUPLE]);
        }
        self.write(&[MARK])?;
        for name in names.iter() {
            self.save_name(&name)?;
        }
        self.write(&[TUPLE])
    }

    /// Bytes that nothing else refers to (bytecode, line tables): not memoised from protocol 3
    /// on; below it, bytes go through their general (reduce) form.
    fn save_code_bytes(&mut self, value: &Bound<'py, PyAny>) -> SaveResult {
        if self.proto < 3 {
            return self.save(value);
        }
        let data = value.cast::<pyo3::types::PyBytes>()?.as_bytes();
        self.write_bytes_unmemoised(data, Some(value))
    }

    /// A code object: `_reconstruct(MAKE_CODE, version, *CodeType arguments)`, memoised.
    pub(super) fn save_code(&mut self, code: &Bound<'py, PyAny>) -> SaveResult {
        let py = self.py;
        let info = code_info(code)?;
        if self.is_compat() {
            // cloudpickle's form: `_builtin_type("CodeType")(*args)`, no version tag.
            self.save_compat_code_type()?;
            self.write(&[MARK])?;
        } else {
            self.begin_wire_call(op::MAKE_CODE)?;
            self.save_name(python_tag(py)?.as_any())?;
        }
        for arg in code_args(code, &info)? {
            match arg {
                CodeArg::Number(value) => self.save(&value)?,
                CodeArg::Bytes(value) => self.save_code_bytes(&value)?,
                CodeArg::Consts(value) => {
                    self.save_at(&value, || PathSegment::Attr("co_consts"))?;
                }
                CodeArg::Names(value) => self.save_name_tuple(&value)?,
                CodeArg::Name(value) => self.save_name(&value)?,
            }
        }
        self.end_wire_call()?;
        self.memo_put(code)
    }

    /// A cell not yet in the memo: `_reconstruct(MAKE_EMPTY_CELL)`, memoised. Returns its
    /// contents, which the caller writes once whatever refers back to the cell is memoised.
    pub(super) fn save_empty_cell(
        &mut self,
        cell: &Bound<'py, PyAny>,
    ) -> SaveResult<Option<Bound<'py, PyAny>>> {
        self.begin_wire_call(op::MAKE_EMPTY_CELL)?;
        self.end_wire_call()?;
        self.memo_put(cell)?;
        Ok(cell.getattr(pyo3::intern!(self.py, "cell_contents")).ok())
    }

    /// A cell on its own (not as part of a closure): created empty, memoised, then filled by
    /// `_reconstruct(CELL_SET, cell, contents)`.
    pub(super) fn save_cell(&mut self, cell: &Bound<'py, PyAny>) -> SaveResult {
        if let Some(contents) = self.save_empty_cell(cell)? {
            if self.is_compat() {
                return self
                    .save_compat_cell_fill(cell, &contents, None)
                    .at(|| PathSegment::State);
            }
            self.begin_wire_call(op::CELL_SET)?;
            self.save(cell)?;
            self.save_at(&contents, || PathSegment::State)?;
            self.end_wire_call()?;
            self.write(&[POP])?;
        }
        Ok(())
    }

    /// A dict that nothing else refers to, from its items: EMPTY_DICT, then SETITEMS (or
    /// SETITEM per item in protocol 0), not memoised.
    pub(super) fn save_transient_dict<K, V>(
        &mut self,
        items: impl IntoIterator<Item = (K, V)>,
        mut save_key: impl FnMut(&mut Self, &K) -> SaveResult,
        mut save_value: impl FnMut(&mut Self, &K, &V) -> SaveResult,
    ) -> SaveResult {
        self.write(if self.bin {
            &[EMPTY_DICT]
        } else {
            &[MARK, DICT]
        })?;
        let mut open = false;
        for (key, value) in items {
            if self.bin && !open {
                self.write(&[MARK])?;
                open = true;
            }
            save_key(self, &key)?;
            save_value(self, &key, &value)?;
            if !self.bin {
                self.write(&[SETITEM])?;
            }
        }
        if open {
            self.write(&[SETITEMS])?;
        }
        Ok(())
    }

    /// Whether the loader will have built `obj` by the time it reaches this point: an atom
    /// (None, bool, int, float, str, bytes) or an object already in the memo.
    fn is_built(&self, obj: &Bound<'py, PyAny>) -> bool {
        let tp = obj.get_type_ptr() as usize;
        let types = &self.lk.types;
        obj.is_none()
            || tp == types.bool
            || tp == types.int
            || tp == types.float
            || tp == types.str
            || tp == types.bytes
            || self.memo.contains(obj)
    }

    /// The globals a function uses, as a dict nothing else refers to (None when empty).
    pub(super) fn save_globals_dict(
        &mut self,
        globals: Vec<(Bound<'py, PyString>, Bound<'py, PyAny>)>,
    ) -> SaveResult {
        if globals.is_empty() {
            return self.write(&[NONE]);
        }
        self.save_transient_dict(
            globals,
            |this, name| this.save_name(name.as_any()),
            |this, name, value| {
                this.save_through(
                    value,
                    Some(Kind::Global),
                    &[&|| PathSegment::Attr("__globals__"), &|| {
                        PathSegment::Value(name.clone().into_any().unbind())
                    }],
                )
            },
        )
    }

    /// A function's closure as the tuple of its own cells (or None): each cell already written
    /// is a memo hit, each new one is created empty and memoised. Returns the new cells that
    /// have contents (index, cell, contents), which the caller fills once the function is
    /// memoised (a cell may refer back to it).
    pub(super) fn save_closure(
        &mut self,
        closure: Option<&Bound<'py, PyTuple>>,
    ) -> SaveResult<Vec<CellFill<'py>>> {
        let mut fills = Vec::new();
        let Some(cells) = closure else {
            self.write(&[NONE])?;
            return Ok(fills);
        };
        self.write(&[MARK])?;
        for (i, cell) in cells.iter().enumerate() {
            if let Some(idx) = self.memo.get(&cell) {
                self.memo_get(idx)?;
            } else if let Some(contents) = self
                .save_empty_cell(&cell)
                .at(|| PathSegment::Item(i))
                .at(|| PathSegment::Attr("__closure__"))?
            {
                fills.push((i, cell, contents));
            }
        }
        self.write(&[TUPLE])?;
        Ok(fills)
    }

    /// `__defaults__` or `__kwdefaults__` (`attr`), or None.
    pub(super) fn save_defaults(
        &mut self,
        value: Option<&Bound<'py, PyAny>>,
        attr: &'static str,
    ) -> SaveResult {
        match value {
            Some(value) => {
                self.save_through(value, Some(Kind::Defaults), &[&|| PathSegment::Attr(attr)])
            }
            None => self.write(&[NONE]),
        }
    }

    /// A function pickled by value (see the module documentation for the form).
    pub(super) fn save_function_by_value(&mut self, func: &Bound<'py, PyFunction>) -> SaveResult {
        let py = self.py;
        let code = crate::ffi::function_code(func);
        let info = code_info(&code)?;
        let parts = FunctionParts::of(func, &self.globals_ref, &info)?;
        if self.is_compat() {
            return self.save_function_compat(func.as_any(), parts);
        }

        let FunctionParts {
            code,
            base_globals,
            closure,
            globals,
            submodules,
            defaults,
            kwdefaults,
            attrs,
            func_dict,
        } = parts;
        // Globals and defaults that cannot lead back to the function (atoms, and objects the
        // memo already has, so the loader has them before the function exists) go to the
        // constructor; the others are restored once the function is memoised.
        let (early_globals, globals): (Vec<_>, Vec<_>) = globals
            .into_iter()
            .partition(|(_, value)| self.is_built(value));
        let early_defaults = defaults
            .as_ref()
            .filter(|d| {
                d.cast::<PyTuple>()
                    .is_ok_and(|t| t.iter().all(|v| self.is_built(&v)))
            })
            .cloned();
        let defaults = defaults.filter(|_| early_defaults.is_none());
        let early_kwdefaults = kwdefaults
            .as_ref()
            .filter(|d| {
                d.cast::<pyo3::types::PyDict>()
                    .is_ok_and(|d| d.iter().all(|(_, v)| self.is_built(&v)))
            })
            .cloned();
        let kwdefaults = kwdefaults.filter(|_| early_kwdefaults.is_none());

        // 1. The function itself, with empty cells.
        self.begin_wire_call(op::NEW_FUNCTION)?;
        self.save_at(&code, || PathSegment::Attr("__code__"))?;
        self.save_at(base_globals.as_any(), || PathSegment::Attr("__globals__"))?;
        let fills: Vec<(usize, Bound<'py, PyAny>)> = self
            .save_closure(closure.as_ref())?
            .into_iter()
            .map(|(i, _cell, contents)| (i, contents))
            .collect();
        let early_last = [
            !early_globals.is_empty(),
            early_defaults.is_some(),
            early_kwdefaults.is_some(),
        ]
        .iter()
        .rposition(|p| *p);
        if let Some(last) = early_last {
            self.save_globals_dict(early_globals)?;
            if last >= 1 {
                self.save_defaults(early_defaults.as_ref(), "__defaults__")?;
            }
            if last >= 2 {
                self.save_defaults(early_kwdefaults.as_ref(), "__kwdefaults__")?;
            }
        }
        self.end_wire_call()?;
        // The function may have been memoised while its parts were saved: keep that one.
        if let Some(idx) = self.memo.get(func) {
            self.write(&[POP])?;
            return self.memo_get(idx);
        }
        self.memo_put(func)?;

        // 2. Submodules its code reaches: loading them imports them.
        for module in &submodules {
            self.save(module)?;
            self.write(&[POP])?;
        }

        // 3. Everything else, after the function is memoised (any of it may refer back).
        let present = [
            !globals.is_empty(),
            defaults.is_some(),
            kwdefaults.is_some(),
            !fills.is_empty(),
            !attrs.is_empty(),
            func_dict.is_some(),
        ];
        // Trailing absent arguments are left out.
        let Some(last) = present.iter().rposition(|p| *p) else {
            return Ok(());
        };
        self.begin_wire_call(op::RESTORE_FUNCTION)?;
        self.save(func)?;
        self.save_globals_dict(globals)?;
        if last >= 1 {
            self.save_defaults(defaults.as_ref(), "__defaults__")?;
        }
        if last >= 2 {
            self.save_defaults(kwdefaults.as_ref(), "__kwdefaults__")?;
        }
        if last >= 3 {
            if fills.is_empty() {
                self.write(&[NONE])?;
            } else {
                self.save_transient_dict(
                    fills,
                    |this, i| this.save(PyInt::new(py, *i).as_any()),
                    |this, i, value| {
                        let i = *i;
                        this.save_through(
                            value,
                            Some(Kind::Cell),
                            &[
                                &|| PathSegment::Attr("__closure__"),
                                &|| PathSegment::Item(i),
                                &|| PathSegment::Attr("cell_contents"),
                            ],
                        )
                    },
                )?;
            }
        }
        if last >= 4 {
            if attrs.is_empty() {
                self.write(&[NONE])?;
            } else {
                self.save_transient_dict(
                    attrs,
                    |this, name| this.save_static_name(name),
                    |this, name, value| {
                        let name = *name;
                        this.save_name(value).at(|| PathSegment::Attr(name))
                    },
                )?;
            }
        }
        if let Some(dict) = func_dict {
            self.save_transient_dict(dict.iter(), super::Dumper::save_name, |this, key, value| {
                this.save_through(
                    value,
                    None,
                    &[&|| PathSegment::Attr("__dict__"), &|| {
                        PathSegment::Value(key.clone().unbind())
                    }],
                )
            })?;
        }
        self.end_wire_call()?;
        self.write(&[POP])
    }
}
