//! The load side: reconstructors that skypickle's pickles call, by name, when loaded with
//! `pickle.loads`.
//!
//! Their names are a **wire format**: a pickle refers to each as `skypickle._skypickle.<name>`.
//! Once released they are never renamed (only aliased). Every reconstructor checks its
//! arguments, so a forged or corrupted pickle gets a `TypeError`/`ValueError`, never a crash.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCode, PyDict, PyFunction, PyModule, PyString, PyTuple, PyType};

/// The Python version tag code objects are pickled with ("3.11"): code objects only load on
/// the minor version that made them.
fn python_tag(py: Python<'_>) -> String {
    let v = py.version_info();
    format!("{}.{}", v.major, v.minor)
}

static PYTHON_TAG: PyOnceLock<Py<PyString>> = PyOnceLock::new();

/// [`python_tag`] as a str object, made once.
pub fn python_tag_str(py: Python<'_>) -> &Bound<'_, PyString> {
    PYTHON_TAG
        .get_or_init(py, || PyString::new(py, &python_tag(py)).unbind())
        .bind(py)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn expect<'py, T: pyo3::type_object::PyTypeCheck>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    expected: &str,
) -> PyResult<Bound<'py, T>> {
    obj.cast::<T>().cloned().map_err(|_| {
        PyTypeError::new_err(format!("{what} must be {expected}, not {}", type_name(obj)))
    })
}

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
    let here = python_tag_str(py);
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
    expect::<PyCode>(code, "_make_function() code", "a code object")?;
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
        // The common case, without FunctionType's argument parsing: only safe for code that
        // needs no closure (FunctionType checks that; PyFunction_New does not).
        let free = code
            .getattr(pyo3::intern!(py, "co_freevars"))?
            .cast_into::<PyTuple>()?;
        if free.is_empty() {
            // SAFETY: `code` is a code object and `globals` a dict (both checked above);
            // PyFunction_New returns a new reference or null with an exception.
            return unsafe {
                Bound::from_owned_ptr_or_err(
                    py,
                    pyo3::ffi::PyFunction_New(code.as_ptr(), globals.as_ptr()),
                )
            };
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
        // SAFETY: `func` is a function; its globals are a borrowed dict it keeps alive.
        let own = unsafe {
            Bound::from_borrowed_ptr(py, pyo3::ffi::PyFunction_GetGlobals(func.as_ptr()))
        };
        own.cast::<PyDict>()?.update(globals.as_mapping())?;
    }
    if let Some(defaults) = given(defaults) {
        expect::<PyTuple>(&defaults, "_restore_function() defaults", "a tuple or None")?;
        // SAFETY: a function and a tuple; returns -1 with an exception on failure.
        if unsafe { pyo3::ffi::PyFunction_SetDefaults(func.as_ptr(), defaults.as_ptr()) } < 0 {
            return Err(PyErr::fetch(py));
        }
    }
    if let Some(kwdefaults) = given(kwdefaults) {
        expect::<PyDict>(
            &kwdefaults,
            "_restore_function() kwdefaults",
            "a dict or None",
        )?;
        // SAFETY: a function and a dict; returns -1 with an exception on failure.
        if unsafe { pyo3::ffi::PyFunction_SetKwDefaults(func.as_ptr(), kwdefaults.as_ptr()) } < 0 {
            return Err(PyErr::fetch(py));
        }
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

static BUILTINS: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// `builtins.__dict__`, what loaded functions and modules get as `__builtins__`.
fn builtins_dict(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    BUILTINS
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("builtins")?.dict().unbind())
        })
        .map(|d| d.bind(py))
}

static CELL_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

pub fn cell_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    CELL_TYPE.import(py, "types", "CellType")
}

/// `_make_empty_cell()`: a new cell with no contents.
#[pyfunction]
pub fn _make_empty_cell(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: PyCell_New(NULL) makes an empty cell; a new reference or null with an error.
    unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyCell_New(std::ptr::null_mut())) }
}

/// `_make_cell(value)`: a new cell holding `value`.
#[pyfunction]
pub fn _make_cell<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    cell_type(py)?.call1((value,))
}

/// `_cell_set(cell, value)`: fill a cell (the state setter of a pickled cell).
#[pyfunction]
pub fn _cell_set<'py>(
    py: Python<'py>,
    cell: &Bound<'py, PyAny>,
    value: &Bound<'py, PyAny>,
) -> PyResult<()> {
    if !cell.get_type().is(cell_type(py)?) {
        return Err(PyTypeError::new_err(format!(
            "_cell_set() cell must be a cell, not {}",
            type_name(cell)
        )));
    }
    cell.setattr(pyo3::intern!(py, "cell_contents"), value)
}

/// `_subimport(name)`: the module `name`, imported (dotted names give the submodule).
#[pyfunction]
pub fn _subimport<'py>(py: Python<'py>, name: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let name = expect::<PyString>(name, "_subimport() name", "a str")?;
    // A loaded module is a dict lookup away (importlib.import_module is a Python call).
    if let Some(module) = crate::by_value::lookup::loaded_module(&name)? {
        return Ok(module);
    }
    py.import("importlib")?
        .call_method1(pyo3::intern!(py, "import_module"), (name,))
}

/// `_dynamic_subimport(name, vars)`: a module that exists in no `sys.modules`, rebuilt.
#[pyfunction]
pub fn _dynamic_subimport<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyAny>,
    vars: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyModule>> {
    let name = expect::<PyString>(name, "_dynamic_subimport() name", "a str")?;
    let vars = expect::<PyDict>(vars, "_dynamic_subimport() vars", "a dict")?;
    // `ModuleType(name)` with the str itself: a name may hold lone surrogates (no UTF-8 text).
    let module = py
        .get_type::<PyModule>()
        .call1((name,))?
        .cast_into::<PyModule>()?;
    let dict = module.dict();
    dict.update(vars.as_mapping())?;
    dict.set_item("__builtins__", builtins_dict(py)?)?;
    Ok(module)
}

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
    if let Some(known) = crate::by_value::tracker::lookup_class(class_tracker_id)? {
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
    crate::by_value::tracker::lookup_class_or_track(class_tracker_id, skeleton)
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
    if let Some(known) = crate::by_value::tracker::lookup_class(class_tracker_id)? {
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
    crate::by_value::tracker::lookup_class_or_track(class_tracker_id, enum_class)
}

/// `_class_setstate(cls, (class_dict, slotstate))`: fill a skeleton's namespace and restore
/// its registered ABC subclasses.
#[pyfunction]
pub fn _class_setstate<'py>(
    py: Python<'py>,
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
    // The class came back to the process that defined it (sent to a worker and back, or
    // loaded where it was pickled): it is the original, with its own namespace, which must
    // not be replaced by copies of itself (cloudpickle does replace it: the class's methods
    // become by-value copies with a namespace of their own, and later pickles differ). A
    // class that a payload brought here still takes a newer payload's state, as cloudpickle.
    if crate::by_value::tracker::defined_here(obj)? {
        return Ok(obj.clone());
    }
    let clsdict = expect::<PyDict>(&state.get_item(0)?, "class state", "a dict")?;
    // The same class received again (another payload, another thread): only what changed
    // since the state last received is set, so an identical payload resets nothing under
    // running instances (a class attribute they changed keeps its value, methods stay the
    // same objects), while a change made by the sender still arrives (cloudpickle sets the
    // whole state again every time).
    let fingerprints = PyDict::new(py);
    let mut registry = None;
    let mut updates = Vec::new();
    for item in clsdict.items().iter() {
        let (key, value) = (item.get_item(0)?, item.get_item(1)?);
        let key = expect::<PyString>(&key, "class attribute name", "a str")?;
        if key.to_cow().is_ok_and(|key| key == "_abc_impl") {
            registry = Some(value);
            continue;
        }
        fingerprints.set_item(&key, fingerprint(&value)?)?;
        updates.push((key, value));
    }
    let previous = crate::by_value::tracker::swap_last_state(obj, &fingerprints)?;
    for (key, value) in updates {
        if let Some(previous) = &previous {
            if let (Some(before), Some(now)) =
                (previous.get_item(&key)?, fingerprints.get_item(&key)?)
            {
                if before.eq(&now).unwrap_or(false) {
                    continue;
                }
            }
        }
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
    let types = &crate::lookups::get(value.py())?.types;
    let tp = value.get_type_ptr() as usize;
    let known = [
        (types.classmethod, "classmethod"),
        (types.staticmethod, "staticmethod"),
        (types.property, "property"),
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
    crate::by_value::tracker::lookup_class_or_track(class_tracker_id, typevar)
}

/// `_get_dataclass_field_type_sentinel(name)`: `dataclasses._FIELD` and its siblings.
#[pyfunction]
pub fn _get_dataclass_field_type_sentinel<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let name = expect::<PyString>(name, "_get_dataclass_field_type_sentinel() name", "a str")?;
    let text = name.to_cow()?;
    if !matches!(&*text, "_FIELD" | "_FIELD_CLASSVAR" | "_FIELD_INITVAR") {
        return Err(PyValueError::new_err(format!(
            "{text:?} is not a dataclass field kind"
        )));
    }
    py.import("dataclasses")?.getattr(&*text)
}

fn dict_class<'py>(py: Python<'py>, ordered: bool) -> PyResult<Bound<'py, PyAny>> {
    if ordered {
        py.import("collections")?.getattr("OrderedDict")
    } else {
        Ok(py.get_type::<PyDict>().into_any())
    }
}

/// `_make_dict_keys(keys, is_ordered=False)`: a keys view over a new dict.
#[pyfunction]
#[pyo3(signature = (obj, is_ordered=false))]
pub fn _make_dict_keys<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    is_ordered: bool,
) -> PyResult<Bound<'py, PyAny>> {
    dict_class(py, is_ordered)?
        .call_method1("fromkeys", (obj,))?
        .call_method0("keys")
}

/// `_make_dict_values(values, is_ordered=False)`: a values view over a new dict.
#[pyfunction]
#[pyo3(signature = (obj, is_ordered=false))]
pub fn _make_dict_values<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    is_ordered: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let pairs = PyDict::new(py);
    for (i, value) in obj.try_iter()?.enumerate() {
        pairs.set_item(i, value?)?;
    }
    dict_class(py, is_ordered)?
        .call1((pairs,))?
        .call_method0("values")
}

/// `_make_dict_items(mapping, is_ordered=False)`: an items view over a new dict.
#[pyfunction]
#[pyo3(signature = (obj, is_ordered=false))]
pub fn _make_dict_items<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    is_ordered: bool,
) -> PyResult<Bound<'py, PyAny>> {
    dict_class(py, is_ordered)?
        .call1((obj,))?
        .call_method0("items")
}

/// `_file_reconstructor(stringio)`: the `io.StringIO` a pickled text file became.
#[pyfunction]
pub fn _file_reconstructor<'py>(obj: &Bound<'py, PyAny>) -> Bound<'py, PyAny> {
    obj.clone()
}

/// `_make_lru_cache(func, maxsize, typed)`: `functools.lru_cache(maxsize, typed)(func)`.
#[pyfunction]
pub fn _make_lru_cache<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    maxsize: &Bound<'py, PyAny>,
    typed: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if !func.is_callable() {
        return Err(PyTypeError::new_err(
            "_make_lru_cache() func must be callable",
        ));
    }
    py.import("functools")?
        .getattr("lru_cache")?
        .call1((maxsize, typed))?
        .call1((func,))
}

/// `_make_singledispatch(func, implementations)`: a singledispatch function with its
/// `(class, implementation)` pairs registered again.
#[pyfunction]
pub fn _make_singledispatch<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    implementations: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if !func.is_callable() {
        return Err(PyTypeError::new_err(
            "_make_singledispatch() func must be callable",
        ));
    }
    let generic = py
        .import("functools")?
        .getattr("singledispatch")?
        .call1((func,))?;
    for pair in implementations.try_iter()? {
        let pair = expect::<PyTuple>(&pair?, "_make_singledispatch() item", "a tuple")?;
        if pair.len() != 2 {
            return Err(PyValueError::new_err(
                "_make_singledispatch() items are (class, function) pairs",
            ));
        }
        generic.call_method1("register", (pair.get_item(0)?, pair.get_item(1)?))?;
    }
    Ok(generic)
}

/// `_make_cached_property(func, attrname, doc)`: a `functools.cached_property` as it was after
/// its class was created (`__set_name__` is not called again by `setattr`).
#[pyfunction]
pub fn _make_cached_property<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    attrname: &Bound<'py, PyAny>,
    doc: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let prop = py
        .import("functools")?
        .getattr("cached_property")?
        .call1((func,))?;
    prop.setattr("attrname", attrname)?;
    prop.setattr("__doc__", doc)?;
    Ok(prop)
}

/// Every wire name: the reconstructors a pickle may call. Never rename one.
pub const WIRE_NAMES: &[&str] = &[
    "_make_code",
    "_make_function",
    "_function_setstate",
    "_make_empty_cell",
    "_make_cell",
    "_cell_set",
    "_subimport",
    "_dynamic_subimport",
    "_builtin_type",
    "_make_skeleton_class",
    "_make_skeleton_enum",
    "_class_setstate",
    "_make_typevar",
    "_get_dataclass_field_type_sentinel",
    "_make_dict_keys",
    "_make_dict_values",
    "_make_dict_items",
    "_file_reconstructor",
    "_make_lru_cache",
    "_make_singledispatch",
    "_make_cached_property",
    "_restore_function",
    "_new_function",
];

/// `_reconstruct`'s op numbers: the position of each reconstructor in [`WIRE_NAMES`]. Pickles
/// written with protocol 2+ call every reconstructor through `_reconstruct(op, *args)`, so the
/// loader looks up one global per pickle instead of one per reconstructor (each lookup costs
/// about a microsecond in `pickle.loads`).
pub mod op {
    pub const MAKE_CODE: u8 = 0;
    pub const MAKE_FUNCTION: u8 = 1;
    pub const MAKE_EMPTY_CELL: u8 = 3;
    pub const CELL_SET: u8 = 5;
    pub const SUBIMPORT: u8 = 6;
    pub const CLASS_SETSTATE: u8 = 11;
    pub const RESTORE_FUNCTION: u8 = 21;
    pub const NEW_FUNCTION: u8 = 22;
}

/// The name of the one reconstructor pickles refer to by name (protocol 2+).
pub const RECONSTRUCT_NAME: &str = "_reconstruct";

static WIRE_FUNCTIONS: PyOnceLock<Vec<Py<PyAny>>> = PyOnceLock::new();

fn wire_functions(py: Python<'_>) -> PyResult<&Vec<Py<PyAny>>> {
    WIRE_FUNCTIONS.get_or_try_init(py, || {
        let m = py.import("skypickle._skypickle")?;
        WIRE_NAMES
            .iter()
            .map(|name| m.getattr(*name).map(Bound::unbind))
            .collect()
    })
}

/// `_reconstruct(op, *args)`: `WIRE_NAMES[op](*args)`, given the whole argument tuple
/// `(op, *args)`. The hot ones (code objects, functions, cells, module imports) are called
/// directly, the others through their Python-visible function.
fn reconstruct<'py>(py: Python<'py>, call: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let Ok(op) = call.get_item(0) else {
        return Err(PyTypeError::new_err(
            "_reconstruct() needs an op (the reconstructor's number)",
        ));
    };
    let index: usize = op.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "_reconstruct() op must be a non-negative int, not {}",
            type_name(&op)
        ))
    })?;
    let n = call.len() - 1;
    // Argument i (after the op); absent trailing arguments are None (checked before indexing:
    // an IndexError is costly).
    let arg = |i: usize| {
        if i < n {
            call.get_item(i + 1).ok()
        } else {
            None
        }
    };
    let at = |i: usize| call.get_item(i + 1);
    let rest = |from: usize| call.get_slice((from + 1).min(call.len()), call.len());
    let args = || rest(0);
    match u8::try_from(index) {
        Ok(op::MAKE_CODE) if n >= 1 => _make_code(py, &at(0)?, &rest(1)),
        Ok(op::MAKE_FUNCTION) if n >= 2 => _make_function(py, &at(0)?, &at(1)?, &rest(2)),
        Ok(op::MAKE_EMPTY_CELL) if n == 0 => _make_empty_cell(py),
        Ok(op::CELL_SET) if n == 2 => {
            _cell_set(py, &at(0)?, &at(1)?)?;
            Ok(py.None().into_bound(py))
        }
        Ok(op::SUBIMPORT) if n == 1 => _subimport(py, &at(0)?),
        Ok(op::NEW_FUNCTION) if (3..=6).contains(&n) => _new_function(
            py,
            &at(0)?,
            &at(1)?,
            &at(2)?,
            arg(3).as_ref(),
            arg(4).as_ref(),
            arg(5).as_ref(),
        ),
        Ok(op::RESTORE_FUNCTION) if (1..=7).contains(&n) => {
            _restore_function(
                py,
                &at(0)?,
                arg(1).as_ref(),
                arg(2).as_ref(),
                arg(3).as_ref(),
                arg(4).as_ref(),
                arg(5).as_ref(),
                arg(6).as_ref(),
            )?;
            Ok(py.None().into_bound(py))
        }
        _ => match wire_functions(py)?.get(index) {
            Some(function) => function.bind(py).call1(args()),
            None => Err(PyValueError::new_err(format!(
                "_reconstruct() got an unknown op {index} (this skypickle knows 0 to {}; the \
                 pickle may come from a newer skypickle)",
                WIRE_NAMES.len() - 1
            ))),
        },
    }
}

/// The reconstructor objects, looked up once from the compiled module.
pub struct Wire {
    pub reconstruct: Py<PyAny>,
    pub make_code: Py<PyAny>,
    pub make_function: Py<PyAny>,
    pub function_setstate: Py<PyAny>,
    pub make_empty_cell: Py<PyAny>,
    pub cell_set: Py<PyAny>,
    pub subimport: Py<PyAny>,
    pub dynamic_subimport: Py<PyAny>,
    pub builtin_type: Py<PyAny>,
    pub make_skeleton_class: Py<PyAny>,
    pub make_skeleton_enum: Py<PyAny>,
    pub class_setstate: Py<PyAny>,
    pub make_typevar: Py<PyAny>,
    pub get_dataclass_field_type_sentinel: Py<PyAny>,
    pub make_dict_keys: Py<PyAny>,
    pub make_dict_values: Py<PyAny>,
    pub make_dict_items: Py<PyAny>,
    pub file_reconstructor: Py<PyAny>,
    pub make_lru_cache: Py<PyAny>,
    pub make_singledispatch: Py<PyAny>,
    pub make_cached_property: Py<PyAny>,
}

static WIRE: PyOnceLock<Wire> = PyOnceLock::new();

pub fn wire(py: Python<'_>) -> PyResult<&'static Wire> {
    WIRE.get_or_try_init(py, || {
        let m = py.import("skypickle._skypickle")?;
        let get = |name: &str| m.getattr(name).map(Bound::unbind);
        Ok(Wire {
            reconstruct: get(RECONSTRUCT_NAME)?,
            make_code: get("_make_code")?,
            make_function: get("_make_function")?,
            function_setstate: get("_function_setstate")?,
            make_empty_cell: get("_make_empty_cell")?,
            cell_set: get("_cell_set")?,
            subimport: get("_subimport")?,
            dynamic_subimport: get("_dynamic_subimport")?,
            builtin_type: get("_builtin_type")?,
            make_skeleton_class: get("_make_skeleton_class")?,
            make_skeleton_enum: get("_make_skeleton_enum")?,
            class_setstate: get("_class_setstate")?,
            make_typevar: get("_make_typevar")?,
            get_dataclass_field_type_sentinel: get("_get_dataclass_field_type_sentinel")?,
            make_dict_keys: get("_make_dict_keys")?,
            make_dict_values: get("_make_dict_values")?,
            make_dict_items: get("_make_dict_items")?,
            file_reconstructor: get("_file_reconstructor")?,
            make_lru_cache: get("_make_lru_cache")?,
            make_singledispatch: get("_make_singledispatch")?,
            make_cached_property: get("_make_cached_property")?,
        })
    })
}

/// The C entry point of `_reconstruct`, a METH_VARARGS builtin: REDUCE calls it with the
/// argument tuple it has just built, which is used as it is (a `#[pyfunction]` taking `*args`
/// would copy it into a second tuple on every call).
unsafe extern "C" fn reconstruct_entry(
    _module: *mut pyo3::ffi::PyObject,
    args: *mut pyo3::ffi::PyObject,
) -> *mut pyo3::ffi::PyObject {
    let outcome = std::panic::catch_unwind(|| {
        // SAFETY: CPython calls a builtin with the thread attached, and a METH_VARARGS
        // function with a tuple (borrowed for the duration of the call).
        let py = unsafe { Python::assume_attached() };
        // SAFETY: as above.
        let args = unsafe { Bound::from_borrowed_ptr(py, args) };
        let result = args
            .cast::<PyTuple>()
            .map_err(PyErr::from)
            .and_then(|call| reconstruct(py, call));
        match result {
            Ok(value) => value.into_ptr(),
            Err(err) => {
                err.restore(py);
                std::ptr::null_mut()
            }
        }
    });
    outcome.unwrap_or_else(|_| {
        // SAFETY: as above; a panic must not unwind into CPython.
        let py = unsafe { Python::assume_attached() };
        pyo3::exceptions::PySystemError::new_err("skypickle: internal error in _reconstruct")
            .restore(py);
        std::ptr::null_mut()
    })
}

/// Add `_reconstruct` to the module.
pub fn add_reconstruct(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    // One definition per module initialisation, alive for the rest of the process (CPython
    // keeps a pointer to it in the function object).
    let def: &'static mut pyo3::ffi::PyMethodDef = Box::leak(Box::new(pyo3::ffi::PyMethodDef {
        ml_name: c"_reconstruct".as_ptr(),
        ml_meth: pyo3::ffi::PyMethodDefPointer {
            PyCFunction: reconstruct_entry,
        },
        ml_flags: pyo3::ffi::METH_VARARGS,
        ml_doc: c"_reconstruct(op, *args): call skypickle's reconstructor number op (see _WIRE_NAMES) with args.".as_ptr(),
    }));
    let module_name = module.name()?;
    // SAFETY: `def` lives forever; PyCFunction_NewEx returns a new reference or null with an
    // exception.
    let function = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyCFunction_NewEx(def, std::ptr::null_mut(), module_name.as_ptr()),
        )?
    };
    module.add(RECONSTRUCT_NAME, function)
}

#[cfg(test)]
mod tests {
    use super::{op, WIRE_NAMES};

    #[test]
    fn op_numbers_name_their_reconstructors() {
        assert_eq!(WIRE_NAMES[usize::from(op::MAKE_CODE)], "_make_code");
        assert_eq!(WIRE_NAMES[usize::from(op::MAKE_FUNCTION)], "_make_function");
        assert_eq!(
            WIRE_NAMES[usize::from(op::MAKE_EMPTY_CELL)],
            "_make_empty_cell"
        );
        assert_eq!(WIRE_NAMES[usize::from(op::CELL_SET)], "_cell_set");
        assert_eq!(WIRE_NAMES[usize::from(op::SUBIMPORT)], "_subimport");
        assert_eq!(
            WIRE_NAMES[usize::from(op::CLASS_SETSTATE)],
            "_class_setstate"
        );
        assert_eq!(
            WIRE_NAMES[usize::from(op::RESTORE_FUNCTION)],
            "_restore_function"
        );
        assert_eq!(WIRE_NAMES[usize::from(op::NEW_FUNCTION)], "_new_function");
    }
}
