//! The reload policy: what `_class_setstate` sets on a class that a payload names.
//!
//! * A class that came back to the process that defined it (sent to a worker and back, or
//!   loaded where it was pickled) is the original, with its own namespace, and is left alone
//!   (cloudpickle replaces its namespace with by-value copies of itself: its methods get a
//!   namespace of their own, and later pickles differ).
//! * A class received again (another payload, another thread) takes only the entries that
//!   changed since the state it last received, so an identical payload resets nothing under
//!   running instances (a class attribute they changed keeps its value, methods stay the same
//!   objects), while a change made by the sender still arrives (cloudpickle sets the whole
//!   state again every time).
//! * A class seen for the first time takes everything.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFunction, PyString, PyTuple};

/// A class dict entry: its name and its value.
pub type Entry<'py> = (Bound<'py, PyString>, Bound<'py, PyAny>);

/// The entries of a received class dict that `_class_setstate` must set on `cls`: None when
/// the class is to be left alone (see the module documentation).
pub fn entries_to_set<'py>(
    cls: &Bound<'py, PyAny>,
    entries: Vec<Entry<'py>>,
) -> PyResult<Option<Vec<Entry<'py>>>> {
    let py = cls.py();
    if super::defined_here(cls)? {
        return Ok(None);
    }
    let fingerprints = PyDict::new(py);
    for (key, value) in &entries {
        fingerprints.set_item(key, fingerprint(value)?)?;
    }
    let Some(previous) = super::swap_last_state(cls, &fingerprints)? else {
        return Ok(Some(entries));
    };
    let mut changed = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        if let (Some(before), Some(now)) = (previous.get_item(&key)?, fingerprints.get_item(&key)?)
        {
            if before.eq(&now).unwrap_or(false) {
                continue;
            }
        }
        changed.push((key, value));
    }
    Ok(Some(changed))
}

/// A fingerprint of a value of a class's state, equal for values unpickled from two payloads
/// that stand for the same thing: functions with equal code, defaults, name and doc;
/// class/static methods and properties over such functions; equal atoms and tuples of them.
/// Anything else gets a new `object()`, equal to nothing: it counts as changed. Fingerprints
/// hold code objects and atoms only, never the class (which a weak map must not keep alive).
fn fingerprint<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    fingerprint_at(value, 0)
}

fn fingerprint_at<'py>(value: &Bound<'py, PyAny>, depth: usize) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    let unknown = || py.get_type::<pyo3::types::PyAny>().call0();
    let tag = |name: &str, parts: Vec<Bound<'py, PyAny>>| -> PyResult<Bound<'py, PyAny>> {
        let mut items = vec![PyString::new(py, name).into_any()];
        items.extend(parts);
        Ok(PyTuple::new(py, items)?.into_any())
    };
    if depth > 16 {
        return unknown();
    }
    let deeper = |item: &Bound<'py, PyAny>| fingerprint_at(item, depth + 1);
    let attr = |name: &Bound<'py, PyString>| -> PyResult<Bound<'py, PyAny>> {
        deeper(&value.getattr(name)?)
    };
    if value.is_instance_of::<PyFunction>() {
        return tag(
            "function",
            vec![
                value.getattr(pyo3::intern!(py, "__code__"))?,
                attr(pyo3::intern!(py, "__defaults__"))?,
                attr(pyo3::intern!(py, "__kwdefaults__"))?,
                attr(pyo3::intern!(py, "__qualname__"))?,
                attr(pyo3::intern!(py, "__doc__"))?,
            ],
        );
    }
    let Some(type_name) = exact_builtin_name(value)? else {
        return unknown();
    };
    match type_name {
        "classmethod" | "staticmethod" => {
            tag(type_name, vec![attr(pyo3::intern!(py, "__func__"))?])
        }
        "property" => tag(
            "property",
            vec![
                attr(pyo3::intern!(py, "fget"))?,
                attr(pyo3::intern!(py, "fset"))?,
                attr(pyo3::intern!(py, "fdel"))?,
            ],
        ),
        "int" | "float" | "str" | "bytes" | "bool" | "NoneType" | "complex" => {
            tag(type_name, vec![value.clone()])
        }
        // Containers by their contents (a class attribute that instances mutate keeps its
        // value when an identical payload arrives again).
        "tuple" | "list" => {
            let items = value
                .try_iter()?
                .map(|item| deeper(&item?))
                .collect::<PyResult<Vec<_>>>()?;
            tag(type_name, items)
        }
        "dict" => {
            let mut items = Vec::new();
            for pair in value.cast::<PyDict>()?.items().iter() {
                items.push(
                    PyTuple::new(
                        py,
                        [deeper(&pair.get_item(0)?)?, deeper(&pair.get_item(1)?)?],
                    )?
                    .into_any(),
                );
            }
            tag("dict", items)
        }
        "set" | "frozenset" => {
            let items = value
                .try_iter()?
                .map(|item| deeper(&item?))
                .collect::<PyResult<Vec<_>>>()?;
            tag(
                type_name,
                vec![pyo3::types::PyFrozenSet::new(py, &items)?.into_any()],
            )
        }
        _ => unknown(),
    }
}

/// The name of `value`'s type when it is exactly one of the builtins `fingerprint_at` knows,
/// found by type identity, never by the type's own name: a user class may be called `dict`
/// or `property` too (its instances are then like any other object: changed).
fn exact_builtin_name(value: &Bound<'_, PyAny>) -> PyResult<Option<&'static str>> {
    let known = crate::known::get(value.py())?;
    let types = &known.types;
    let tp = value.get_type_ptr() as usize;
    let known = [
        (types.classmethod, "classmethod"),
        (types.staticmethod, "staticmethod"),
        (known.property_type.as_ptr() as usize, "property"),
        (types.int, "int"),
        (types.float, "float"),
        (types.str, "str"),
        (types.bytes, "bytes"),
        (types.bool, "bool"),
        (types.none, "NoneType"),
        (types.complex, "complex"),
        (types.tuple, "tuple"),
        (types.list, "list"),
        (types.dict, "dict"),
        (types.set, "set"),
        (types.frozenset, "frozenset"),
    ];
    Ok(known.iter().find(|(t, _)| *t == tp).map(|(_, name)| *name))
}
