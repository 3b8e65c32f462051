//! Classes on load: skeletons (`_make_skeleton_class`, `_make_skeleton_enum`), their
//! namespace (`_class_setstate`), TypeVars and the `types` module's classes. Which class a
//! tracker id stands for, and what a class received again takes, is `class_tracker`'s.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use super::expect;

/// `_builtin_type(name)`: a type from the `types` module that has no importable name of its
/// own (`types.CodeType`, `types.FunctionType`, ...).
#[pyfunction]
pub fn _builtin_type<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let name = expect::<PyString>(name, "_builtin_type() name", "a str")?;
    let value = py.import("types")?.getattr(&name)?;
    if !value.is_instance_of::<PyType>() {
        return Err(PyValueError::new_err(format!("types.{name} is not a type")));
    }
    Ok(value)
}

fn intern_keys<'py>(py: Python<'py>, dict: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    let interned = PyDict::new(py);
    // Over a copy: inserting a key hashes it, which may run user code.
    for (key, value) in dict.copy()?.iter() {
        match key.cast::<PyString>() {
            // A key with lone surrogates has no UTF-8 text to intern by: kept as it came.
            Ok(k) => match k.to_cow() {
                Ok(text) => interned.set_item(PyString::intern(py, &text), value)?,
                Err(_) => interned.set_item(key, value)?,
            },
            Err(_) => interned.set_item(key, value)?,
        }
    }
    Ok(interned)
}

/// `_make_skeleton_class(metaclass, name, bases, type_kwargs, tracker_id, extra)`: an empty
/// class (its namespace arrives through `_class_setstate`), or the class already loaded under
/// `tracker_id` in this process.
#[pyfunction]
pub fn _make_skeleton_class<'py>(
    py: Python<'py>,
    type_constructor: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
    bases: &Bound<'py, PyAny>,
    type_kwargs: &Bound<'py, PyAny>,
    class_tracker_id: &Bound<'py, PyAny>,
    extra: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let _ = extra;
    expect::<PyType>(
        type_constructor,
        "_make_skeleton_class() metaclass",
        "a type",
    )?;
    if let Some(known) = crate::class_tracker::lookup_class(class_tracker_id)? {
        return Ok(known);
    }
    let name = expect::<PyString>(name, "_make_skeleton_class() name", "a str")?;
    let bases = expect::<PyTuple>(bases, "_make_skeleton_class() bases", "a tuple")?;
    let type_kwargs =
        expect::<PyDict>(type_kwargs, "_make_skeleton_class() type_kwargs", "a dict")?;
    // What types.new_class does: resolve __mro_entries__, pick the metaclass, __prepare__.
    let types = py.import("types")?;
    let resolved = types.call_method1("resolve_bases", (&bases,))?;
    let kwds = PyDict::new(py);
    kwds.set_item("metaclass", type_constructor)?;
    let prepared = types
        .call_method1("prepare_class", (&name, &resolved, kwds))?
        .cast_into::<PyTuple>()?;
    let (meta, namespace, meta_kwds) = (
        prepared.get_item(0)?,
        prepared.get_item(1)?,
        prepared.get_item(2)?.cast_into::<PyDict>()?,
    );
    for (key, value) in intern_keys(py, &type_kwargs)?.iter() {
        namespace.set_item(key, value)?;
    }
    if !resolved.is(&bases) {
        namespace.set_item("__orig_bases__", &bases)?;
    }
    let skeleton = match meta.call((&name, &resolved, &namespace), Some(&meta_kwds)) {
        Ok(cls) => cls,
        Err(err) if err.is_instance_of::<PyTypeError>(py) && !resolved.is_empty()? => {
            // A base's __init_subclass__ that requires keyword arguments (which Python keeps
            // nowhere, so they cannot be sent). cloudpickle fails here. Build the class on
            // `object` and give it its bases afterwards: __init_subclass__ already ran for the
            // original class, in the sending process.
            match skeleton_without_init_subclass(
                py, &meta, &name, &resolved, &namespace, &meta_kwds,
            ) {
                Ok(cls) => cls,
                Err(_) => return Err(err),
            }
        }
        Err(err) => return Err(err),
    };
    crate::class_tracker::lookup_class_or_track(class_tracker_id, skeleton)
}

fn skeleton_without_init_subclass<'py>(
    py: Python<'py>,
    meta: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    bases: &Bound<'py, PyAny>,
    namespace: &Bound<'py, PyAny>,
    meta_kwds: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let build_on = |placeholder: Bound<'py, PyAny>| -> PyResult<Bound<'py, PyAny>> {
        let cls = meta.call(
            (name, PyTuple::new(py, [placeholder])?, namespace),
            Some(meta_kwds),
        )?;
        cls.setattr("__bases__", bases)?;
        Ok(cls)
    };
    // A throwaway plain base: same instance layout as a plain Python class (so `__bases__`
    // may be reassigned) and no __init_subclass__ of its own.
    let plain =
        py.get_type::<PyType>()
            .call1(("_skeleton_base", PyTuple::empty(py), PyDict::new(py)))?;
    match build_on(plain) {
        Ok(cls) => Ok(cls),
        Err(first_error) => {
            // The first base has another layout (an ABC, slots, a builtin base): stand in for
            // it with a class of its metaclass on its own bases, which has its layout.
            let first_base = bases.get_item(0)?;
            let standin = first_base
                .get_type()
                .call1((
                    "_skeleton_base",
                    first_base.getattr("__bases__")?,
                    PyDict::new(py),
                ))
                .map_err(|_| first_error.clone_ref(py))?;
            build_on(standin).map_err(|_| first_error)
        }
    }
}

/// `_make_skeleton_enum(bases, name, qualname, members, module, tracker_id, extra)`: the enum
/// class with its members; the rest of its namespace arrives through `_class_setstate`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn _make_skeleton_enum<'py>(
    _py: Python<'py>,
    bases: &Bound<'py, PyAny>,
    name: &Bound<'py, PyAny>,
    qualname: &Bound<'py, PyAny>,
    members: &Bound<'py, PyAny>,
    module: &Bound<'py, PyAny>,
    class_tracker_id: &Bound<'py, PyAny>,
    extra: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let bases = expect::<PyTuple>(bases, "_make_skeleton_enum() bases", "a tuple")?;
    let name = expect::<PyString>(name, "_make_skeleton_enum() name", "a str")?;
    let members = expect::<PyDict>(members, "_make_skeleton_enum() members", "a dict")?;
    if let Some(known) = crate::class_tracker::lookup_class(class_tracker_id)? {
        return Ok(known);
    }
    if bases.is_empty() {
        return Err(PyValueError::new_err(
            "_make_skeleton_enum() needs at least one base",
        ));
    }
    let enum_base = bases.get_item(bases.len() - 1)?;
    let metaclass = enum_base.get_type();
    let classdict = metaclass.call_method1("__prepare__", (&name, &bases))?;
    // `extra` may carry the enum's own `__init__`, so members are built through it.
    if !extra.is_none() {
        let extra = expect::<PyDict>(extra, "_make_skeleton_enum() extra", "a dict or None")?;
        if let Some(init) = extra.get_item("__init__")? {
            classdict.set_item("__init__", init)?;
        }
    }
    // Over a copy: the enum's namespace runs user code on every insertion.
    for (member_name, value) in members.copy()?.iter() {
        classdict.set_item(member_name, value)?;
    }
    let new = metaclass.getattr("__new__")?;
    let enum_class = new.call1((&metaclass, &name, &bases, classdict))?;
    enum_class.setattr("__module__", module)?;
    enum_class.setattr("__qualname__", qualname)?;
    crate::class_tracker::lookup_class_or_track(class_tracker_id, enum_class)
}

/// `_class_setstate(cls, (class_dict, slotstate))`: fill a skeleton's namespace and restore
/// its registered ABC subclasses.
#[pyfunction]
pub fn _class_setstate<'py>(
    _py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    state: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    expect::<PyType>(obj, "_class_setstate() class", "a type")?;
    let state = expect::<PyTuple>(state, "_class_setstate() state", "a tuple")?;
    if state.len() != 2 {
        return Err(PyValueError::new_err(
            "_class_setstate() state must be a (class_dict, slotstate) pair",
        ));
    }
    let clsdict = expect::<PyDict>(&state.get_item(0)?, "class state", "a dict")?;
    let mut registry = None;
    let mut entries = Vec::new();
    for item in clsdict.items().iter() {
        let (key, value) = (item.get_item(0)?, item.get_item(1)?);
        let key = expect::<PyString>(&key, "class attribute name", "a str")?;
        if key.to_cow().is_ok_and(|key| key == "_abc_impl") {
            registry = Some(value);
            continue;
        }
        entries.push((key, value));
    }
    let Some(entries) = crate::class_tracker::reload::entries_to_set(obj, entries)? else {
        return Ok(obj.clone());
    };
    for (key, value) in entries {
        obj.setattr(&key, value)?;
    }
    // 3.13: assigning __module__ drops __firstlineno__; put it back.
    if let Some(first_line) = clsdict.get_item("__firstlineno__")? {
        obj.setattr("__firstlineno__", first_line)?;
    }
    if let Some(registry) = registry {
        for subclass in registry.try_iter()? {
            obj.call_method1("register", (subclass?,))?;
        }
    }
    Ok(obj.clone())
}

/// `_make_typevar(name, bound, constraints, covariant, contravariant, tracker_id)`.
#[pyfunction]
pub fn _make_typevar<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyAny>,
    bound: &Bound<'py, PyAny>,
    constraints: &Bound<'py, PyAny>,
    covariant: &Bound<'py, PyAny>,
    contravariant: &Bound<'py, PyAny>,
    class_tracker_id: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let name = expect::<PyString>(name, "_make_typevar() name", "a str")?;
    let constraints = expect::<PyTuple>(constraints, "_make_typevar() constraints", "a tuple")?;
    let mut args = vec![name.into_any()];
    args.extend(constraints.iter());
    let kwargs = PyDict::new(py);
    kwargs.set_item("bound", bound)?;
    kwargs.set_item("covariant", covariant)?;
    kwargs.set_item("contravariant", contravariant)?;
    let typevar = py
        .import("typing")?
        .getattr("TypeVar")?
        .call(PyTuple::new(py, args)?, Some(&kwargs))?;
    crate::class_tracker::lookup_class_or_track(class_tracker_id, typevar)
}
