//! Functions by value: what a function is made of, and what its code needs (the globals it
//! uses, the submodules it reaches: `submodules.rs`).
//!
//! [`FunctionParts`] gathers a function's parts once; they are written two ways:
//!
//! * by the save path (`save/by_value_function.rs`), directly as opcodes (the fast path, protocol-agnostic):
//!   `_reconstruct(MAKE_FUNCTION, code, base_globals, closure)`, memoised, then
//!   `_reconstruct(RESTORE_FUNCTION, func, globals, defaults, kwdefaults, cells, attrs, dict)`;
//! * as a reduce value, for Python callers of `Pickler.reducer_override`:
//!   `(_make_function, (code, base_globals, closure), (globals, defaults, kwdefaults, None,
//!   attrs, dict), None, None, _function_setstate)`.
//!
//! * `base_globals` is one dict per globals namespace per pickler (`globals_ref`), holding
//!   only `__package__`, `__name__`, `__path__`, `__file__`: functions of one dump that shared a
//!   namespace share one after loading.
//! * `closure` is the function's own cell tuple. Cells are pickled by identity (an empty cell,
//!   memoised, then filled), so two closures that share a `nonlocal` cell still share it after
//!   loading (cloudpickle gives each its own copy), and a function that refers to itself
//!   through its closure needs no special case.
//! * `attrs` holds only what differs from what `FunctionType(code, base_globals)` gives by
//!   itself: a lambda has no `__name__`, `__qualname__`, `__module__` or `__doc__` entry.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFunction, PyList, PyModule, PyString, PyTuple};

use super::code::{code_info, CodeInfo};
use super::submodules::find_imported_submodules;
use crate::ffi::FunctionFields;
use crate::wire::{op, wire};

/// The base globals of functions whose namespace is `func_globals`: one dict per namespace
/// per pickler, made on first use.
pub fn base_globals<'py>(
    func_globals: &Bound<'py, PyDict>,
    globals_ref: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    let py = func_globals.py();
    let key = (func_globals.as_ptr() as usize).into_pyobject(py)?;
    if let Some(base) = globals_ref.get_item(&key)? {
        return Ok(base.cast_into::<PyDict>()?);
    }
    let base = PyDict::new(py);
    for name in [
        pyo3::intern!(py, "__package__"),
        pyo3::intern!(py, "__name__"),
        pyo3::intern!(py, "__path__"),
        pyo3::intern!(py, "__file__"),
    ] {
        if let Some(value) = func_globals.get_item(name)? {
            base.set_item(name, value)?;
        }
    }
    if crate::deterministic::current().normalize_paths {
        // Where the namespace's file lives is a source location too.
        if let Some(file) = base.get_item(pyo3::intern!(py, "__file__"))? {
            base.set_item(
                pyo3::intern!(py, "__file__"),
                crate::deterministic::normalized_path(&file)?,
            )?;
        }
        if let Some(path) = base.get_item(pyo3::intern!(py, "__path__"))? {
            base.set_item(
                pyo3::intern!(py, "__path__"),
                crate::deterministic::normalized_path_list(&path)?,
            )?;
        }
    }
    globals_ref.set_item(&key, &base)?;
    Ok(base)
}

/// What a by-value function is made of.
pub struct FunctionParts<'py> {
    pub code: Bound<'py, PyAny>,
    pub base_globals: Bound<'py, PyDict>,
    /// The function's own cell tuple, if it has one.
    pub closure: Option<Bound<'py, PyTuple>>,
    /// The globals the code uses that its namespace defines, in order of first use.
    pub globals: Vec<(Bound<'py, PyString>, Bound<'py, PyAny>)>,
    /// Submodules the code reaches through a global package (imported on load).
    pub submodules: Vec<Bound<'py, PyAny>>,
    pub defaults: Option<Bound<'py, PyAny>>,
    pub kwdefaults: Option<Bound<'py, PyAny>>,
    /// Attributes that differ from what `FunctionType(code, base_globals)` gives.
    pub attrs: Vec<(&'static str, Bound<'py, PyAny>)>,
    /// A non-empty `__dict__`.
    pub func_dict: Option<Bound<'py, PyDict>>,
}

fn same_text(a: &Bound<'_, PyAny>, b: Option<&Bound<'_, PyAny>>) -> bool {
    match b {
        Some(b) => a.is(b) || a.eq(b).unwrap_or(false),
        None => a.is_none(),
    }
}

impl<'py> FunctionParts<'py> {
    /// The parts of `func` (an exact function), given the global names its code uses
    /// ([`global_names`], which callers may cache per code object).
    pub fn of(
        func: &Bound<'py, PyFunction>,
        globals_ref: &Bound<'py, PyDict>,
        info: &CodeInfo,
    ) -> PyResult<Self> {
        let py = func.py();
        let fields = FunctionFields::of(func)?;
        let not_none = |v: Option<Bound<'py, PyAny>>| v.filter(|v| !v.is_none());
        let FunctionFields {
            code,
            globals: func_globals,
            name,
            qualname,
            doc,
            dict,
            module,
            type_params,
            ..
        } = fields;
        let defaults = not_none(fields.defaults);
        let kwdefaults = not_none(fields.kwdefaults);
        let closure = not_none(fields.closure);
        let annotations = not_none(fields.annotations);
        let func_globals = func_globals.cast_into::<PyDict>()?;
        let base_globals = base_globals(&func_globals, globals_ref)?;

        let mut globals = Vec::with_capacity(info.global_names.len());
        for name in &info.global_names {
            let name = name.bind(py);
            if let Some(value) = func_globals.get_item(name)? {
                globals.push((name.clone(), value));
            }
        }
        let closure = closure.map(pyo3::Bound::cast_into::<PyTuple>).transpose()?;

        // Submodules: only modules that are packages can have any.
        let mut deps: Vec<Bound<'py, PyAny>> = Vec::new();
        for (_, value) in &globals {
            if value.is_instance_of::<PyModule>() {
                deps.push(value.clone());
            }
        }
        if let Some(cells) = &closure {
            for cell in cells.iter() {
                if let Ok(value) = cell.getattr(pyo3::intern!(py, "cell_contents")) {
                    if value.is_instance_of::<PyModule>() {
                        deps.push(value);
                    }
                }
            }
        }
        let submodules = if deps.is_empty() {
            Vec::new()
        } else {
            // Not only `co_names`: nested code and string constants reach submodules too
            // (cloudpickle issue 581; see `code::attribute_names`).
            let names = info.attribute_names(&code)?;
            let reached = find_imported_submodules(&names, &deps)?;
            super::bound_submodule::bind_by_value_submodules(reached)?
        };

        // What FunctionType(code, base_globals) gives by itself (CPython 3.9-3.13): the code's
        // name and qualified name, the namespace's __name__ as __module__, and the first
        // constant as __doc__ when it is a str.
        let mut attrs: Vec<(&'static str, Bound<'py, PyAny>)> = Vec::new();
        let co_name = info.name.bind(py);
        let natural_qualname = info.qualname.bind(py);
        let none = || py.None().into_bound(py);
        let name = name.unwrap_or_else(none);
        if !same_text(&name, Some(co_name)) {
            attrs.push(("__name__", name));
        }
        let qualname = qualname.unwrap_or_else(none);
        if !same_text(&qualname, Some(natural_qualname)) {
            attrs.push(("__qualname__", qualname));
        }
        let module = module.unwrap_or_else(none);
        let natural_module = base_globals.get_item(pyo3::intern!(py, "__name__"))?;
        if !same_text(&module, natural_module.as_ref()) {
            attrs.push(("__module__", module));
        }
        let natural_doc = info.natural_doc.as_ref().map(|d| d.bind(py).clone());
        let doc = doc.unwrap_or_else(none);
        if !same_text(&doc, natural_doc.as_ref()) {
            attrs.push(("__doc__", doc));
        }
        if let Some(annotations) = annotations {
            // 3.10+ may keep them in a compact tuple until first read: read them as a dict.
            let annotations = if annotations.is_instance_of::<PyDict>() {
                annotations
            } else {
                func.getattr(pyo3::intern!(py, "__annotations__"))?
            };
            if annotations.is_truthy()? {
                attrs.push(("__annotations__", annotations));
            }
        }
        if let Some(type_params) = type_params.filter(|t| t.is_truthy().unwrap_or(false)) {
            attrs.push(("__type_params__", type_params));
        }
        // A copy: saving its values runs user code, which may change the function's own dict
        // (iterating a dict that changes size is an error, and pyo3's iterator panics on it).
        let func_dict = match dict {
            Some(d) => Some(d.cast_into::<PyDict>()?.copy()?).filter(|d| !d.is_empty()),
            None => None,
        };
        Ok(FunctionParts {
            code,
            base_globals,
            closure,
            globals,
            submodules,
            defaults,
            kwdefaults,
            attrs,
            func_dict,
        })
    }

    /// The reduce value: `(_make_function, (code, base_globals, closure), state, None, None,
    /// _function_setstate)`, with `state = (globals, defaults, kwdefaults, None, attrs,
    /// func_dict)` and the submodules carried in `attrs` under `_skypickle_submodules` (so
    /// they are imported on load).
    pub fn into_reduce_value(self) -> PyResult<Bound<'py, PyTuple>> {
        let py = self.code.py();
        let w = wire(py)?;
        let none = || py.None().into_bound(py);
        let globals = if self.globals.is_empty() {
            none()
        } else {
            let d = PyDict::new(py);
            for (name, value) in self.globals {
                // Fresh key strings: whether the sender interned them must not show.
                d.set_item(super::copy_str(&name)?, value)?;
            }
            d.into_any()
        };
        let attrs = if self.attrs.is_empty() && self.submodules.is_empty() {
            none()
        } else {
            let d = PyDict::new(py);
            for (name, value) in self.attrs {
                d.set_item(name, value)?;
            }
            if !self.submodules.is_empty() {
                d.set_item("_skypickle_submodules", PyList::new(py, self.submodules)?)?;
            }
            d.into_any()
        };
        let func_dict = match self.func_dict {
            None => none(),
            Some(dict) => {
                let d = PyDict::new(py);
                for (k, v) in dict.iter() {
                    match k.cast::<PyString>() {
                        Ok(key) => d.set_item(super::copy_str(key)?, v)?,
                        Err(_) => d.set_item(k, v)?,
                    }
                }
                d.into_any()
            }
        };
        let state = PyTuple::new(
            py,
            [
                globals,
                self.defaults.unwrap_or_else(none),
                self.kwdefaults.unwrap_or_else(none),
                none(),
                attrs,
                func_dict,
            ],
        )?;
        let closure = self.closure.map_or_else(none, Bound::into_any);
        let args = PyTuple::new(py, [self.code, self.base_globals.into_any(), closure])?;
        super::reduce_with_state_setter(
            w.get(py, op::MAKE_FUNCTION),
            args.into_any(),
            state.into_any(),
            w.get(py, op::FUNCTION_SETSTATE),
        )
    }
}

/// The reduce value of a function pickled by value (the Python-visible form).
pub fn function_reduce<'py>(
    func: &Bound<'py, PyFunction>,
    globals_ref: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyTuple>> {
    let code = crate::ffi::function_code(func);
    let info = code_info(&code)?;
    FunctionParts::of(func, globals_ref, &info)?.into_reduce_value()
}
