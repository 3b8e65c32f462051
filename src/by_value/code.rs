//! Code objects: `_code_reduce`, the per-thread [`CodeInfo`] cache, and the bytecode walk
//! that finds the global names a code object uses.
//!
//! A code object is rebuilt from `CodeType`'s positional arguments, which differ between
//! CPython versions, so the pickle carries the version that made it and `_make_code` refuses
//! any other.

use pyo3::prelude::*;
use pyo3::types::{PyCode, PyDict, PyString, PyTuple};

use crate::wire::{op, python_tag, wire};

/// A new tuple with the same items: in the loading process these tuples are always new
/// objects, so sharing them here would make memo hits (and bytes) depend on the sender.
fn fresh_tuple(value: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let tuple = value.cast_into::<PyTuple>()?;
    Ok(PyTuple::new(tuple.py(), tuple.iter())?.into_any())
}

/// A new str with the same text (what `"".join(s)` gives).
fn fresh_str(value: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyAny>> {
    Ok(super::copy_str(&value.cast_into::<PyString>()?)?.into_any())
}

/// One of `CodeType`'s positional arguments, tagged with what it is (which decides how it is
/// written: names by their text, bytecode and line tables unmemoised).
pub enum CodeArg<'py> {
    /// A count, the flags or the first line number.
    Number(Bound<'py, PyAny>),
    /// Bytecode, line table, exception table.
    Bytes(Bound<'py, PyAny>),
    /// `co_consts`.
    Consts(Bound<'py, PyAny>),
    /// A tuple of names (`co_names`, `co_varnames`, `co_freevars`, `co_cellvars`).
    Names(Bound<'py, PyAny>),
    /// A name (`co_filename`, `co_name`, `co_qualname`).
    Name(Bound<'py, PyAny>),
}

/// `CodeType`'s positional arguments for the running CPython, in its order: the one place
/// that knows how that order changed between 3.9 and 3.13.
pub fn code_args<'py>(code: &Bound<'py, PyAny>, info: &CodeInfo) -> PyResult<Vec<CodeArg<'py>>> {
    let py = code.py();
    let attr = |name: &Bound<'py, PyString>| code.getattr(name);
    let mut args: Vec<CodeArg<'py>> = info
        .counts
        .iter()
        .map(|count| CodeArg::Number(count.bind(py).clone()))
        .collect();
    args.push(CodeArg::Bytes(attr(pyo3::intern!(py, "co_code"))?));
    args.push(CodeArg::Consts(attr(pyo3::intern!(py, "co_consts"))?));
    args.push(CodeArg::Names(info.names.bind(py).clone()));
    args.push(CodeArg::Names(info.varnames.bind(py).clone()));
    // Deterministic mode with `normalize_paths`: the base name of the file, and line
    // numbers counted from the code's first line (the line table is relative to it).
    let normalize = crate::deterministic::current().normalize_paths;
    if normalize {
        args.push(CodeArg::Name(crate::deterministic::normalized_path(
            info.filename.bind(py),
        )?));
    } else {
        args.push(CodeArg::Name(info.filename.bind(py).clone()));
    }
    args.push(CodeArg::Name(info.name.bind(py).clone()));
    if cfg!(Py_3_11) {
        args.push(CodeArg::Name(info.qualname.bind(py).clone()));
    }
    if normalize {
        args.push(CodeArg::Number(1_i32.into_pyobject(py)?.into_any()));
    } else {
        args.push(CodeArg::Number(info.firstlineno.bind(py).clone()));
    }
    let line_table = if cfg!(Py_3_10) {
        pyo3::intern!(py, "co_linetable")
    } else {
        pyo3::intern!(py, "co_lnotab")
    };
    args.push(CodeArg::Bytes(attr(line_table)?));
    if cfg!(Py_3_11) {
        args.push(CodeArg::Bytes(attr(pyo3::intern!(
            py,
            "co_exceptiontable"
        ))?));
    }
    args.push(CodeArg::Names(info.freevars.bind(py).clone()));
    args.push(CodeArg::Names(info.cellvars.bind(py).clone()));
    Ok(args)
}

/// `(_make_code, (version, CodeType arguments))` for a code object (the reduce value the
/// Python-visible `_code_reduce` returns; the save path writes the same arguments directly).
pub fn code_reduce<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let py = code.py();
    let info = code_info(code)?;
    let args = code_args(code, &info)?
        .into_iter()
        .map(|arg| match arg {
            CodeArg::Number(v) | CodeArg::Bytes(v) | CodeArg::Consts(v) => Ok(v),
            CodeArg::Names(v) => fresh_tuple(v),
            CodeArg::Name(v) => fresh_str(v),
        })
        .collect::<PyResult<Vec<_>>>()?;
    let args = PyTuple::new(py, args)?;
    let make_code = wire(py)?.get(py, op::MAKE_CODE);
    PyTuple::new(
        py,
        [
            make_code.clone(),
            PyTuple::new(py, [python_tag(py)?.clone().into_any(), args.into_any()])?.into_any(),
        ],
    )
}

/// What skypickle reads from a code object, read once and kept across dumps: its small,
/// immutable parts (numbers, names, strings) and the global names it uses. The large parts
/// (bytecode, constants, line tables) are read again at each use, so an entry never keeps
/// more than a few names alive after its code object is gone.
pub struct CodeInfo {
    /// A weak reference to the code object: an entry is only used for the object it was made
    /// from (an address can be reused once that object is gone).
    weak: Py<PyAny>,
    /// `co_argcount`, `co_posonlyargcount`, `co_kwonlyargcount`, `co_nlocals`,
    /// `co_stacksize`, `co_flags`.
    pub counts: [Py<PyAny>; 6],
    pub names: Py<PyAny>,
    pub varnames: Py<PyAny>,
    pub freevars: Py<PyAny>,
    pub cellvars: Py<PyAny>,
    pub filename: Py<PyAny>,
    pub name: Py<PyAny>,
    /// `co_qualname` (3.11+), else `co_name`: the `__qualname__` a function made from this
    /// code gets by itself.
    pub qualname: Py<PyAny>,
    pub firstlineno: Py<PyAny>,
    /// The first constant when it is a str: the `__doc__` a function gets by itself.
    pub natural_doc: Option<Py<PyAny>>,
    /// The global names the code (and the code nested in it) uses, in order of first use.
    pub global_names: Vec<Py<PyString>>,
    /// The content digest deterministic mode derives class ids from (`by_value::identity`),
    /// made on first use: code objects are immutable, so it never goes stale.
    pub digest: std::cell::OnceCell<[u8; 32]>,
    /// The names through which the code may reach a submodule ([`attribute_names`]), made on
    /// first use (only functions that use a package need them).
    attribute_names: std::cell::OnceCell<Py<PyTuple>>,
}

impl CodeInfo {
    /// [`attribute_names`] of `code`, the code object this entry describes, read once.
    pub fn attribute_names<'py>(&self, code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let py = code.py();
        if let Some(names) = self.attribute_names.get() {
            return Ok(names.bind(py).clone());
        }
        let names = attribute_names(code)?;
        // A nested dump (a collection running user code) cannot have filled it meanwhile:
        // nothing above runs Python code. Either way the value is the same.
        let _ = self.attribute_names.set(names.clone().unbind());
        Ok(names)
    }
}

thread_local! {
    static CODE_INFO: std::cell::RefCell<CodeInfoCache> = std::cell::RefCell::default();
}

#[derive(Default)]
struct CodeInfoCache {
    entries: crate::fxhash::FxHashMap<usize, std::rc::Rc<CodeInfo>>,
    /// Entries whose code object is gone are dropped when the cache reaches this size.
    sweep_at: usize,
}

const MIN_SWEEP: usize = 256;

fn read_code_info(code: &Bound<'_, PyAny>) -> PyResult<CodeInfo> {
    let py = code.py();
    macro_rules! attr {
        ($name:literal) => {
            code.getattr(pyo3::intern!(py, $name))?.unbind()
        };
    }
    let weak = crate::ffi::weakref_new(code)?;
    let name = attr!("co_name");
    let qualname = if cfg!(Py_3_11) {
        attr!("co_qualname")
    } else {
        name.clone_ref(py)
    };
    let consts = code
        .getattr(pyo3::intern!(py, "co_consts"))?
        .cast_into::<PyTuple>()?;
    let natural_doc = consts
        .get_item(0)
        .ok()
        .filter(pyo3::types::PyAnyMethods::is_instance_of::<PyString>)
        .map(Bound::unbind);
    Ok(CodeInfo {
        weak: weak.unbind(),
        counts: [
            attr!("co_argcount"),
            attr!("co_posonlyargcount"),
            attr!("co_kwonlyargcount"),
            attr!("co_nlocals"),
            attr!("co_stacksize"),
            attr!("co_flags"),
        ],
        names: attr!("co_names"),
        varnames: attr!("co_varnames"),
        freevars: attr!("co_freevars"),
        cellvars: attr!("co_cellvars"),
        filename: attr!("co_filename"),
        name,
        qualname,
        firstlineno: attr!("co_firstlineno"),
        natural_doc,
        global_names: global_names(code)?.into_iter().map(Bound::unbind).collect(),
        digest: std::cell::OnceCell::new(),
        attribute_names: std::cell::OnceCell::new(),
    })
}

/// Whether `info` was made from `code`.
fn describes(info: &CodeInfo, code: &Bound<'_, PyAny>) -> bool {
    crate::ffi::weakref_points_at(info.weak.bind(code.py()), code)
}

/// Whether the code object `info` was made from is still alive.
fn is_alive(info: &CodeInfo, py: Python<'_>) -> bool {
    // A dead weak reference points at None.
    let weak = info.weak.bind(py);
    !weak.call0().map_or(true, |t| t.is_none())
}

/// The [`CodeInfo`] of `code`, from this thread's cache or read now.
pub fn code_info(code: &Bound<'_, PyAny>) -> PyResult<std::rc::Rc<CodeInfo>> {
    let key = code.as_ptr() as usize;
    let cached = CODE_INFO
        .try_with(|cache| cache.borrow().entries.get(&key).cloned())
        .ok()
        .flatten();
    if let Some(info) = cached.filter(|info| describes(info, code)) {
        return Ok(info);
    }
    let info = std::rc::Rc::new(read_code_info(code)?);
    let _ = CODE_INFO.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.entries.len() >= cache.sweep_at.max(MIN_SWEEP) {
            let py = code.py();
            cache.entries.retain(|_, info| is_alive(info, py));
            cache.sweep_at = cache.entries.len() * 2;
        }
        cache.entries.insert(key, info.clone());
    });
    Ok(info)
}

// ---- the bytecode walk ---------------------------------------------------------------

/// The global names `code` (and the code nested in it) reads, writes or deletes, in order of
/// first use, as the code object's own `co_names` strings. Collected into `names` (a dict used
/// as an ordered set).
pub fn extract_code_globals<'py>(
    code: &Bound<'py, PyAny>,
    names: &Bound<'py, PyDict>,
) -> PyResult<()> {
    let py = code.py();
    let ops = &crate::known::get(py)?.opcodes;
    let co_names = code
        .getattr(pyo3::intern!(py, "co_names"))?
        .cast_into::<PyTuple>()?;
    let co_code = code.getattr(pyo3::intern!(py, "co_code"))?;
    let bytes = co_code.cast::<pyo3::types::PyBytes>()?.as_bytes();
    let mut ext: usize = 0;
    for unit in bytes.chunks_exact(2) {
        // In bounds: chunks_exact(2) yields 2-byte units only.
        let (op, arg) = (unit[0], usize::from(unit[1]));
        if op == ops.extended_arg {
            ext = (ext | arg) << 8;
            continue;
        }
        let full = ext | arg;
        ext = 0;
        let index = if op == ops.load_global {
            // 3.11+: the low bit of LOAD_GLOBAL's argument says "push NULL first".
            if cfg!(Py_3_11) {
                full >> 1
            } else {
                full
            }
        } else if op == ops.store_global || op == ops.delete_global {
            full
        } else {
            continue;
        };
        if let Ok(name) = co_names.get_item(index) {
            if !names.contains(&name)? {
                names.set_item(name, py.None())?;
            }
        }
    }
    let consts = code
        .getattr(pyo3::intern!(py, "co_consts"))?
        .cast_into::<PyTuple>()?;
    for constant in consts.iter() {
        if constant.is_instance_of::<PyCode>() {
            extract_code_globals(&constant, names)?;
        }
    }
    Ok(())
}

/// `_extract_code_globals(code)`, exposed under cloudpickle's private name: the global
/// names the code uses, as an insertion-ordered dict with None values.
#[pyfunction]
#[pyo3(name = "_extract_code_globals")]
pub fn extract_code_globals_py<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let names = PyDict::new(code.py());
    extract_code_globals(code, &names)?;
    Ok(names)
}

/// The global names `code` uses, in order of first use.
pub fn global_names<'py>(code: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyString>>> {
    let names = PyDict::new(code.py());
    extract_code_globals(code, &names)?;
    names
        .keys()
        .iter()
        .map(|name| name.cast_into::<PyString>().map_err(PyErr::from))
        .collect()
}

/// Constants visited at most by [`attribute_names`]: code objects built by hand can nest
/// tuples of constants without end (or in a cycle, through the C API); real code is far below.
const MAX_CONSTANTS: usize = 1 << 20;

/// Whether `text` can be one dotted part of a module name, as code spells it: an identifier
/// (approximated: letters, digits and underscores, not starting with a digit). Docstrings,
/// messages and format strings, the bulk of string constants, never are.
fn is_identifier_like(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// The names through which `code` may reach a submodule by attribute from a package it
/// uses: the `co_names` of the code and of the code nested in it (a lambda, comprehension or
/// inner function using `pkg.sub` runs with the function's globals), and its identifier-like
/// str constants, in tuples of constants too (`getattr(pkg, "sub")`, `vars(pkg)["sub"]`:
/// cloudpickle issue 581, where the submodule name is a constant, not a name). A submodule
/// counts as reached when every dotted part of its name below the package is one of these.
/// Each text once, in order of first appearance.
pub fn attribute_names<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let py = code.py();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut names: Vec<Bound<'py, PyString>> = Vec::new();
    let mut keep = |name: &Bound<'py, PyAny>, identifier_only: bool| {
        let Ok(text) = name.cast::<PyString>() else {
            return;
        };
        // A name that is not UTF-8 (lone surrogates) is never a part of an importable name.
        let Ok(cow) = text.to_cow() else {
            return;
        };
        if (identifier_only && !is_identifier_like(&cow)) || seen.contains(cow.as_ref()) {
            return;
        }
        seen.insert(cow.into_owned());
        names.push(text.clone());
    };
    // An explicit stack rather than recursion: constants may nest deeper than the C stack.
    let mut pending: Vec<Bound<'py, PyAny>> = vec![code.clone()];
    let mut visited = 0usize;
    while let Some(item) = pending.pop() {
        visited += 1;
        if visited > MAX_CONSTANTS {
            break;
        }
        if item.is_instance_of::<PyCode>() {
            if let Ok(co_names) = item.getattr(pyo3::intern!(py, "co_names")) {
                for name in co_names.cast::<PyTuple>()?.iter() {
                    keep(&name, false);
                }
            }
            let consts = item
                .getattr(pyo3::intern!(py, "co_consts"))?
                .cast_into::<PyTuple>()?;
            // Reversed onto the stack, so constants are met in their order.
            pending.extend(consts.iter().rev());
        } else if item.is_instance_of::<PyString>() {
            keep(&item, true);
        } else if let Ok(tuple) = item.cast::<PyTuple>() {
            pending.extend(tuple.iter().rev());
        } else if let Ok(set) = item.cast::<pyo3::types::PyFrozenSet>() {
            pending.extend(set.iter());
        }
    }
    PyTuple::new(py, names)
}
