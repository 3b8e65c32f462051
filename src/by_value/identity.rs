//! Tracker ids for classes, enums and TypeVars pickled by value.
//!
//! The normal mode gives each a random id the first time it is pickled (`class_tracker`).
//! Deterministic mode derives the id from the object's content instead: the same class
//! definition gives the same id in every process, and in one process again after its
//! definition is re-executed (a re-run notebook cell), so the payload is the same bytes.
//!
//! The id is a BLAKE3 digest of the class's *definition*: its module, qualified name,
//! metaclass and bases (by name, and by their own definition when they travel by value too),
//! and its own namespace as a payload carries it, in sorted key order, where
//!
//! * functions count by their code (bytecode, constants, names; not the file or line
//!   numbers), qualified name, immutable defaults, keyword-only defaults and annotations;
//!   `staticmethod`, `classmethod` and `property` by the functions they wrap; the class's own
//!   `__annotations__` by content (annotations: classes by name, `typing` constructs by their
//!   parts);
//! * immutable values (None, bool, int, float, complex, str, bytes, and tuples and frozensets
//!   of those) by value, frozensets in sorted order;
//! * classes and modules by name;
//! * anything else, mutable containers included, by its type alone. A class attribute that is
//!   a list can be appended to, and the class is still the same class: its current contents
//!   travel in the payload (and update the class on the loader, as the normal mode's do), but
//!   do not make it a new class.
//!
//! The trade (documented for users): two distinct classes with identical definitions, in the
//! same module under the same qualified name, get the same id, and a process that loads both
//! gets one class (and so do two TypeVars of the same name, bound, constraints and
//! variance). That is what "the same program gives the same bytes" requires: the bytes cannot
//! name which of two identical definitions they came from. It is also what a re-run notebook
//! cell wants: the worker keeps one class, not one per run.
//!
//! The id is made once per class object, the first time this process pickles it in this
//! mode, and kept (`class_tracker::content_id_of`). A class changed in place afterwards (a
//! method added, an attribute set) keeps its id, as in the normal mode: a loader that has the
//! class updates it, and instances it holds see the change (cloudpickle's
//! `test_interactive_dynamic_type_and_stored_remote_instances`). The payload still changes
//! with the class's content, and so does a fingerprint. The price: the id of a class changed
//! in place depends on whether it was pickled before the change, which the same program does
//! the same way every time. Recomputing it at every dump instead would make such a class a
//! new class on the worker, stranding the instances it already holds.

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyCode, PyComplex, PyDict, PyFloat, PyFrozenSet, PyFunction, PyInt, PyModule,
    PyString, PyTuple, PyType,
};

use super::code::code_info;

/// Changes whenever what goes into an id changes: old and new ids then never collide.
const ID_DOMAIN: &[u8] = b"skypickle tracker id 2\0";

/// How deep nested tuples and frozensets are followed; deeper values count by type.
const MAX_DEPTH: usize = 32;

/// The tracker id of `obj` (a class, enum or TypeVar pickled by value) for the dump running on
/// this thread: derived from its content in deterministic mode (and made known to the tracker,
/// so the class comes back as itself), else the tracker's own.
pub fn tracker_id<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if !crate::deterministic::current().deterministic {
        return crate::class_tracker::get_or_create_tracker_id(obj);
    }
    // Made once per class object and kept (see the module documentation: a class changed in
    // place keeps its id, so a loader updates the class it has).
    if let Some(id) = crate::class_tracker::content_id_of(obj)? {
        return Ok(id);
    }
    let id = content_id(obj)?;
    crate::class_tracker::track_content_id(obj, &id)?;
    Ok(id)
}

/// The content-derived id: 32 hex digits, the shape of the normal mode's uuid4 ids.
pub fn content_id<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let mut digest = Digest::new();
    digest.raw(ID_DOMAIN);
    if let Ok(cls) = obj.cast::<PyType>() {
        digest.class(cls)?;
    } else {
        digest.typevar(obj)?;
    }
    let hash = blake3::Hash::from_bytes(digest.finish());
    // The first half of the 64 hex digits: 128 bits, as many as a uuid4 id has.
    let hex = hash.to_hex();
    Ok(PyString::new(obj.py(), &hex[..32]).into_any())
}

/// Tagged, length-prefixed fields (no two different sequences of fields give the same
/// input), gathered in a buffer and hashed once with BLAKE3 (one call is much cheaper than
/// one per field).
struct Digest {
    buf: Vec<u8>,
}

impl Digest {
    fn new() -> Self {
        Digest {
            buf: Vec::with_capacity(1024),
        }
    }

    fn finish(&self) -> [u8; 32] {
        *blake3::hash(&self.buf).as_bytes()
    }

    fn raw(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn field(&mut self, tag: u8, data: &[u8]) {
        self.buf.push(tag);
        self.buf
            .extend_from_slice(&(data.len() as u64).to_le_bytes());
        self.buf.extend_from_slice(data);
    }

    /// A str's text (lone surrogates through `surrogatepass`); anything else by value.
    fn text(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        match value.cast::<PyString>() {
            Ok(s) => {
                match crate::ffi::str_utf8(s) {
                    Some(bytes) => self.field(b's', bytes),
                    None => self.field(b's', crate::ffi::str_encode_surrogatepass(s)?.as_bytes()),
                }
                Ok(())
            }
            Err(_) => self.value(value, 0),
        }
    }

    /// An attribute's text, or a marker when it is missing.
    fn attr_text(&mut self, obj: &Bound<'_, PyAny>, name: &str) -> PyResult<()> {
        if let Some(value) = obj.getattr_opt(name)? {
            return self.text(&value);
        }
        self.field(b'-', b"");
        Ok(())
    }

    /// A class by its module and qualified name. (A class by value keeps its qualified name
    /// through a deterministic payload, so its copy in a loader gets the same id when it is
    /// pickled again there: see `ClassParts::of`.)
    fn name_of(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.attr_text(obj, "__module__")?;
        self.attr_text(obj, "__qualname__")
    }

    /// The definition of a class (see the module documentation).
    fn class(&mut self, cls: &Bound<'_, PyType>) -> PyResult<()> {
        let py = cls.py();
        self.field(b'K', b"");
        self.name_of(cls.as_any())?;
        self.name_of(cls.get_type().as_any())?;
        self.definition_if_by_value(cls.get_type().as_any())?;
        let bases = cls.getattr(pyo3::intern!(py, "__bases__"))?;
        for base in bases.cast::<PyTuple>()?.iter() {
            self.field(b'b', b"");
            self.name_of(&base)?;
            self.definition_if_by_value(&base)?;
        }
        // The namespace as a payload carries it (`extract_class_dict`): without the entries
        // a direct base holds by the very same object (`__static_attributes__ = ()` under a
        // base that has `()` too, say), which a loaded copy inherits instead of owning. The
        // id must be the same when that copy is pickled again.
        let namespace = super::class_parts::extract_class_dict(cls.as_any(), false)?;
        let mut entries: Vec<(Vec<u8>, Bound<'_, PyAny>)> = Vec::new();
        for key in namespace.try_iter()? {
            let key = key?;
            let Ok(text) = key.cast::<PyString>() else {
                continue;
            };
            let text = match crate::ffi::str_utf8(text) {
                Some(bytes) => bytes.to_vec(),
                None => crate::ffi::str_encode_surrogatepass(text)?
                    .as_bytes()
                    .to_vec(),
            };
            if VOLATILE_KEYS.contains(&text.as_slice()) {
                continue;
            }
            let Some(value) = namespace.get_item(&key)? else {
                continue;
            };
            entries.push((text, value));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in &entries {
            self.field(b'k', key);
            if key.as_slice() == b"__annotations__" {
                self.mapping(Some(value.clone()), 0, true)?;
            } else {
                self.value(value, 0)?;
            }
        }
        if cls.is_subclass(crate::known::get(py)?.enum_type.bind(py))? {
            let members = cls.getattr(pyo3::intern!(py, "__members__"))?;
            for name in members.try_iter()? {
                let name = name?;
                self.field(b'e', b"");
                self.text(&name)?;
                let member = members.get_item(&name)?;
                self.value(&member.getattr(pyo3::intern!(py, "value"))?, 0)?;
            }
        }
        Ok(())
    }

    /// A base or metaclass that travels by value counts by its definition as well as its name.
    ///
    /// A loader that knows a class's id reuses the class it built for that id, bases included:
    /// if a subclass kept its id when only its base changed (a re-run cell that edits the
    /// base), a worker would keep the old base in the subclass's MRO and run the old
    /// `super()` methods. Bases form no cycles, so this recursion ends; bases and metaclasses
    /// found by reference (`object`, `enum.Enum`, an importable class) count by name only.
    fn definition_if_by_value(&mut self, cls: &Bound<'_, PyAny>) -> PyResult<()> {
        let Ok(cls) = cls.cast::<PyType>() else {
            return Ok(());
        };
        if !travels_by_value(cls)? {
            return Ok(());
        }
        let mut sub = Digest::new();
        sub.class(cls)?;
        self.field(b'D', &sub.finish());
        Ok(())
    }

    /// A TypeVar: its name, bound, constraints and variance. Not its module: `_make_typevar`
    /// cannot give the copy it builds one (`typing` takes the module of whatever Python code
    /// called `pickle.loads`), and pickling that copy again must give the same id.
    ///
    /// A bound or constraint that travels by value counts by its definition too, as a base
    /// does: a loader that knows the TypeVar's id keeps the TypeVar it built, and with it the
    /// old class as its bound. (A class's digest never digests a TypeVar, whose values in a
    /// namespace count by type: this recursion ends.)
    fn typevar(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.field(b'V', b"");
        self.attr_text(obj, "__name__")?;
        for attr in [
            "__bound__",
            "__constraints__",
            "__covariant__",
            "__contravariant__",
        ] {
            match obj.getattr_opt(attr)? {
                Some(value) => {
                    self.value(&value, 0)?;
                    if let Ok(constraints) = value.cast_exact::<PyTuple>() {
                        for constraint in constraints.iter() {
                            self.definition_if_by_value(&constraint)?;
                        }
                    } else {
                        self.definition_if_by_value(&value)?;
                    }
                }
                None => self.field(b'-', b""),
            }
        }
        Ok(())
    }

    /// A value of a class namespace or a code object's constants.
    fn value(&mut self, value: &Bound<'_, PyAny>, depth: usize) -> PyResult<()> {
        let py = value.py();
        if value.is_none() {
            self.field(b'N', b"");
        } else if let Ok(b) = value.cast_exact::<PyBool>() {
            self.field(b'B', &[u8::from(b.is_true())]);
        } else if value.is_exact_instance_of::<PyInt>() || value.is_exact_instance_of::<PyComplex>()
        {
            // The repr is exact for both, and short.
            let repr = value.repr()?;
            self.field(b'I', repr.to_cow()?.as_bytes());
        } else if let Ok(f) = value.cast_exact::<PyFloat>() {
            self.field(b'F', &f.value().to_bits().to_le_bytes());
        } else if value.is_exact_instance_of::<PyString>() {
            self.text(value)?;
        } else if let Ok(b) = value.cast_exact::<PyBytes>() {
            self.field(b'Y', b.as_bytes());
        } else if depth >= MAX_DEPTH {
            self.type_only(value);
        } else if let Ok(t) = value.cast_exact::<PyTuple>() {
            self.field(b'T', &(t.len() as u64).to_le_bytes());
            for item in t.iter() {
                self.value(&item, depth + 1)?;
            }
        } else if let Ok(s) = value.cast_exact::<PyFrozenSet>() {
            // Each item digested on its own, then the digests in sorted order.
            let mut digests = Vec::with_capacity(s.len());
            for item in crate::ffi::set_entries(s) {
                let mut sub = Digest::new();
                sub.value(&item, depth + 1)?;
                digests.push(sub.finish());
            }
            digests.sort_unstable();
            self.field(b'Z', &(digests.len() as u64).to_le_bytes());
            for d in &digests {
                self.raw(d);
            }
        } else if let Ok(code) = value.cast::<PyCode>() {
            let digest = code_digest(code.as_any())?;
            self.field(b'C', &digest);
        } else if let Ok(func) = value.cast_exact::<PyFunction>() {
            // Read from the function's fields: no attribute lookups.
            let fields = crate::ffi::FunctionFields::of(func)?;
            self.field(b'f', &code_digest(&fields.code)?);
            for part in [fields.qualname, fields.defaults] {
                match part {
                    Some(v) if v.is_exact_instance_of::<PyString>() => self.text(&v)?,
                    Some(v) if v.is_exact_instance_of::<PyTuple>() => self.value(&v, depth + 1)?,
                    Some(v) => self.type_only(&v),
                    None => self.field(b'-', b""),
                }
            }
            // Keyword-only defaults and annotations are definition too (a method whose
            // annotations changed must not keep the old class's id: a loader keeping that
            // class would keep the old method, annotations included).
            self.mapping(func.getattr_opt("__kwdefaults__")?, depth + 1, false)?;
            self.mapping(func.getattr_opt("__annotations__")?, depth + 1, true)?;
        } else if value.is_instance_of::<PyType>() || value.is_instance_of::<PyModule>() {
            self.field(b'n', b"");
            if value.is_instance_of::<PyModule>() {
                self.attr_text(value, "__name__")?;
            } else {
                self.name_of(value)?;
            }
        } else {
            let known = crate::known::get(py)?;
            let tp = value.get_type_ptr() as usize;
            let attrs: &[&str] = if tp == known.types.staticmethod || tp == known.types.classmethod
            {
                &["__func__"]
            } else if value.get_type().is(known.property_type.bind(py)) {
                &["fget", "fset", "fdel"]
            } else {
                &[]
            };
            if !attrs.is_empty() {
                self.type_only(value);
                for attr in attrs {
                    match value.getattr_opt(*attr)? {
                        Some(inner) => self.value(&inner, depth + 1)?,
                        None => self.field(b'-', b""),
                    }
                }
                return Ok(());
            }
            self.type_only(value);
        }
        Ok(())
    }

    /// A dict of str keys (keyword-only defaults, annotations) in its own order, each value
    /// as a value or as an annotation; anything else by its type.
    fn mapping(
        &mut self,
        mapping: Option<Bound<'_, PyAny>>,
        depth: usize,
        annotations: bool,
    ) -> PyResult<()> {
        let Some(mapping) = mapping else {
            self.field(b'-', b"");
            return Ok(());
        };
        let Ok(dict) = mapping.cast_exact::<PyDict>() else {
            self.type_only(&mapping);
            return Ok(());
        };
        if depth >= MAX_DEPTH {
            self.type_only(&mapping);
            return Ok(());
        }
        self.field(b'M', &(dict.len() as u64).to_le_bytes());
        for (key, value) in dict.iter() {
            self.text(&key)?;
            if annotations {
                self.annotation(&value, depth + 1)?;
            } else {
                self.value(&value, depth + 1)?;
            }
        }
        Ok(())
    }

    /// An annotation: a class by name, a str (a postponed annotation) or an atom by value, a
    /// construct of `typing` or `types` (generic aliases, unions, special forms, TypeVars) by
    /// its name, origin and arguments. Never by repr, which may show addresses.
    fn annotation(&mut self, value: &Bound<'_, PyAny>, depth: usize) -> PyResult<()> {
        let py = value.py();
        if depth >= MAX_DEPTH || value.is_instance_of::<PyType>() {
            return self.value(value, depth);
        }
        let module = value.get_type().getattr(pyo3::intern!(py, "__module__"))?;
        let typing_construct = module
            .cast::<PyString>()
            .ok()
            .and_then(|m| m.to_cow().ok())
            .is_some_and(|m| matches!(&*m, "typing" | "types" | "typing_extensions"));
        if !typing_construct {
            return self.value(value, depth);
        }
        self.type_only(value);
        for attr in ["_name", "__name__", "__forward_arg__"] {
            match value.getattr_opt(attr)? {
                Some(name) if name.is_exact_instance_of::<PyString>() => self.text(&name)?,
                _ => self.field(b'-', b""),
            }
        }
        match value.getattr_opt(pyo3::intern!(py, "__origin__"))? {
            Some(origin) => self.annotation(&origin, depth + 1)?,
            None => self.field(b'-', b""),
        }
        match value.getattr_opt(pyo3::intern!(py, "__args__"))? {
            Some(args) if args.is_exact_instance_of::<PyTuple>() => {
                let args = args.cast::<PyTuple>()?;
                self.field(b'a', &(args.len() as u64).to_le_bytes());
                for arg in args.iter() {
                    self.annotation(&arg, depth + 1)?;
                }
            }
            _ => self.field(b'-', b""),
        }
        Ok(())
    }

    /// A value by its type's name alone (`tp_name`: qualified for types defined in C, the
    /// bare name for classes, which is enough to tell values apart here).
    fn type_only(&mut self, value: &Bound<'_, PyAny>) {
        let tp = value.get_type();
        self.field(b'O', crate::ffi::type_name_bytes(&tp));
    }
}

/// Whether `cls` is pickled by value (`class_decision`'s test, without building its parts).
fn travels_by_value(cls: &Bound<'_, PyType>) -> PyResult<bool> {
    Ok(super::is_python_class(cls)? && !super::decision::should_pickle_by_reference(cls.as_any())?)
}

/// Class-dict entries that are caches or per-process bookkeeping, not definition: left out
/// of the id. (`__firstlineno__` is a source location: an id does not move with the code.)
const VOLATILE_KEYS: &[&[u8]] = &[
    b"__dict__",
    b"__weakref__",
    b"__slotnames__",
    b"__firstlineno__",
    b"_abc_impl",
    b"_abc_registry",
    b"_abc_cache",
    b"_abc_negative_cache",
    b"_abc_negative_cache_version",
];

/// The digest of a code object's behaviour: counts, flags, bytecode, constants and names
/// (not its file name, line numbers or line table), cached with its `CodeInfo`.
pub fn code_digest(code: &Bound<'_, PyAny>) -> PyResult<[u8; 32]> {
    let py = code.py();
    let info = code_info(code)?;
    if let Some(digest) = info.digest.get() {
        return Ok(*digest);
    }
    let mut d = Digest::new();
    for count in &info.counts {
        d.value(count.bind(py), 0)?;
    }
    let co_code = code.getattr(pyo3::intern!(py, "co_code"))?;
    d.field(b'c', co_code.cast::<PyBytes>()?.as_bytes());
    let consts = code.getattr(pyo3::intern!(py, "co_consts"))?;
    for constant in consts.cast::<PyTuple>()?.iter() {
        d.value(&constant, 1)?;
    }
    for names in [&info.names, &info.varnames, &info.freevars, &info.cellvars] {
        d.field(b't', b"");
        d.value(names.bind(py), 0)?;
    }
    d.text(info.name.bind(py))?;
    d.text(info.qualname.bind(py))?;
    if cfg!(Py_3_11) {
        let table = code.getattr(pyo3::intern!(py, "co_exceptiontable"))?;
        d.field(b'x', table.cast::<PyBytes>()?.as_bytes());
    }
    let digest = d.finish();
    let _ = info.digest.set(digest);
    Ok(digest)
}
