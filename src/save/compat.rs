//! The cloudpickle-compatible wire (`compat=`): payloads that name no skypickle global, for
//! loaders that have cloudpickle 3.x (from PyPI or a vendored copy) and not skypickle.
//!
//! Everything skypickle writes by value goes through `_reconstruct(op, ...)` calls
//! (`begin_wire_call`). In compat mode each op is written instead with cloudpickle 3.x's
//! reconstructor of the same job, in the target module (`cloudpickle.cloudpickle`,
//! `pyspark.cloudpickle.cloudpickle`, ...), with cloudpickle's argument layout, or with
//! standard-library globals where cloudpickle has no reconstructor for it:
//!
//! | skypickle op | compat form |
//! |---|---|
//! | same layout: empty cell, cell, subimport, dynamic_subimport, builtin_type, skeleton class, skeleton enum, class_setstate, TypeVar, dataclass field kind, dict views, file | cloudpickle's function of that name |
//! | `_make_code(version, *args)` | `_builtin_type("CodeType")(*args)` |
//! | `_make_function(code, globals, closure)` | `_make_function(code, globals, None, None, closure)` |
//! | `_function_setstate(func, 6-tuple)`, `_restore_function(...)` | `_function_setstate(func, (dict, slotstate))` |
//! | `_cell_set(cell, value)` | BUILD `(None, {"cell_contents": value})` on the cell |
//! | `_make_lru_cache(func, maxsize, typed)` | `functools.lru_cache(maxsize, typed)(func)` |
//! | `_make_singledispatch(func, impls)` | `functools.singledispatch(func)`, then `.register(cls, impl)` per pair |
//! | `_make_cached_property(func, attrname, doc)` | `functools.cached_property(func)` + BUILD of its `attrname` and `__doc__` |
//!
//! Functions keep the behaviour skypickle gives them: the closure passed to `_make_function` is
//! the tuple of the function's own cells (memoised, created empty, filled by BUILD once the
//! function exists), so closures that share a `nonlocal` cell still share it.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::trace::Kind;
use super::Dumper;
use crate::by_value::class_parts::{ClassParts, Skeleton};
use crate::by_value::function_parts::FunctionParts;
use crate::errors::{pickling_error, AtPath, PathSegment, SaveResult};
use crate::wire::op;
use crate::writer::opcodes::*;

/// The cloudpickle copies whose module path `compat=` accepts without importing anything
/// (cloudpickle's reconstructors are the same 16 names in each, with the same layouts, from
/// cloudpickle 3.0.0 to 3.1.2).
pub const KNOWN_TARGETS: &[&str] = &[
    "cloudpickle.cloudpickle",
    "pyspark.cloudpickle.cloudpickle",
    "ray.cloudpickle.cloudpickle",
    "joblib.externals.cloudpickle.cloudpickle",
    "modal._vendor.cloudpickle",
];

/// The module whose reconstructors a compat payload names, from the `compat=` argument:
/// `None` for skypickle's own format. `"cloudpickle"` is `cloudpickle.cloudpickle`; a vendored
/// copy is named by its module path. Anything else is refused here, at the call, rather than
/// producing a payload that fails on the worker.
pub fn resolve_target<'py>(
    py: Python<'py>,
    compat: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyString>>> {
    let Some(compat) = compat.filter(|c| !c.is_none()) else {
        return Ok(None);
    };
    let Ok(text) = compat.cast::<PyString>() else {
        return Err(PyTypeError::new_err(format!(
            "compat must be None or a module path (str), not {}",
            compat.get_type().name()?
        )));
    };
    let text = text.to_cow()?;
    let target = match &*text {
        "cloudpickle" => "cloudpickle.cloudpickle",
        other => other,
    };
    if KNOWN_TARGETS.contains(&target) {
        return Ok(Some(PyString::intern(py, target)));
    }
    Err(PyValueError::new_err(format!(
        "compat={text:?} is not a cloudpickle copy skypickle can write for; use None \
         (skypickle's own format), \"cloudpickle\", or one of: {}",
        KNOWN_TARGETS.join(", ")
    )))
}

/// The name of cloudpickle's reconstructor for an op whose arguments it takes in skypickle's
/// layout, or None for the ops written another way.
fn same_layout_name(op: u8) -> Option<&'static str> {
    Some(match op {
        op::MAKE_EMPTY_CELL => "_make_empty_cell",
        op::MAKE_CELL => "_make_cell",
        op::SUBIMPORT => "subimport",
        op::DYNAMIC_SUBIMPORT => "dynamic_subimport",
        op::BUILTIN_TYPE => "_builtin_type",
        op::MAKE_SKELETON_CLASS => "_make_skeleton_class",
        op::MAKE_SKELETON_ENUM => "_make_skeleton_enum",
        op::CLASS_SETSTATE => "_class_setstate",
        op::MAKE_TYPEVAR => "_make_typevar",
        op::GET_DATACLASS_FIELD_TYPE_SENTINEL => "_get_dataclass_field_type_sentinel",
        op::MAKE_DICT_KEYS => "_make_dict_keys",
        op::MAKE_DICT_VALUES => "_make_dict_values",
        op::MAKE_DICT_ITEMS => "_make_dict_items",
        op::FILE_RECONSTRUCTOR => "_file_reconstructor",
        _ => return None,
    })
}

/// cloudpickle's reconstructors, in a fixed order: a name's position is its slot in
/// [`Compat`]'s table of written globals.
const CLOUDPICKLE_NAMES: [&str; 16] = [
    "_make_function",
    "_function_setstate",
    "_builtin_type",
    "_make_skeleton_class",
    "_make_skeleton_enum",
    "_class_setstate",
    "_make_typevar",
    "_make_cell",
    "_make_empty_cell",
    "subimport",
    "dynamic_subimport",
    "_make_dict_keys",
    "_make_dict_values",
    "_make_dict_items",
    "_file_reconstructor",
    "_get_dataclass_field_type_sentinel",
];

/// The compat target of one dump, and the memo index of each of cloudpickle's reconstructors
/// it has written (by name: they need not exist in this process, so the memo cannot key them
/// by object). A fixed table, not a map: a dump writes a handful of them, many times.
pub struct Compat<'py> {
    pub module: Bound<'py, PyString>,
    written: [Option<usize>; CLOUDPICKLE_NAMES.len()],
}

impl<'py> Compat<'py> {
    pub fn new(module: Bound<'py, PyString>) -> Self {
        Compat {
            module,
            written: [None; CLOUDPICKLE_NAMES.len()],
        }
    }
}

impl<'py> Dumper<'py> {
    /// Whether this dump writes the cloudpickle-compatible wire.
    #[inline]
    pub(crate) fn is_compat(&self) -> bool {
        self.compat.is_some()
    }

    /// Push cloudpickle's reconstructor `name` from the target module: a global, memoised.
    pub(crate) fn save_compat_global(&mut self, name: &'static str) -> SaveResult {
        let py = self.py;
        let Some(compat) = &self.compat else {
            return Err(pickling_error(py, "internal error: not a compat dump").into());
        };
        let Some(slot) = CLOUDPICKLE_NAMES.iter().position(|n| *n == name) else {
            return Err(
                pickling_error(py, format!("internal error: {name} is not cloudpickle's")).into(),
            );
        };
        if let Some(idx) = compat.written[slot] {
            return self.memo_get(idx);
        }
        let module = compat.module.clone();
        if self.trace.is_some() {
            self.trace_import(module.as_any(), PyString::new(py, name).as_any());
        }
        if self.proto >= 4 {
            self.save_name(module.as_any())?;
            self.save_static_name(name)?;
            self.write(&[STACK_GLOBAL])?;
        } else {
            self.write_global_text(module.as_any(), PyString::new(py, name).as_any())?;
        }
        let idx = self.memo.put_anonymous(py);
        self.write_memo_put(idx)?;
        if let Some(compat) = &mut self.compat {
            compat.written[slot] = Some(idx);
        }
        Ok(())
    }

    /// Compat form of `begin_wire_call(op)` for ops cloudpickle takes in skypickle's layout:
    /// push cloudpickle's function and MARK (the arguments follow; `end_wire_call` closes).
    pub(crate) fn begin_compat_call(&mut self, op: u8) -> SaveResult {
        let Some(name) = same_layout_name(op) else {
            return Err(pickling_error(
                self.py,
                format!("internal error: skypickle op {op} has no cloudpickle form here"),
            )
            .into());
        };
        self.save_compat_global(name)?;
        self.write(&[MARK])
    }

    /// `_builtin_type("CodeType")`, the class cloudpickle rebuilds code objects with,
    /// memoised as `types.CodeType` itself.
    pub(crate) fn save_compat_code_type(&mut self) -> SaveResult {
        let code_type = self.py.get_type::<pyo3::types::PyCode>().into_any();
        if let Some(idx) = self.memo.get(&code_type) {
            return self.memo_get(idx);
        }
        self.save_compat_global("_builtin_type")?;
        self.write(&[MARK])?;
        self.save_static_name("CodeType")?;
        self.write(&[TUPLE, REDUCE])?;
        self.memo_put(&code_type)
    }

    /// Fill a memoised cell: the cell, `(None, {"cell_contents": value})`, BUILD, POP
    /// (`pickle`'s BUILD sets each slot-state entry with setattr). `closure_index` is the
    /// cell's place in the closure of the function being written, if it is one: the value's
    /// path is then `__closure__[i].cell_contents`, in errors and in `explain` alike.
    pub(crate) fn save_compat_cell_fill(
        &mut self,
        cell: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
        closure_index: Option<usize>,
    ) -> SaveResult {
        self.save(cell)?;
        self.write(&[MARK, NONE])?;
        self.write(if self.bin {
            &[EMPTY_DICT]
        } else {
            &[MARK, DICT]
        })?;
        self.save_name(pyo3::intern!(self.py, "cell_contents").as_any())?;
        let contents = || PathSegment::Attr("cell_contents");
        match closure_index {
            Some(i) => self.save_through(
                value,
                Some(Kind::Cell),
                &[
                    &|| PathSegment::Attr("__closure__"),
                    &|| PathSegment::Item(i),
                    &contents,
                ],
            )?,
            None => self.save_through(value, Some(Kind::Cell), &[&contents])?,
        }
        self.write(&[SETITEM, TUPLE, BUILD, POP])
    }

    /// A reconstructor call found in a reduce value (`callable(*args)` with `callable` one of
    /// skypickle's), written in its compat form. The constructed object is left on the stack.
    pub(crate) fn save_compat_construct(
        &mut self,
        op: u8,
        args: &Bound<'py, PyTuple>,
    ) -> SaveResult {
        let py = self.py;
        let arg = |i: usize| args.get_item(i);
        let save_args = |this: &mut Self, items: &[Bound<'py, PyAny>]| -> SaveResult {
            this.write(&[MARK])?;
            for (i, item) in items.iter().enumerate() {
                this.save_through(
                    item,
                    None,
                    &[&|| PathSegment::ReduceArgs, &|| PathSegment::Item(i)],
                )?;
            }
            this.write(&[TUPLE, REDUCE])
        };
        let all: Vec<Bound<'py, PyAny>> = args.iter().collect();
        match op {
            op::MAKE_CODE => {
                // (version, *args) or (version, args): the version check is skypickle's.
                self.save_compat_code_type()?;
                let rest: Vec<Bound<'py, PyAny>> = match all.as_slice() {
                    [_, single] if single.is_instance_of::<PyTuple>() => {
                        single.cast::<PyTuple>()?.iter().collect()
                    }
                    [_, rest @ ..] => rest.to_vec(),
                    [] => Vec::new(),
                };
                save_args(self, &rest)
            }
            op::MAKE_FUNCTION => {
                self.save_compat_global("_make_function")?;
                let none = py.None().into_bound(py);
                let items = match all.as_slice() {
                    [code, globals, closure] => {
                        vec![
                            code.clone(),
                            globals.clone(),
                            none.clone(),
                            none,
                            closure.clone(),
                        ]
                    }
                    _ => all.clone(),
                };
                save_args(self, &items)
            }
            op::MAKE_LRU_CACHE => {
                // functools.lru_cache(maxsize, typed)(func)
                let functools = py.import("functools")?;
                self.save(&functools.getattr("lru_cache")?)?;
                save_args(self, &[arg(1)?, arg(2)?])?;
                save_args(self, &[arg(0)?])
            }
            op::MAKE_SINGLEDISPATCH => {
                // functools.singledispatch(func), then getattr(generic, "register")(cls, impl)
                // for each pair, the generic function staying on the stack (reached again
                // through a memo entry of its own).
                let functools = py.import("functools")?;
                self.save(&functools.getattr("singledispatch")?)?;
                save_args(self, &[arg(0)?])?;
                let stand_in = PyDict::new(py).into_any();
                self.memo_put(&stand_in)?;
                let getattr = self.lk.getattr.bind(py).clone();
                for pair in arg(1)?.try_iter()? {
                    let pair = pair?.cast_into::<PyTuple>().map_err(PyErr::from)?;
                    if pair.len() != 2 {
                        return Err(pickling_error(
                            py,
                            "_make_singledispatch() items are (class, function) pairs",
                        )
                        .into());
                    }
                    self.save(&getattr)?;
                    self.write(&[MARK])?;
                    self.save(&stand_in)?;
                    self.save_name(pyo3::intern!(py, "register").as_any())?;
                    self.write(&[TUPLE, REDUCE])?;
                    save_args(self, &[pair.get_item(0)?, pair.get_item(1)?])?;
                    self.write(&[POP])?;
                }
                Ok(())
            }
            op::MAKE_CACHED_PROPERTY => {
                // functools.cached_property(func), then its attrname and __doc__ by BUILD (an
                // instance dict update, as __init__ and __set_name__ leave them).
                let functools = py.import("functools")?;
                self.save(&functools.getattr("cached_property")?)?;
                save_args(self, &[arg(0)?])?;
                let state = PyDict::new(py);
                state.set_item("attrname", arg(1)?)?;
                state.set_item("__doc__", arg(2)?)?;
                self.save_through(state.as_any(), Some(Kind::State), &[&|| PathSegment::State])?;
                self.write(&[BUILD])
            }
            op::CELL_SET | op::FUNCTION_SETSTATE | op::RESTORE_FUNCTION | op::NEW_FUNCTION => {
                // Setters and skypickle's function forms only ever come from skypickle's own
                // save path or as state setters (translated by `save_compat_setstate`).
                Err(pickling_error(
                    py,
                    format!(
                        "{} cannot be written for a cloudpickle loader as a constructor",
                        crate::wire::WIRE_NAMES[usize::from(op)]
                    ),
                )
                .into())
            }
            _ => {
                self.begin_compat_call(op)?;
                for (i, item) in all.iter().enumerate() {
                    self.save_through(
                        item,
                        None,
                        &[&|| PathSegment::ReduceArgs, &|| PathSegment::Item(i)],
                    )?;
                }
                self.end_wire_call()
            }
        }
    }

    /// A state setter of skypickle's (`setter(obj, state)` in a reduce value), written in its
    /// compat form, off the stack.
    pub(crate) fn save_compat_setstate(
        &mut self,
        op: u8,
        obj: &Bound<'py, PyAny>,
        state: &Bound<'py, PyAny>,
    ) -> SaveResult {
        let py = self.py;
        match op {
            op::CELL_SET => self.save_compat_cell_fill(obj, state, None),
            op::FUNCTION_SETSTATE => {
                let state = cloudpickle_function_state(py, state)?;
                self.save_compat_global("_function_setstate")?;
                self.write(&[MARK])?;
                self.save(obj)?;
                self.save_through(state.as_any(), Some(Kind::State), &[&|| PathSegment::State])?;
                self.write(&[TUPLE, REDUCE, POP])
            }
            op::CLASS_SETSTATE => {
                self.begin_compat_call(op)?;
                self.save(obj)?;
                self.save_through(state, Some(Kind::State), &[&|| PathSegment::State])?;
                self.end_wire_call()?;
                self.write(&[POP])
            }
            _ => Err(pickling_error(
                py,
                format!(
                    "{} cannot be written for a cloudpickle loader as a state setter",
                    crate::wire::WIRE_NAMES[usize::from(op)]
                ),
            )
            .into()),
        }
    }
}

/// cloudpickle's `(state, slotstate)` for `_function_setstate`, from skypickle's 6-tuple
/// `(globals, defaults, kwdefaults, cells, attrs, func_dict)` (or a pair, already
/// cloudpickle's). `slotstate` always holds the three entries cloudpickle's setter pops:
/// `__globals__`, `__closure__` and `_cloudpickle_submodules`.
fn cloudpickle_function_state<'py>(
    py: Python<'py>,
    state: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let state = state.cast::<PyTuple>()?;
    if state.len() == 2 {
        return Ok(state.clone());
    }
    if state.len() != 6 {
        return Err(PyValueError::new_err(
            "_function_setstate() state must be a (dict, slotstate) pair or skypickle's 6-tuple",
        ));
    }
    let given = |i: usize| -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(Some(state.get_item(i)?).filter(|v| !v.is_none()))
    };
    let slotstate = PyDict::new(py);
    let mut submodules = PyList::empty(py).into_any();
    if let Some(attrs) = given(4)? {
        for (key, value) in attrs.cast::<PyDict>()?.copy()?.iter() {
            if key
                .cast::<PyString>()
                .is_ok_and(|k| k.to_cow().is_ok_and(|k| k == "_skypickle_submodules"))
            {
                submodules = value;
            } else {
                slotstate.set_item(key, value)?;
            }
        }
    }
    if let Some(defaults) = given(1)? {
        slotstate.set_item("__defaults__", defaults)?;
    }
    if let Some(kwdefaults) = given(2)? {
        slotstate.set_item("__kwdefaults__", kwdefaults)?;
    }
    if given(3)?.is_some() {
        // Cell contents by index: skypickle's reduce value never has them (its cells are
        // pickled as cells and filled by their own setter).
        return Err(PyValueError::new_err(
            "a function state with cell contents by index has no cloudpickle form",
        ));
    }
    slotstate.set_item(
        "__globals__",
        given(0)?.unwrap_or_else(|| PyDict::new(py).into_any()),
    )?;
    slotstate.set_item("__closure__", py.None())?;
    slotstate.set_item("_cloudpickle_submodules", submodules)?;
    let func_dict = given(5)?.unwrap_or_else(|| PyDict::new(py).into_any());
    PyTuple::new(py, [func_dict, slotstate.into_any()])
}

impl<'py> Dumper<'py> {
    /// A function by value, in cloudpickle's form:
    ///
    /// ```text
    /// _make_function(code, base_globals, None, None, closure)   memoised as the function
    /// <each cell created here> BUILD (None, {"cell_contents": value}) POP
    /// _function_setstate(func, (func_dict, slotstate)) POP
    /// ```
    ///
    /// `closure` is the tuple of the function's own cells, created empty (and memoised) here
    /// or already written: closures that share a `nonlocal` cell share it after loading, as
    /// with skypickle's own format. `slotstate` holds the attributes that differ from what
    /// `FunctionType(code, globals)` gives, the defaults, and the three entries cloudpickle's
    /// setter requires (`__globals__`, `__closure__`, `_cloudpickle_submodules`).
    pub(crate) fn save_function_compat(
        &mut self,
        func: &Bound<'py, PyAny>,
        parts: FunctionParts<'py>,
    ) -> SaveResult {
        let py = self.py;
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

        // 1. The function, with its cells.
        self.save_compat_global("_make_function")?;
        self.write(&[MARK])?;
        self.save_at(&code, || PathSegment::Attr("__code__"))?;
        self.save_at(base_globals.as_any(), || PathSegment::Attr("__globals__"))?;
        self.write(&[NONE, NONE])?;
        let fills = self.save_closure(closure.as_ref())?;
        self.write(&[TUPLE, REDUCE])?;
        // The function may have been memoised while its parts were saved: keep that one.
        if let Some(idx) = self.memo.get(func) {
            self.write(&[POP])?;
            return self.memo_get(idx);
        }
        self.memo_put(func)?;

        // 2. The cells this function created, filled now that it exists (a cell may hold it).
        for (i, cell, contents) in &fills {
            self.save_compat_cell_fill(cell, contents, Some(*i))?;
        }

        // 3. _function_setstate(func, (func_dict, slotstate)), unless `_make_function` gave
        //    the function everything already (it sets `__builtins__` itself).
        if attrs.is_empty()
            && defaults.is_none()
            && kwdefaults.is_none()
            && globals.is_empty()
            && submodules.is_empty()
            && func_dict.is_none()
        {
            return Ok(());
        }
        self.save_compat_global("_function_setstate")?;
        self.write(&[MARK])?;
        self.save(func)?;
        self.write(&[MARK])?;
        match func_dict {
            Some(dict) => {
                self.save_transient_dict(dict.iter(), Dumper::save_name, |this, key, value| {
                    this.save(value)
                        .at(|| PathSegment::Value(key.clone().unbind()))
                        .at(|| PathSegment::Attr("__dict__"))
                })?;
            }
            None => self.write_empty_dict()?,
        }
        self.write_empty_dict()?;
        if self.bin {
            self.write(&[MARK])?;
        }
        for (name, value) in &attrs {
            let name = *name;
            self.save_static_name(name)?;
            self.save_name(value).at(|| PathSegment::Attr(name))?;
            self.end_dict_entry()?;
        }
        if let Some(defaults) = &defaults {
            self.save_static_name("__defaults__")?;
            self.save_defaults(Some(defaults), "__defaults__")?;
            self.end_dict_entry()?;
        }
        if let Some(kwdefaults) = &kwdefaults {
            self.save_static_name("__kwdefaults__")?;
            self.save_defaults(Some(kwdefaults), "__kwdefaults__")?;
            self.end_dict_entry()?;
        }
        self.save_static_name("__globals__")?;
        if globals.is_empty() {
            self.write_empty_dict()?;
        } else {
            self.save_globals_dict(globals)?;
        }
        self.end_dict_entry()?;
        self.save_static_name("__closure__")?;
        self.write(&[NONE])?;
        self.end_dict_entry()?;
        self.save_static_name("_cloudpickle_submodules")?;
        if submodules.is_empty() {
            self.write(if self.bin {
                &[EMPTY_LIST]
            } else {
                &[MARK, LIST]
            })?;
        } else {
            self.save(PyList::new(py, submodules)?.as_any())?;
        }
        self.end_dict_entry()?;
        if self.bin {
            self.write(&[SETITEMS])?;
        }
        self.write(&[TUPLE, TUPLE, REDUCE, POP])
    }

    /// An empty dict nothing else refers to (not memoised).
    fn write_empty_dict(&mut self) -> SaveResult {
        self.write(if self.bin {
            &[EMPTY_DICT]
        } else {
            &[MARK, DICT]
        })
    }

    /// After a key and its value inside a dict being built: SETITEM below protocol 1 (from
    /// protocol 1 the entries are batched by the caller in one MARK ... SETITEMS).
    fn end_dict_entry(&mut self) -> SaveResult {
        if self.bin {
            Ok(())
        } else {
            self.write(&[SETITEM])
        }
    }
}

impl<'py> Dumper<'py> {
    /// Refuse, at dump time, a class cloudpickle's loader cannot rebuild: one whose bases'
    /// `__init_subclass__` requires arguments (Python keeps the keywords of a class statement
    /// nowhere, so they cannot be sent; skypickle's own loader builds such a class without
    /// calling the hook again, cloudpickle's calls it and fails). A payload that fails on the
    /// worker would be worse than this error.
    pub(crate) fn check_compat_class(
        &mut self,
        cls: &Bound<'py, PyAny>,
        parts: &ClassParts<'py>,
    ) -> SaveResult {
        let py = self.py;
        let Skeleton::Class { bases, .. } = &parts.skeleton else {
            return Ok(());
        };
        for base in bases.try_iter()? {
            let base = base?;
            let Some(hook) = base.getattr_opt(pyo3::intern!(py, "__init_subclass__"))? else {
                continue;
            };
            // object's own hook is a builtin and takes no arguments (checked first: looking
            // for a missing `__func__` raises inside getattr, which costs).
            if hook.is_instance_of::<pyo3::types::PyCFunction>() {
                continue;
            }
            // A classmethod of Python code.
            let Some(func) = hook.getattr_opt(pyo3::intern!(py, "__func__"))? else {
                continue;
            };
            let Ok(func) = func.cast::<pyo3::types::PyFunction>() else {
                continue;
            };
            if let Some(name) = required_argument(func)? {
                return Err(pickling_error(
                    py,
                    format!(
                        "Can't pickle {} for a cloudpickle loader: {}.__init_subclass__ \
                         requires the argument {name:?}, which a class statement's keywords \
                         cannot carry to cloudpickle (skypickle's own format, compat=None, \
                         can send this class)",
                        cls.repr()?,
                        base.getattr(pyo3::intern!(py, "__qualname__"))?,
                    ),
                )
                .into());
            }
        }
        Ok(())
    }
}

/// The first argument a classmethod's function requires besides `cls` (no default), if any.
fn required_argument(func: &Bound<'_, pyo3::types::PyFunction>) -> PyResult<Option<String>> {
    let py = func.py();
    let code = crate::ffi::function_code(func);
    let count = |name: &str| -> PyResult<usize> { code.getattr(name)?.extract() };
    let (positional, kwonly) = (count("co_argcount")?, count("co_kwonlyargcount")?);
    let varnames = code.getattr(pyo3::intern!(py, "co_varnames"))?;
    let varnames = varnames.cast::<PyTuple>()?;
    let defaults = func
        .getattr(pyo3::intern!(py, "__defaults__"))?
        .cast::<PyTuple>()
        .map_or(0, PyTupleMethods::len);
    // Positional parameters after `cls` that no default covers.
    if positional > 1 + defaults {
        return Ok(Some(varnames.get_item(1)?.str()?.to_string()));
    }
    let kwdefaults = func.getattr(pyo3::intern!(py, "__kwdefaults__"))?;
    let kwdefaults = kwdefaults.cast::<PyDict>().ok();
    for i in positional..positional + kwonly {
        let name = varnames.get_item(i)?;
        let has_default = match &kwdefaults {
            Some(d) => d.contains(&name)?,
            None => false,
        };
        if !has_default {
            return Ok(Some(name.str()?.to_string()));
        }
    }
    Ok(None)
}
