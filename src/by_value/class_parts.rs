//! Classes by value: a skeleton built first (so the class is memoised before anything in its
//! namespace, which may refer back to it, is saved), then its namespace as state.
//!
//! [`ClassParts`] is what a by-value class is made of: the skeleton's arguments and the
//! namespace. The save path (`save/by_value_class.rs`) writes them directly; as a reduce value
//! (for `Pickler.reducer_override`) they are
//! `(_make_skeleton_class, (metaclass, name, bases, type_kwargs, tracker_id, None),
//!   (class_dict, {}), None, None, _class_setstate)`, and for enums
//! `(_make_skeleton_enum, (bases, name, qualname, members, module, tracker_id, extra), ...)`.
//!
//! Difference from cloudpickle: `__slots__` are passed to the skeleton, so a class with slots
//! comes back with real slots (no instance `__dict__`), as it was defined.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple, PyType};

use super::identity::tracker_id;
use crate::wire::{op, wire};

/// A new str with the same text: the keys of a class dict are interned in the sender but
/// not (yet) in the loader, and the memo must not depend on that.
fn fresh_key<'py>(key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    match key.cast::<PyString>() {
        Ok(s) => Ok(super::copy_str(s)?.into_any()),
        Err(_) => Ok(key.clone()),
    }
}

/// The slot names a class defines (`__slots__` as a str or an iterable of str), mangled the
/// way the class dict stores private names.
fn slot_names<'py>(cls: &Bound<'py, PyAny>, slots: &Bound<'py, PyAny>) -> PyResult<Vec<String>> {
    let raw: Vec<String> = if let Ok(s) = slots.cast::<PyString>() {
        vec![s.to_cow()?.into_owned()]
    } else {
        slots
            .try_iter()?
            .map(|s| s.and_then(|s| Ok(s.str()?.to_cow()?.into_owned())))
            .collect::<PyResult<_>>()?
    };
    let class_name = cls
        .getattr(pyo3::intern!(cls.py(), "__name__"))?
        .str()?
        .to_cow()?
        .into_owned();
    let stripped = class_name.trim_start_matches('_');
    Ok(raw
        .into_iter()
        .map(|name| {
            if name.starts_with("__") && !name.ends_with("__") && !stripped.is_empty() {
                format!("_{stripped}{name}")
            } else {
                name
            }
        })
        .collect())
}

/// The namespace of a class: its own dict for a class made by a class statement (read
/// directly, no mappingproxy), else `__dict__`.
pub fn namespace_of<'py>(cls: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    if let Ok(t) = cls.cast::<pyo3::types::PyType>() {
        if let Some(dict) = crate::ffi::type_dict(t) {
            return Ok(dict.into_any());
        }
    }
    cls.getattr(pyo3::intern!(py, "__dict__"))
}

/// cloudpickle's `_extract_class_dict`: the class's own namespace in sorted key order,
/// without what it inherits unchanged from its direct bases (an entry the first base that
/// defines the name holds by the very same object). With `fresh_keys`, the keys are new str
/// objects (for a reduce value: the memo must not see which the sender had interned); the
/// save path writes names by their text and needs no copies.
pub fn extract_class_dict<'py>(
    cls: &Bound<'py, PyAny>,
    fresh_keys: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let py = cls.py();
    let own = namespace_of(cls)?;
    let keys = PyList::new(py, own.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
    keys.sort()?;
    let bases = cls
        .getattr(pyo3::intern!(py, "__bases__"))?
        .cast_into::<PyTuple>()?;
    let base_namespaces = bases
        .iter()
        .map(|base| namespace_of(&base))
        .collect::<PyResult<Vec<_>>>()?;
    let clsdict = PyDict::new(py);
    let deterministic = crate::deterministic::current().deterministic;
    'keys: for key in keys.iter() {
        let value = own.get_item(&key)?;
        // Deterministic mode: a class's source location is its own even when a base's is
        // the same int (normalize_paths makes them all 1); and a value the payload makes one
        // object with the base's on load counts as inherited (see `same_on_load`). Either way
        // the loaded copy's namespace is the one written here, and pickling it again gives
        // the original bytes.
        let own_location = deterministic && key.eq(pyo3::intern!(py, "__firstlineno__"))?;
        if !own_location {
            for namespace in &base_namespaces {
                let inherited = match namespace.cast::<PyDict>() {
                    Ok(dict) => dict.get_item(&key)?,
                    Err(_) => namespace.get_item(&key).ok(),
                };
                if let Some(inherited) = inherited {
                    let same = if deterministic {
                        crate::deterministic::same_on_load(&inherited, &value)?
                    } else {
                        inherited.is(&value)
                    };
                    if same {
                        continue 'keys;
                    }
                    break;
                }
            }
        }
        if fresh_keys {
            clsdict.set_item(fresh_key(&key)?, value)?;
        } else {
            clsdict.set_item(key, value)?;
        }
    }
    Ok(clsdict)
}

fn pop<'py, K: IntoPyObject<'py> + Copy>(
    dict: &Bound<'py, PyDict>,
    key: K,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let value = dict.get_item(key)?;
    if value.is_some() {
        dict.del_item(key)?;
    }
    Ok(value)
}

/// cloudpickle's `_class_getstate`: the class dict, with the pieces the skeleton recreates by
/// itself removed.
fn class_getstate<'py>(
    cls: &Bound<'py, PyAny>,
    has_slots: bool,
    fresh_keys: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let py = cls.py();
    let clsdict = extract_class_dict(cls, fresh_keys)?;
    pop(&clsdict, "__weakref__")?;
    // copyreg's cache of slot names, added to the class the first time one of its instances
    // is pickled: leaving it out keeps the class's pickle the same before and after (the
    // loader recomputes it when needed). cloudpickle sends it.
    pop(&clsdict, "__slotnames__")?;
    let abc_meta = crate::known::get(py)?.abc_meta.bind(py);
    if cls.get_type().is_subclass(abc_meta)? {
        for key in [
            "_abc_cache",
            "_abc_negative_cache",
            "_abc_negative_cache_version",
        ] {
            pop(&clsdict, key)?;
        }
        if let Some(registry) = pop(&clsdict, "_abc_registry")? {
            let members = PyList::new(py, registry.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
            clsdict.set_item(pyo3::intern!(py, "_abc_impl"), members)?;
        } else {
            pop(&clsdict, "_abc_impl")?;
            // The registered virtual subclasses, not the isinstance caches.
            let dump = py.import("abc")?.call_method1("_get_dump", (cls,))?;
            let refs = dump.get_item(0)?;
            let registered = PyList::empty(py);
            for weak in refs.try_iter()? {
                let target = weak?.call0()?;
                if !target.is_none() {
                    registered.append(target)?;
                }
            }
            if crate::deterministic::current().deterministic {
                sort_by_name(&registered)?;
            }
            clsdict.set_item(pyo3::intern!(py, "_abc_impl"), registered)?;
        }
    }
    if has_slots {
        // The skeleton is created with these slots: their descriptors must not be replaced.
        if let Some(slots) = pop(&clsdict, "__slots__")? {
            for name in slot_names(cls, &slots)? {
                pop(&clsdict, &name)?;
            }
        }
    }
    pop(&clsdict, "__dict__")?;
    Ok(clsdict)
}

/// Deterministic mode: the registry of an ABC comes from a set of weak references, whose
/// order follows addresses; sort the classes by module and qualified name instead.
fn sort_by_name(classes: &Bound<'_, PyList>) -> PyResult<()> {
    let py = classes.py();
    let mut keyed = Vec::with_capacity(classes.len());
    for cls in classes.iter() {
        let mut key = String::new();
        for attr in [
            pyo3::intern!(py, "__module__"),
            pyo3::intern!(py, "__qualname__"),
        ] {
            if let Some(part) = cls.getattr_opt(attr)? {
                key.push_str(&part.str()?.to_string_lossy());
            }
            key.push('\0');
        }
        keyed.push((key, cls));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (_, cls)) in keyed.into_iter().enumerate() {
        classes.set_item(i, cls)?;
    }
    Ok(())
}

/// Deterministic mode: a class whose qualified name is not its name (nested, or defined in a
/// function) sends `__qualname__` in its namespace, which `_class_setstate` sets (skypickle's
/// and cloudpickle's alike). The skeleton is built with the name alone, so without it the copy
/// a loader builds would have another qualified name, hence another tracker id
/// (`by_value::identity`) when pickled again there: chained pickling would not give the
/// original bytes, and without the qualified name in the id, two same-named local classes of
/// one module would be one class on load. (Enums send their qualified name in the skeleton.)
fn keep_qualname(cls: &Bound<'_, PyType>, clsdict: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = cls.py();
    let key = pyo3::intern!(py, "__qualname__");
    let qualname = cls.getattr(key)?;
    if qualname.eq(cls.getattr(pyo3::intern!(py, "__name__"))?)? || clsdict.contains(key)? {
        return Ok(());
    }
    // The namespace is in sorted key order: put the entry in its place.
    let entries = clsdict.items();
    clsdict.clear();
    let mut placed = false;
    for entry in entries.iter() {
        let (k, v) = entry.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>()?;
        if !placed && !k.lt(key)? {
            clsdict.set_item(PyString::new(py, "__qualname__"), &qualname)?;
            placed = true;
        }
        clsdict.set_item(k, v)?;
    }
    if !placed {
        clsdict.set_item(PyString::new(py, "__qualname__"), &qualname)?;
    }
    Ok(())
}

/// Deterministic mode with `normalize_paths`: a class's `__firstlineno__` (3.13+) is a source
/// location, set to 1 like its functions' first line numbers.
fn normalize_location(clsdict: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = clsdict.py();
    let key = pyo3::intern!(py, "__firstlineno__");
    if clsdict.contains(key)? {
        clsdict.set_item(key, 1)?;
    }
    Ok(())
}

/// The arguments of a class's skeleton: what `_make_skeleton_class` or
/// `_make_skeleton_enum` builds the class from before its namespace arrives.
pub enum Skeleton<'py> {
    /// `_make_skeleton_class(metaclass, name, bases, type_kwargs, tracker_id, None)`.
    Class {
        metaclass: Bound<'py, PyAny>,
        name: Bound<'py, PyAny>,
        bases: Bound<'py, PyAny>,
        /// `__module__`, a `__dict__` property, `__slots__`: what the class statement set.
        type_kwargs: Bound<'py, PyDict>,
        tracker_id: Bound<'py, PyAny>,
    },
    /// `_make_skeleton_enum(bases, name, qualname, members, module, tracker_id, extra)`.
    Enum {
        bases: Bound<'py, PyAny>,
        name: Bound<'py, PyAny>,
        qualname: Bound<'py, PyAny>,
        /// Every member name (aliases included) and its value, in definition order.
        members: Bound<'py, PyDict>,
        module: Bound<'py, PyAny>,
        tracker_id: Bound<'py, PyAny>,
        /// `{"__init__": f}` when members must be built through the enum's own `__init__`.
        extra: Bound<'py, PyAny>,
    },
}

/// What a class pickled by value is made of.
pub struct ClassParts<'py> {
    pub skeleton: Skeleton<'py>,
    /// The namespace `_class_setstate` sets, in sorted key order (`fresh_keys`: see
    /// [`extract_class_dict`]).
    pub class_dict: Bound<'py, PyDict>,
}

impl<'py> ClassParts<'py> {
    /// The parts of `cls`, a class made by a class statement that must travel by value.
    pub fn of(cls: &Bound<'py, PyType>, fresh_keys: bool) -> PyResult<Self> {
        let py = cls.py();
        let parts = if cls.is_subclass(crate::known::get(py)?.enum_type.bind(py))? {
            enum_parts(cls.as_any(), fresh_keys)?
        } else {
            class_parts(cls.as_any(), fresh_keys)?
        };
        let mode = crate::deterministic::current();
        if mode.deterministic && matches!(parts.skeleton, Skeleton::Class { .. }) {
            keep_qualname(cls, &parts.class_dict)?;
        }
        if mode.normalize_paths {
            normalize_location(&parts.class_dict)?;
        }
        Ok(parts)
    }

    /// The skeleton's reconstructor.
    pub fn skeleton_op(&self) -> u8 {
        match self.skeleton {
            Skeleton::Class { .. } => op::MAKE_SKELETON_CLASS,
            Skeleton::Enum { .. } => op::MAKE_SKELETON_ENUM,
        }
    }

    /// The skeleton's arguments, in the reconstructor's order.
    pub fn skeleton_args(&self) -> Vec<Bound<'py, PyAny>> {
        match &self.skeleton {
            Skeleton::Class {
                metaclass,
                name,
                bases,
                type_kwargs,
                tracker_id,
            } => {
                let none = metaclass.py().None().into_bound(metaclass.py());
                vec![
                    metaclass.clone(),
                    name.clone(),
                    bases.clone(),
                    type_kwargs.clone().into_any(),
                    tracker_id.clone(),
                    none,
                ]
            }
            Skeleton::Enum {
                bases,
                name,
                qualname,
                members,
                module,
                tracker_id,
                extra,
            } => vec![
                bases.clone(),
                name.clone(),
                qualname.clone(),
                members.clone().into_any(),
                module.clone(),
                tracker_id.clone(),
                extra.clone(),
            ],
        }
    }

    /// The reduce value: `(skeleton reconstructor, args, (class_dict, {}), None, None,
    /// _class_setstate)`.
    pub fn into_reduce_value(self) -> PyResult<Bound<'py, PyTuple>> {
        let py = self.class_dict.py();
        let w = wire(py)?;
        let args = PyTuple::new(py, self.skeleton_args())?;
        let skeleton = w.get(py, self.skeleton_op());
        let state = PyTuple::new(py, [self.class_dict.into_any(), PyDict::new(py).into_any()])?;
        super::reduce_with_state_setter(
            skeleton,
            args.into_any(),
            state.into_any(),
            w.get(py, op::CLASS_SETSTATE),
        )
    }
}

/// A class that is not an enum.
fn class_parts<'py>(cls: &Bound<'py, PyAny>, fresh_keys: bool) -> PyResult<ClassParts<'py>> {
    let py = cls.py();
    let own = cls.getattr(pyo3::intern!(py, "__dict__"))?;
    let bases = match own.get_item("__orig_bases__") {
        Ok(orig) => orig,
        Err(_) => cls.getattr(pyo3::intern!(py, "__bases__"))?,
    };
    let type_kwargs = PyDict::new(py);
    if own.contains(pyo3::intern!(py, "__module__"))? {
        type_kwargs.set_item(
            pyo3::intern!(py, "__module__"),
            cls.getattr(pyo3::intern!(py, "__module__"))?,
        )?;
    }
    if let Ok(dict_attr) = own.get_item("__dict__") {
        if dict_attr
            .get_type()
            .is(crate::known::get(py)?.property_type.bind(py))
        {
            type_kwargs.set_item(pyo3::intern!(py, "__dict__"), dict_attr)?;
        }
    }
    // `__slots__` go to the skeleton so the slots are real. Except an empty `__slots__` on a
    // tuple subclass (namedtuples: typing.NamedTuple forbids redefining it), which stays in the
    // state, as cloudpickle sends it.
    let is_tuple = cls
        .cast::<pyo3::types::PyType>()?
        .is_subclass(&py.get_type::<PyTuple>())?;
    let slots = own
        .get_item("__slots__")
        .ok()
        .filter(|s| !(is_tuple && slot_names(cls, s).map_or(true, |n| n.is_empty())));
    if let Some(slots) = &slots {
        type_kwargs.set_item(pyo3::intern!(py, "__slots__"), slots)?;
    }
    let skeleton = Skeleton::Class {
        metaclass: cls.get_type().into_any(),
        name: cls.getattr(pyo3::intern!(py, "__name__"))?,
        bases,
        type_kwargs,
        tracker_id: tracker_id(cls)?,
    };
    Ok(ClassParts {
        skeleton,
        class_dict: class_getstate(cls, slots.is_some(), fresh_keys)?,
    })
}

/// An enum's own `__init__`, when its members must be built through it (so attributes it sets
/// exist after loading; cloudpickle builds members without it). Sent in the skeleton's `extra`
/// slot, unless the function refers to the enum itself (it could not be rebuilt before the enum
/// exists): then members are built as cloudpickle builds them.
fn enum_constructor_extra<'py>(cls: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    let own = cls.getattr(pyo3::intern!(py, "__dict__"))?;
    let Ok(init) = own.get_item("__init__") else {
        return Ok(py.None().into_bound(py));
    };
    if !init.is_instance_of::<pyo3::types::PyFunction>() {
        return Ok(py.None().into_bound(py));
    }
    let code = init.getattr(pyo3::intern!(py, "__code__"))?;
    let names = PyDict::new(py);
    super::code::extract_code_globals(&code, &names)?;
    let globals = init.getattr(pyo3::intern!(py, "__globals__"))?;
    for name in names.keys() {
        if let Ok(value) = globals.get_item(&name) {
            if value.is(cls) {
                return Ok(py.None().into_bound(py));
            }
        }
    }
    if let Ok(cells) = init
        .getattr(pyo3::intern!(py, "__closure__"))?
        .cast::<PyTuple>()
    {
        for cell in cells.iter() {
            if cell.getattr("cell_contents").is_ok_and(|v| v.is(cls)) {
                return Ok(py.None().into_bound(py));
            }
        }
    }
    let extra = PyDict::new(py);
    extra.set_item(pyo3::intern!(py, "__init__"), init)?;
    Ok(extra.into_any())
}

/// Enums: the skeleton is built with its members (by name and value); the rest of the
/// namespace follows as state.
fn enum_parts<'py>(cls: &Bound<'py, PyAny>, fresh_keys: bool) -> PyResult<ClassParts<'py>> {
    let py = cls.py();
    // Every member name, aliases included (`__members__`, in definition order): the skeleton
    // recreates the aliases, and none of them may be set again from the state (assigning a
    // member name on an existing enum raises; cloudpickle trips on that for aliases).
    let members = PyDict::new(py);
    let all_members = cls.getattr(pyo3::intern!(py, "__members__"))?;
    for name in all_members.try_iter()? {
        let name = name?;
        let member = all_members.get_item(&name)?;
        members.set_item(name, member.getattr(pyo3::intern!(py, "value"))?)?;
    }
    let extra = enum_constructor_extra(cls)?;
    let skeleton = Skeleton::Enum {
        bases: cls.getattr(pyo3::intern!(py, "__bases__"))?,
        name: cls.getattr(pyo3::intern!(py, "__name__"))?,
        qualname: cls.getattr(pyo3::intern!(py, "__qualname__"))?,
        members: members.clone(),
        module: cls.getattr(pyo3::intern!(py, "__module__"))?,
        tracker_id: tracker_id(cls)?,
        extra,
    };
    let clsdict = class_getstate(cls, false, fresh_keys)?;
    // What the enum machinery builds by itself from the members.
    for key in [
        "_generate_next_value_",
        "_member_names_",
        "_member_map_",
        "_member_type_",
        "_value2member_map_",
    ] {
        pop(&clsdict, key)?;
    }
    for name in members.keys() {
        // By the str itself: a member name may hold lone surrogates (no UTF-8 text).
        if name.is_instance_of::<PyString>() {
            pop(&clsdict, &name)?;
        }
    }
    Ok(ClassParts {
        skeleton,
        class_dict: clsdict,
    })
}

/// `_extract_class_dict(cls)`, exposed under cloudpickle's private name.
#[pyfunction]
#[pyo3(name = "_extract_class_dict")]
pub fn extract_class_dict_py<'py>(cls: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    extract_class_dict(cls, true)
}
