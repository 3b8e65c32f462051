//! What cloudpickle adds to pickle: functions, classes and modules that cannot be imported
//! by the loader travel **by value**.
//!
//! `reducer_override` is cloudpickle's hook, called in `save()` after the built-in containers:
//! it returns a reduce value for a class or function that must go by value, or `None` to let
//! the normal path (a global by reference) proceed. The special reducers of cloudpickle's
//! dispatch table (cells, code, modules, methods, ...) are in `reducers`.

pub mod class;
pub mod code;
pub mod function;
pub mod lookup;
pub mod reducers;
pub mod tracker;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFunction, PyString, PyTuple, PyType};

use crate::rebuild::wire;

/// `types.X` for every class in the `types` module (`types.CodeType` -> "CodeType"): such
/// classes have no importable name, so they are written as `_builtin_type("CodeType")`.
static BUILTIN_TYPE_NAMES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn builtin_type_names(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    BUILTIN_TYPE_NAMES
        .get_or_try_init(py, || {
            let names = PyDict::new(py);
            let type_type = py.get_type::<PyType>();
            for (name, value) in py.import("types")?.dict().iter() {
                if value.get_type().is(&type_type) {
                    names.set_item(value, name)?;
                }
            }
            Ok::<_, PyErr>(names.unbind())
        })
        .map(|d| d.bind(py))
}

/// The deallocator every class created by `type.__new__` has (CPython's `subtype_dealloc`),
/// read off a class made for the purpose.
static PYTHON_CLASS_DEALLOC: PyOnceLock<usize> = PyOnceLock::new();

/// Whether `cls` was created by a class statement (or `type(...)`, `types.new_class`, ...),
/// as opposed to by C code: only those can be rebuilt from their namespace.
fn is_python_class(cls: &Bound<'_, PyType>) -> PyResult<bool> {
    let py = cls.py();
    let dealloc_of = |t: &Bound<'_, PyType>| -> usize {
        // SAFETY: reading a slot of a live type object.
        unsafe { (*t.as_type_ptr()).tp_dealloc.map_or(0, |f| f as usize) }
    };
    let expected = PYTHON_CLASS_DEALLOC.get_or_try_init(py, || -> PyResult<usize> {
        let probe = py.get_type::<PyType>().call1((
            "_skypickle_probe",
            PyTuple::empty(py),
            PyDict::new(py),
        ))?;
        Ok(dealloc_of(probe.cast::<PyType>()?))
    })?;
    Ok(dealloc_of(cls) == *expected)
}

/// A new str with the same text as `s`, lone surrogates included: the by-value layer copies
/// names so that whether the sender interned them cannot show in the memo. A str holding lone
/// surrogates has no UTF-8 form, so it is copied through `surrogatepass`.
pub fn copy_str<'py>(s: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyString>> {
    let py = s.py();
    if let Ok(text) = s.to_cow() {
        return Ok(PyString::new(py, &text));
    }
    let (utf8, surrogatepass) = (
        pyo3::intern!(py, "utf-8"),
        pyo3::intern!(py, "surrogatepass"),
    );
    Ok(
        s.call_method1(pyo3::intern!(py, "encode"), (utf8, surrogatepass))?
            .call_method1(pyo3::intern!(py, "decode"), (utf8, surrogatepass))?
            .cast_into::<PyString>()?,
    )
}

static PROPERTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `builtins.property`.
pub fn property_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    PROPERTY.import(py, "builtins", "property")
}

/// A reduce value whose object is memoised before its state is saved and restored by
/// `setter(obj, state)`: `(callable, args, state, None, None, setter)`. Functions, classes and
/// cells all use it, so whatever their state refers to (the object itself included) is safe.
pub fn reduce_with_state_setter<'py>(
    callable: &Py<PyAny>,
    args: Bound<'py, PyAny>,
    state: Bound<'py, PyAny>,
    setter: &Py<PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let py = args.py();
    PyTuple::new(
        py,
        [
            callable.bind(py).clone(),
            args,
            state,
            py.None().into_bound(py),
            py.None().into_bound(py),
            setter.bind(py).clone(),
        ],
    )
}

/// What to do with a function.
pub enum FunctionDecision<'py> {
    /// Importable by the loader: a global, with the module `lookup_module_and_qualname` found.
    ByReference,
    /// A reduce value that rebuilds it (`functools.singledispatch` functions).
    Reduce(Bound<'py, PyTuple>),
    /// By value, from its [`function::FunctionParts`].
    ByValue,
}

/// The decision for an exact function (cloudpickle's `_function_reduce`).
pub fn function_decision<'py>(func: &Bound<'py, PyAny>) -> PyResult<FunctionDecision<'py>> {
    if lookup::should_pickle_by_reference(func)? {
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
    if obj.is_instance_of::<PyType>() {
        return class_reduce(obj, true);
    }
    if obj.is_exact_instance_of::<PyFunction>() {
        return match function_decision(obj)? {
            FunctionDecision::ByReference => Ok(None),
            FunctionDecision::Reduce(rv) => Ok(Some(rv)),
            FunctionDecision::ByValue => function::function_reduce(obj, globals_ref).map(Some),
        };
    }
    Ok(None)
}

/// A `functools.singledispatch` function defined where the loader cannot import it: the
/// generic function and its registered implementations, re-registered on load (its dispatch
/// cache holds weak references, which cannot be pickled; cloudpickle fails here).
fn singledispatch_reduce<'py>(func: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let py = func.py();
    let Some(attrs) = func.getattr_opt(pyo3::intern!(py, "__dict__"))? else {
        return Ok(None);
    };
    let attrs = attrs.cast_into::<PyDict>()?;
    // The entries used are read once, and a missing one means "not a singledispatch
    // function": a key of the dict is user code (its __eq__ runs on lookup), so an entry found
    // by one lookup may be gone at the next.
    let (Some(registry), Some(wrapped)) =
        (attrs.get_item("registry")?, attrs.get_item("__wrapped__")?)
    else {
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
    let make = wire(py)?.make_singledispatch.bind(py).clone();
    Ok(Some(PyTuple::new(
        py,
        [
            make,
            PyTuple::new(py, [wrapped, implementations.into_any()])?.into_any(),
        ],
    )?))
}

/// Classes: the `types` module's classes by name; classes the loader cannot import, by value.
///
/// `fresh_keys` copies the class-dict keys (see [`class::extract_class_dict`]): the save path,
/// which writes names by their text, passes false.
pub fn class_reduce<'py>(
    obj: &Bound<'py, PyAny>,
    fresh_keys: bool,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let py = obj.py();
    if let Some(name) = builtin_type_names(py)?.get_item(obj)? {
        let name = name.cast_into::<PyString>()?;
        // NoneType and friends keep `pickle`'s `type(None)` form (save_type).
        if !matches!(
            &*name.to_cow()?,
            "NoneType" | "EllipsisType" | "NotImplementedType"
        ) {
            let builtin_type = wire(py)?.builtin_type.bind(py).clone();
            return Ok(Some(PyTuple::new(
                py,
                [builtin_type, PyTuple::new(py, [name])?.into_any()],
            )?));
        }
        return Ok(None);
    }
    // A class implemented in C cannot be rebuilt from its namespace: instead of a pickle that
    // fails to load (cloudpickle's behaviour), let `pickle`'s by-reference path report it now.
    if !is_python_class(obj.cast::<PyType>()?)? || lookup::should_pickle_by_reference(obj)? {
        return Ok(None);
    }
    class::dynamic_class_reduce(obj, fresh_keys).map(Some)
}
