//! Functions on load: made by `_make_function` / `_new_function`, completed by
//! `_restore_function` (skypickle's form) or `_function_setstate` (cloudpickle 3.x's form too).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCode, PyDict, PyFunction, PyString, PyTuple};

use super::expect;

/// `builtins.__dict__`, what loaded functions get as `__builtins__`.
pub(crate) fn builtins_dict(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    Ok(crate::known::get(py)?.builtins_dict.bind(py))
}

/// `_make_function(code, globals, closure)`: a function object, its other attributes set
/// afterwards by `_restore_function` (or `_function_setstate`). `globals` gets `__builtins__`
/// first, so the function sees the loader's builtins. The older form
/// `_make_function(code, globals, name, defaults, closure)` is accepted too.
#[pyfunction]
#[pyo3(signature = (code, globals, *rest))]
pub fn _make_function<'py>(
    py: Python<'py>,
    code: &Bound<'py, PyAny>,
    globals: &Bound<'py, PyAny>,
    rest: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let code = expect::<PyCode>(code, "_make_function() code", "a code object")?;
    let globals = expect::<PyDict>(globals, "_make_function() globals", "a dict")?;
    let (name, defaults, closure) = match rest.len() {
        1 => (
            py.None().into_bound(py),
            py.None().into_bound(py),
            rest.get_item(0)?,
        ),
        3 => (rest.get_item(0)?, rest.get_item(1)?, rest.get_item(2)?),
        n => {
            return Err(PyTypeError::new_err(format!(
                "_make_function() takes 3 or 5 arguments ({} given)",
                n + 2
            )))
        }
    };
    let builtins_key = pyo3::intern!(py, "__builtins__");
    if !globals.contains(builtins_key)? {
        globals.set_item(builtins_key, builtins_dict(py)?)?;
    }
    if name.is_none() && defaults.is_none() && closure.is_none() {
        // The common case, without FunctionType's argument parsing (for code that needs no
        // closure).
        if let Some(func) = crate::ffi::new_function(&code, &globals)? {
            return Ok(func);
        }
    }
    py.get_type::<PyFunction>()
        .call1((code, globals, name, defaults, closure))
}

/// `_new_function(code, globals, closure, used_globals, defaults, kwdefaults)`, the last
/// three optional: a function whose globals, defaults and keyword defaults are known before
/// it exists (skypickle sends them here when none of them can refer back to the function,
/// which saves a `_restore_function` call on load). `used_globals` are added to `globals`.
#[pyfunction]
#[pyo3(signature = (code, globals, closure, used_globals=None, defaults=None, kwdefaults=None))]
pub fn _new_function<'py>(
    py: Python<'py>,
    code: &Bound<'py, PyAny>,
    globals: &Bound<'py, PyAny>,
    closure: &Bound<'py, PyAny>,
    used_globals: Option<&Bound<'py, PyAny>>,
    defaults: Option<&Bound<'py, PyAny>>,
    kwdefaults: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let given = |v: Option<&Bound<'py, PyAny>>| v.filter(|v| !v.is_none()).cloned();
    if let Some(used) = given(used_globals) {
        let target = expect::<PyDict>(globals, "_new_function() globals", "a dict")?;
        let used = expect::<PyDict>(&used, "_new_function() used_globals", "a dict")?;
        target.update(used.as_mapping())?;
    }
    let func = _make_function(py, code, globals, &PyTuple::new(py, [closure])?)?;
    if defaults.is_some() || kwdefaults.is_some() {
        _restore_function(py, &func, None, defaults, kwdefaults, None, None, None)?;
    }
    Ok(func)
}

/// `_restore_function(func, globals, defaults, kwdefaults, cells, attrs, func_dict)`, any
/// trailing arguments left out when None: the rest of a function made by `_make_function`.
///
/// * `globals`: the globals its code uses, added to its namespace;
/// * `defaults`, `kwdefaults`: `__defaults__`, `__kwdefaults__`;
/// * `cells`: `{index: value}`, the contents of the closure cells this pickle created;
/// * `attrs`: attributes that differ from what `_make_function` gives (`__name__`,
///   `__qualname__`, `__module__`, `__doc__`, `__annotations__`, ...);
/// * `func_dict`: entries for `__dict__`.
#[pyfunction]
#[pyo3(signature = (func, globals=None, defaults=None, kwdefaults=None, cells=None, attrs=None, func_dict=None))]
#[allow(clippy::too_many_arguments)]
pub fn _restore_function<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    globals: Option<&Bound<'py, PyAny>>,
    defaults: Option<&Bound<'py, PyAny>>,
    kwdefaults: Option<&Bound<'py, PyAny>>,
    cells: Option<&Bound<'py, PyAny>>,
    attrs: Option<&Bound<'py, PyAny>>,
    func_dict: Option<&Bound<'py, PyAny>>,
) -> PyResult<()> {
    let func = expect::<PyFunction>(func, "_restore_function() func", "a function")?;
    let given = |v: Option<&Bound<'py, PyAny>>| v.filter(|v| !v.is_none()).cloned();
    if let Some(globals) = given(globals) {
        let globals = expect::<PyDict>(&globals, "_restore_function() globals", "a dict")?;
        crate::ffi::function_globals(&func)?.update(globals.as_mapping())?;
    }
    if let Some(defaults) = given(defaults) {
        let defaults =
            expect::<PyTuple>(&defaults, "_restore_function() defaults", "a tuple or None")?;
        crate::ffi::set_defaults(&func, &defaults)?;
    }
    if let Some(kwdefaults) = given(kwdefaults) {
        let kwdefaults = expect::<PyDict>(
            &kwdefaults,
            "_restore_function() kwdefaults",
            "a dict or None",
        )?;
        crate::ffi::set_kwdefaults(&func, &kwdefaults)?;
    }
    if let Some(cells) = given(cells) {
        let cells = expect::<PyDict>(&cells, "_restore_function() cells", "a dict")?;
        let closure = func.getattr(pyo3::intern!(py, "__closure__"))?;
        let closure = expect::<PyTuple>(&closure, "the function's closure", "a tuple")?;
        // Over a copy: extracting an index may run user code (`__index__`), which may change
        // the dict, and pyo3's dict iterator panics on that.
        for (index, value) in cells.copy()?.iter() {
            let index: usize = index.extract()?;
            if index >= closure.len() {
                return Err(PyValueError::new_err(format!(
                    "_restore_function() cell index {index} out of range for a closure of {}",
                    closure.len()
                )));
            }
            closure
                .get_item(index)?
                .setattr(pyo3::intern!(py, "cell_contents"), value)?;
        }
    }
    if let Some(attrs) = given(attrs) {
        let attrs = expect::<PyDict>(&attrs, "_restore_function() attrs", "a dict")?;
        // Over a copy: setattr may run user code (a str subclass's `__hash__`).
        for (key, value) in attrs.copy()?.iter() {
            let key = expect::<PyString>(&key, "function attribute name", "a str")?;
            // Submodules only had to be loaded (imported) to be there.
            if !key.to_cow().is_ok_and(|key| key == "_skypickle_submodules") {
                func.setattr(key, value)?;
            }
        }
    }
    if let Some(func_dict) = given(func_dict) {
        let func_dict = expect::<PyDict>(&func_dict, "_restore_function() func_dict", "a dict")?;
        let own = func
            .getattr(pyo3::intern!(py, "__dict__"))?
            .cast_into::<PyDict>()?;
        own.update(func_dict.as_mapping())?;
    }
    Ok(())
}

/// `_function_setstate(func, (state, slotstate))`: restore a function's `__dict__`, the
/// globals it uses, and its attributes.
#[pyfunction]
pub fn _function_setstate<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    state: &Bound<'py, PyAny>,
) -> PyResult<()> {
    let func = expect::<PyFunction>(func, "_function_setstate() func", "a function")?;
    let state = expect::<PyTuple>(state, "_function_setstate() state", "a tuple")?;
    if state.len() == 6 {
        // skypickle's own form: `_restore_function`'s arguments after `func`.
        let item = |i: usize| state.get_item(i).ok();
        return _restore_function(
            py,
            func.as_any(),
            item(0).as_ref(),
            item(1).as_ref(),
            item(2).as_ref(),
            item(3).as_ref(),
            item(4).as_ref(),
            item(5).as_ref(),
        );
    }
    // cloudpickle 3.x's form.
    if state.len() != 2 {
        return Err(PyValueError::new_err(
            "_function_setstate() state must be a (dict, slotstate) pair or skypickle's \
             6-tuple",
        ));
    }
    let dict_state = expect::<PyDict>(&state.get_item(0)?, "function state", "a dict")?;
    let slotstate = expect::<PyDict>(&state.get_item(1)?, "function slotstate", "a dict")?;
    if !dict_state.is_empty() {
        let func_dict = func.getattr(pyo3::intern!(py, "__dict__"))?;
        func_dict.call_method1(pyo3::intern!(py, "update"), (dict_state,))?;
    }
    let func_globals = func.getattr(pyo3::intern!(py, "__globals__"))?;
    // One pass, in the state's order: the globals the code uses go into its namespace, the
    // submodule list only had to be loaded (its modules are imported by now), and every other
    // entry is an attribute.
    // Over a copy: the entries' handling runs user code (iteration, setattr, update).
    for (key, value) in slotstate.copy()?.iter() {
        let key = expect::<PyString>(&key, "function attribute name", "a str")?;
        // A name that is not UTF-8 (lone surrogates) is none of the special entries.
        match key.to_cow().as_deref() {
            Ok("__globals__") => {
                let globals = expect::<PyDict>(&value, "function __globals__ state", "a dict")?;
                func_globals.call_method1(pyo3::intern!(py, "update"), (globals,))?;
            }
            // cloudpickle 3.x pickles name the same entry `_cloudpickle_submodules`.
            Ok("_skypickle_submodules" | "_cloudpickle_submodules") => {}
            // cloudpickle 3.x pickles send the closure's cells separately: copy their contents.
            Ok("__closure__") => {
                if !value.is_none() {
                    let own = func.getattr(pyo3::intern!(py, "__closure__"))?;
                    for (i, cell) in value.try_iter()?.enumerate() {
                        if let Ok(contents) = cell?.getattr(pyo3::intern!(py, "cell_contents")) {
                            own.get_item(i)?
                                .setattr(pyo3::intern!(py, "cell_contents"), contents)?;
                        }
                    }
                }
            }
            _ => func.setattr(&key, value)?,
        }
    }
    func_globals.set_item(pyo3::intern!(py, "__builtins__"), builtins_dict(py)?)?;
    Ok(())
}
