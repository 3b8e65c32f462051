//! Code objects: `_code_reduce`. A code object is rebuilt from `CodeType`'s positional
//! arguments, which differ between CPython versions, so the pickle carries the version that
//! made it and `_make_code` refuses any other.

use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::rebuild::{python_tag, wire};

/// A new tuple with the same items: in the loading process these tuples are always new
/// objects, so sharing them here would make memo hits (and bytes) depend on the sender.
fn fresh_tuple<'py>(value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let tuple = value.cast_into::<PyTuple>()?;
    Ok(PyTuple::new(tuple.py(), tuple.iter())?.into_any())
}

/// A new str with the same text (what `"".join(s)` gives).
fn fresh_str<'py>(value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let text = value.cast_into::<PyString>()?;
    Ok(PyString::new(text.py(), &text.to_cow()?).into_any())
}

/// `(_make_code, (version, CodeType arguments))` for a code object.
pub fn code_reduce<'py>(code: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let py = code.py();
    macro_rules! attr {
        ($name:literal) => {
            code.getattr(pyo3::intern!(py, $name))
        };
    }
    let mut args: Vec<Bound<'py, PyAny>> = vec![
        attr!("co_argcount")?,
        attr!("co_posonlyargcount")?,
        attr!("co_kwonlyargcount")?,
        attr!("co_nlocals")?,
        attr!("co_stacksize")?,
        attr!("co_flags")?,
        attr!("co_code")?,
        attr!("co_consts")?,
        fresh_tuple(attr!("co_names")?)?,
        fresh_tuple(attr!("co_varnames")?)?,
        attr!("co_filename")?,
        fresh_str(attr!("co_name")?)?,
    ];
    if cfg!(Py_3_11) {
        args.push(attr!("co_qualname")?);
    }
    args.push(attr!("co_firstlineno")?);
    if cfg!(Py_3_10) {
        args.push(attr!("co_linetable")?);
    } else {
        args.push(attr!("co_lnotab")?);
    }
    if cfg!(Py_3_11) {
        args.push(attr!("co_exceptiontable")?);
    }
    args.push(fresh_tuple(attr!("co_freevars")?)?);
    args.push(fresh_tuple(attr!("co_cellvars")?)?);
    let args = PyTuple::new(py, args)?;
    let make_code = wire(py)?.make_code.bind(py);
    PyTuple::new(
        py,
        [
            make_code.clone(),
            PyTuple::new(
                py,
                [
                    PyString::new(py, &python_tag(py)).into_any(),
                    args.into_any(),
                ],
            )?
            .into_any(),
        ],
    )
}
