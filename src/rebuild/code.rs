//! Code objects on load.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyCode, PyString, PyTuple};

use super::expect;

/// `_make_code(version, *args)`: a code object, from `CodeType`'s positional arguments (also
/// accepted as one tuple, `_make_code(version, args)`).
#[pyfunction]
#[pyo3(signature = (version, *args))]
pub fn _make_code<'py>(
    py: Python<'py>,
    version: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let version = expect::<PyString>(version, "_make_code() version", "a str")?;
    let here = crate::wire::python_tag(py)?;
    if !version.is(here) && version.to_cow()? != here.to_cow()? {
        return Err(PyValueError::new_err(format!(
            "this pickle contains a function compiled by CPython {version}; it can only be \
             loaded by CPython {version}, not by CPython {here} (code objects do not move \
             between Python versions)"
        )));
    }
    let code_type = py.get_type::<PyCode>();
    if args.len() == 1 {
        let args = expect::<PyTuple>(&args.get_item(0)?, "_make_code() args", "a tuple")?;
        return code_type.call1(args);
    }
    code_type.call1(args)
}
