//! Code objects: `_code_reduce`. A code object is rebuilt from `CodeType`'s positional
//! arguments, which differ between CPython versions, so the pickle carries the version that
//! made it and `_make_code` refuses any other.

use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::rebuild::{python_tag_str, wire};

/// A new tuple with the same items: in the loading process these tuples are always new
/// objects, so sharing them here would make memo hits (and bytes) depend on the sender.
fn fresh_tuple<'py>(value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let tuple = value.cast_into::<PyTuple>()?;
    Ok(PyTuple::new(tuple.py(), tuple.iter())?.into_any())
}

/// A new str with the same text (what `"".join(s)` gives).
fn fresh_str<'py>(value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
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
    args.push(CodeArg::Name(info.filename.bind(py).clone()));
    args.push(CodeArg::Name(info.name.bind(py).clone()));
    if cfg!(Py_3_11) {
        args.push(CodeArg::Name(info.qualname.bind(py).clone()));
    }
    args.push(CodeArg::Number(info.firstlineno.bind(py).clone()));
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
    let make_code = wire(py)?.make_code.bind(py);
    PyTuple::new(
        py,
        [
            make_code.clone(),
            PyTuple::new(py, [python_tag_str(py).clone().into_any(), args.into_any()])?.into_any(),
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
    // SAFETY: PyWeakref_NewRef takes a borrowed object (code objects support weak
    // references) and returns a new reference or null with an exception.
    let weak = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyWeakref_NewRef(code.as_ptr(), std::ptr::null_mut()),
        )?
    };
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
        .filter(|c| c.is_instance_of::<PyString>())
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
        global_names: super::function::global_names(code)?
            .into_iter()
            .map(Bound::unbind)
            .collect(),
    })
}

/// Whether the weak reference `weak` points at `obj` (false once its target is gone).
fn weak_points_at(weak: &Py<PyAny>, obj: *mut pyo3::ffi::PyObject) -> bool {
    #[cfg(Py_3_13)]
    {
        let mut target: *mut pyo3::ffi::PyObject = std::ptr::null_mut();
        // SAFETY: `weak` is a live weak reference; on success `target` is a new reference
        // (or null once dead), released right away: only its address is compared.
        unsafe {
            if pyo3::ffi::PyWeakref_GetRef(weak.as_ptr(), &mut target) < 0 {
                pyo3::ffi::PyErr_Clear();
                return false;
            }
            let same = !target.is_null() && std::ptr::eq(target, obj);
            pyo3::ffi::Py_XDECREF(target);
            same
        }
    }
    #[cfg(not(Py_3_13))]
    {
        // SAFETY: `weak` is a live weak reference; the result is borrowed (None once dead).
        let target = unsafe { pyo3::ffi::PyWeakref_GetObject(weak.as_ptr()) };
        std::ptr::eq(target, obj)
    }
}

/// Whether `info` was made from `code`.
fn describes(info: &CodeInfo, code: &Bound<'_, PyAny>) -> bool {
    weak_points_at(&info.weak, code.as_ptr())
}

/// Whether the code object `info` was made from is still alive.
fn is_alive(info: &CodeInfo, py: Python<'_>) -> bool {
    // A dead weak reference points at None.
    let weak = info.weak.bind(py);
    !weak.call0().map(|t| t.is_none()).unwrap_or(true)
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
