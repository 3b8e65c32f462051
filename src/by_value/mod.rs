//! What cloudpickle adds to pickle: functions, classes and modules that cannot be imported
//! by the loader travel **by value**.
//!
//! `reducer_override` is cloudpickle's hook, called in `save()` after the built-in containers:
//! it returns a reduce value for a class or function that must go by value, or `None` to let
//! the normal path (a global by reference) proceed. The special reducers of cloudpickle's
//! dispatch table (cells, code, modules, methods, ...) are in `reducers`.

pub mod bound_submodule;
pub mod class_parts;
pub mod code;
pub mod decision;
pub mod function_parts;
pub mod identity;
pub mod per_call;
pub mod reducers;
pub mod submodules;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFunction, PyString, PyTuple, PyType};

use crate::wire::{op, wire};

/// Whether `cls` was created by a class statement (or `type(...)`, `types.new_class`, ...),
/// as opposed to by C code: only those can be rebuilt from their namespace.
pub(crate) fn is_python_class(cls: &Bound<'_, PyType>) -> PyResult<bool> {
    Ok(crate::ffi::type_dealloc(cls) == crate::known::get(cls.py())?.python_class_dealloc)
}

/// A new str with the same text as `s`, lone surrogates included: the by-value layer copies
/// names so that whether the sender interned them cannot show in the memo. A str holding lone
/// surrogates has no UTF-8 form, so it is copied through `surrogatepass`.
pub fn copy_str<'py>(s: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyString>> {
    let py = s.py();
    if let Ok(text) = s.to_cow() {
        return Ok(PyString::new(py, &text));
    }
    Ok(crate::ffi::str_encode_surrogatepass(s)?
        .call_method1(
            pyo3::intern!(py, "decode"),
            (
                pyo3::intern!(py, "utf-8"),
                pyo3::intern!(py, "surrogatepass"),
            ),
        )?
        .cast_into::<PyString>()?)
}

/// A reduce value whose object is memoised before its state is saved and restored by
/// `setter(obj, state)`: `(callable, args, state, None, None, setter)`. Functions, classes and
/// cells all use it, so whatever their state refers to (the object itself included) is safe.
pub fn reduce_with_state_setter<'py>(
    callable: &Bound<'py, PyAny>,
    args: Bound<'py, PyAny>,
    state: Bound<'py, PyAny>,
    setter: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let py = args.py();
    PyTuple::new(
        py,
        [
            callable.clone(),
            args,
            state,
            py.None().into_bound(py),
            py.None().into_bound(py),
            setter.clone(),
        ],
    )
}

/// What to do with a function.
pub enum FunctionDecision<'py> {
    /// Importable by the loader: a global, with the module `lookup_module_and_qualname` found.
    ByReference,
    /// A reduce value that rebuilds it (`functools.singledispatch` functions).
    Reduce(Bound<'py, PyTuple>),
    /// By value, from its [`function_parts::FunctionParts`].
    ByValue,
}

/// The decision for an exact function (cloudpickle's `_function_reduce`).
pub fn function_decision<'py>(func: &Bound<'py, PyFunction>) -> PyResult<FunctionDecision<'py>> {
    if decision::should_pickle_by_reference(func.as_any())? {
        return Ok(FunctionDecision::ByReference);
    }
    if let Some(rv) = singledispatch_reduce(func)? {
        return Ok(FunctionDecision::Reduce(rv));
    }
    Ok(FunctionDecision::ByValue)
}

/// cloudpickle's `reducer_override`: a reduce value for `obj`, or `None` for "not mine".
pub fn reducer_override<'py>(
    obj: &Bound<'py, PyAny>,
    globals_ref: &Bound<'py, PyDict>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    if let Ok(cls) = obj.cast::<PyType>() {
        return match class_decision(cls, true)? {
            ClassDecision::ByReference => Ok(None),
            ClassDecision::Reduce(rv) => Ok(Some(rv)),
            ClassDecision::ByValue(parts) => parts.into_reduce_value().map(Some),
        };
    }
    if let Ok(func) = obj.cast_exact::<PyFunction>() {
        return match function_decision(func)? {
            FunctionDecision::ByReference => Ok(None),
            FunctionDecision::Reduce(rv) => Ok(Some(rv)),
            FunctionDecision::ByValue => {
                function_parts::function_reduce(func, globals_ref).map(Some)
            }
        };
    }
    Ok(None)
}

/// A `functools.singledispatch` function defined where the loader cannot import it: the
/// generic function and its registered implementations, re-registered on load (its dispatch
/// cache holds weak references, which cannot be pickled; cloudpickle fails here).
fn singledispatch_reduce<'py>(
    func: &Bound<'py, PyFunction>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let py = func.py();
    // Read without `getattr`, which would create an empty `__dict__` for most functions.
    let Some(attrs) = crate::ffi::function_dict(func).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    // The entries used are read once, and a missing one means "not a singledispatch
    // function": a key of the dict is user code (its __eq__ runs on lookup), so an entry found
    // by one lookup may be gone at the next.
    let (Some(registry), Some(wrapped)) = (
        attrs.get_item(pyo3::intern!(py, "registry"))?,
        attrs.get_item(pyo3::intern!(py, "__wrapped__"))?,
    ) else {
        return Ok(None);
    };
    for key in ["dispatch", "register", "_clear_cache"] {
        if !attrs.contains(key)? {
            return Ok(None);
        }
    }
    let object = py.get_type::<pyo3::types::PyAny>();
    let implementations = pyo3::types::PyList::empty(py);
    for pair in registry
        .call_method0(pyo3::intern!(py, "items"))?
        .try_iter()?
    {
        let pair = pair?;
        let cls = pair.get_item(0)?;
        if !cls.is(&object) {
            implementations.append(pair)?;
        }
    }
    let make = wire(py)?.get(py, op::MAKE_SINGLEDISPATCH).clone();
    Ok(Some(PyTuple::new(
        py,
        [
            make,
            PyTuple::new(py, [wrapped, implementations.into_any()])?.into_any(),
        ],
    )?))
}

/// What to do with a class.
pub enum ClassDecision<'py> {
    /// Importable by the loader (or implemented in C, which `pickle`'s by-reference path
    /// then reports): a global.
    ByReference,
    /// A reduce value that rebuilds it (the `types` module's classes, by name).
    Reduce(Bound<'py, PyTuple>),
    /// By value, from its parts.
    ByValue(class_parts::ClassParts<'py>),
}

/// The decision for a class (cloudpickle's `_class_reduce`): the `types` module's classes by
/// name; classes the loader cannot import, by value.
///
/// `fresh_keys` copies the class-dict keys (see [`class_parts::extract_class_dict`]): the save
/// path, which writes names by their text, passes false.
pub fn class_decision<'py>(
    cls: &Bound<'py, PyType>,
    fresh_keys: bool,
) -> PyResult<ClassDecision<'py>> {
    let py = cls.py();
    let known = crate::known::get(py)?;
    if let Some(name) = known.builtin_type_names.bind(py).get_item(cls)? {
        let name = name.cast_into::<PyString>()?;
        // NoneType and friends keep `pickle`'s `type(None)` form (save_type).
        if matches!(
            &*name.to_cow()?,
            "NoneType" | "EllipsisType" | "NotImplementedType"
        ) {
            return Ok(ClassDecision::ByReference);
        }
        let builtin_type = wire(py)?.get(py, op::BUILTIN_TYPE).clone();
        return Ok(ClassDecision::Reduce(PyTuple::new(
            py,
            [builtin_type, PyTuple::new(py, [name])?.into_any()],
        )?));
    }
    // A class implemented in C cannot be rebuilt from its namespace: instead of a pickle that
    // fails to load (cloudpickle's behaviour), let `pickle`'s by-reference path report it now.
    if !is_python_class(cls)? || decision::should_pickle_by_reference(cls.as_any())? {
        return Ok(ClassDecision::ByReference);
    }
    class_parts::ClassParts::of(cls, fresh_keys).map(ClassDecision::ByValue)
}
