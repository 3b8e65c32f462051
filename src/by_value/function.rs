//! Functions by value: `_dynamic_function_reduce`, and what it needs from the code —
//! the globals it uses and the submodules it reaches.
//!
//! Reduce value:
//! `(_make_function, (code, base_globals, None, None, closure), (dict, slotstate), None, None,
//!   _function_setstate)`.
//!
//! * `base_globals` is one dict per globals namespace per pickler (`globals_ref`), holding
//!   only `__package__`, `__name__`, `__path__`, `__file__`: functions of one dump that shared a
//!   namespace share one after loading.
//! * `closure` is the function's own cell tuple. Cells are pickled by identity (an empty cell,
//!   memoised, then filled by a state setter), so two closures that share a `nonlocal` cell
//!   still share it after loading (cloudpickle gives each its own copy), and a function that
//!   refers to itself through its closure needs no special case.
//! * `slotstate` carries `__name__`, `__qualname__`, `__annotations__`, `__kwdefaults__`,
//!   `__defaults__`, `__module__`, `__doc__`, the used globals (`__globals__`) and the
//!   submodules to import (`_skypickle_submodules`).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCode, PyDict, PyList, PyModule, PyString, PyTuple};

use crate::rebuild::wire;

/// Opcode numbers for the running CPython, from `opcode.opmap`.
struct Opcodes {
    load_global: u8,
    store_global: u8,
    delete_global: u8,
    extended_arg: u8,
}

static OPCODES: PyOnceLock<Opcodes> = PyOnceLock::new();

fn opcodes(py: Python<'_>) -> PyResult<&'static Opcodes> {
    OPCODES.get_or_try_init(py, || {
        let opmap = py.import("opcode")?.getattr(pyo3::intern!(py, "opmap"))?;
        let get = |name: &str| -> PyResult<u8> { opmap.get_item(name)?.extract() };
        Ok(Opcodes {
            load_global: get("LOAD_GLOBAL")?,
            store_global: get("STORE_GLOBAL")?,
            delete_global: get("DELETE_GLOBAL")?,
            extended_arg: get("EXTENDED_ARG")?,
        })
    })
}

/// The global names `code` (and the code nested in it) reads, writes or deletes, in order of
/// first use, as the code object's own `co_names` strings. Collected into `names` (a dict used
/// as an ordered set).
pub fn extract_code_globals<'py>(
    code: &Bound<'py, PyAny>,
    names: &Bound<'py, PyDict>,
) -> PyResult<()> {
    let py = code.py();
    let ops = opcodes(py)?;
    let co_names = code
        .getattr(pyo3::intern!(py, "co_names"))?
        .cast_into::<PyTuple>()?;
    let co_code = code.getattr(pyo3::intern!(py, "co_code"))?;
    let bytes = co_code.cast::<pyo3::types::PyBytes>()?.as_bytes();
    let mut ext: usize = 0;
    for unit in bytes.chunks_exact(2) {
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

/// Submodules of the modules in `deps` that the code reaches by attribute (`xml.etree` used as
/// `xml.etree.ElementTree.parse` with only `xml` global): pickled so the loader imports them.
fn find_imported_submodules<'py>(
    code: &Bound<'py, PyAny>,
    deps: &[Bound<'py, PyAny>],
) -> PyResult<Bound<'py, PyList>> {
    let py = code.py();
    let found = PyList::empty(py);
    let mut modules = None;
    let co_names = code.getattr(pyo3::intern!(py, "co_names"))?;
    for dep in deps {
        if !dep.is_instance_of::<PyModule>() {
            continue;
        }
        let package = dep.getattr_opt(pyo3::intern!(py, "__package__"))?;
        if !package.is_some_and(|p| p.is_truthy().unwrap_or(false)) {
            continue;
        }
        let prefix = format!("{}.", dep.getattr(pyo3::intern!(py, "__name__"))?.str()?);
        let modules = match &modules {
            Some(m) => m,
            None => modules.insert(
                py.import("sys")?
                    .getattr(pyo3::intern!(py, "modules"))?
                    .cast_into::<PyDict>()?
                    .copy()?,
            ),
        };
        for (name, module) in modules.iter() {
            let Ok(name) = name.cast::<PyString>() else {
                continue;
            };
            let name = name.to_cow()?;
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            let mut all_used = true;
            for token in rest.split('.') {
                if !co_names.contains(token)? {
                    all_used = false;
                    break;
                }
            }
            if all_used && !module.is_none() {
                found.append(module)?;
            }
        }
    }
    Ok(found)
}

/// The reduce value of a function pickled by value.
pub fn function_reduce<'py>(
    func: &Bound<'py, PyAny>,
    globals_ref: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyTuple>> {
    let py = func.py();
    let w = wire(py)?;
    let code = func.getattr(pyo3::intern!(py, "__code__"))?;
    let func_globals = func
        .getattr(pyo3::intern!(py, "__globals__"))?
        .cast_into::<PyDict>()?;

    // One base namespace per globals dict per pickler.
    let key = (func_globals.as_ptr() as usize).into_pyobject(py)?;
    let base_globals = match globals_ref.get_item(&key)? {
        Some(base) => base.cast_into::<PyDict>()?,
        None => {
            let base = PyDict::new(py);
            for name in ["__package__", "__name__", "__path__", "__file__"] {
                if let Some(value) = func_globals.get_item(name)? {
                    base.set_item(name, value)?;
                }
            }
            globals_ref.set_item(&key, &base)?;
            base
        }
    };

    let names = PyDict::new(py);
    extract_code_globals(&code, &names)?;
    let used_globals = PyDict::new(py);
    for name in names.keys() {
        if let Some(value) = func_globals.get_item(&name)? {
            used_globals.set_item(name, value)?;
        }
    }

    let closure = func.getattr(pyo3::intern!(py, "__closure__"))?;
    let mut deps: Vec<Bound<'py, PyAny>> = used_globals.values().iter().collect();
    if let Ok(cells) = closure.cast::<PyTuple>() {
        for cell in cells.iter() {
            if let Ok(value) = cell.getattr(pyo3::intern!(py, "cell_contents")) {
                deps.push(value);
            }
        }
    }
    let submodules = find_imported_submodules(&code, &deps)?;

    let slotstate = PyDict::new(py);
    let name = func.getattr(pyo3::intern!(py, "__name__"))?.str()?;
    slotstate.set_item(
        pyo3::intern!(py, "__name__"),
        PyString::new(py, &name.to_cow()?),
    )?;
    let qualname = func.getattr(pyo3::intern!(py, "__qualname__"))?.str()?;
    slotstate.set_item(
        pyo3::intern!(py, "__qualname__"),
        PyString::new(py, &qualname.to_cow()?),
    )?;
    for attr in [
        pyo3::intern!(py, "__annotations__"),
        pyo3::intern!(py, "__kwdefaults__"),
        pyo3::intern!(py, "__defaults__"),
        pyo3::intern!(py, "__module__"),
        pyo3::intern!(py, "__doc__"),
    ] {
        slotstate.set_item(attr, func.getattr(attr)?)?;
    }
    slotstate.set_item(pyo3::intern!(py, "__globals__"), used_globals)?;
    slotstate.set_item(pyo3::intern!(py, "_skypickle_submodules"), submodules)?;

    // Fresh key strings: whether the sender interned them must not show in the bytes.
    let dict_state = PyDict::new(py);
    if let Some(func_dict) = func.getattr_opt(pyo3::intern!(py, "__dict__"))? {
        for (k, v) in func_dict.cast::<PyDict>()?.iter() {
            match k.cast::<PyString>() {
                Ok(key) => dict_state.set_item(PyString::new(py, &key.to_cow()?), v)?,
                Err(_) => dict_state.set_item(k, v)?,
            }
        }
    }
    let state = PyTuple::new(py, [dict_state.into_any(), slotstate.into_any()])?;
    let args = PyTuple::new(
        py,
        [
            code,
            base_globals.into_any(),
            py.None().into_bound(py),
            py.None().into_bound(py),
            closure,
        ],
    )?;
    super::reduce_with_state_setter(
        &w.make_function,
        args.into_any(),
        state.into_any(),
        &w.function_setstate,
    )
}
