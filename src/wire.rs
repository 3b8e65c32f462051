//! The wire format: the reconstructors a payload may call, by number.
//!
//! A skypickle payload (protocol 2+) refers to one global, `skypickle._skypickle._reconstruct`,
//! and calls it as `_reconstruct(op, *args)`; `op` indexes [`WIRE_NAMES`]. One global per
//! payload instead of one per reconstructor matters on load: each global costs
//! `pickle.loads` about a microsecond. Each reconstructor is also a module attribute under its
//! own name (payloads below protocol 2, reduce values of `Pickler.reducer_override`, and shims
//! for cloudpickle-era payloads name them directly).
//!
//! **The table below is a released format: append only.** Never reorder, rename or remove an
//! entry, nor change a reconstructor's argument layout: payloads already written name them by
//! number. `tests/test_wire_format.py` freezes the names and `tests/golden/` holds payloads of
//! every op that each build must still load. Adding a reconstructor is one line here plus its
//! function in `rebuild/`.
//!
//! Everything else is derived from the table: the op constants ([`op`]), [`WIRE_NAMES`]
//! (exported as `_WIRE_NAMES`), the module attributes, and the object cache ([`Wire`], built
//! once at module initialisation from the module itself, never by importing it by name).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyModule, PyString, PyTuple};

use crate::rebuild;

/// The table: `op => CONSTANT, module::function;`, one line per reconstructor, in op order.
macro_rules! wire_table {
    ($($op:literal => $constant:ident, $module:ident :: $function:ident;)*) => {
        /// `_reconstruct`'s op numbers.
        pub mod op {
            $(pub const $constant: u8 = $op;)*
        }

        /// Every reconstructor a payload may call, by op: `WIRE_NAMES[op]`.
        pub const WIRE_NAMES: &[&str] = &[$(stringify!($function)),*];

        // The ops are 0, 1, 2, ... in table order, so an op is its name's index.
        const _: () = {
            let ops: &[u8] = &[$($op),*];
            let mut i = 0;
            while i < ops.len() {
                assert!(ops[i] as usize == i, "wire ops must be numbered 0, 1, 2, ... in order");
                i += 1;
            }
        };

        /// Add every reconstructor to the module, under its wire name.
        fn add_reconstructors(module: &Bound<'_, PyModule>) -> PyResult<()> {
            $(module.add_function(pyo3::wrap_pyfunction!(rebuild::$module::$function, module)?)?;)*
            Ok(())
        }
    };
}

wire_table! {
    0 => MAKE_CODE, code::_make_code;
    1 => MAKE_FUNCTION, function::_make_function;
    2 => FUNCTION_SETSTATE, function::_function_setstate;
    3 => MAKE_EMPTY_CELL, reducers::_make_empty_cell;
    4 => MAKE_CELL, reducers::_make_cell;
    5 => CELL_SET, reducers::_cell_set;
    6 => SUBIMPORT, reducers::_subimport;
    7 => DYNAMIC_SUBIMPORT, reducers::_dynamic_subimport;
    8 => BUILTIN_TYPE, class::_builtin_type;
    9 => MAKE_SKELETON_CLASS, class::_make_skeleton_class;
    10 => MAKE_SKELETON_ENUM, class::_make_skeleton_enum;
    11 => CLASS_SETSTATE, class::_class_setstate;
    12 => MAKE_TYPEVAR, class::_make_typevar;
    13 => GET_DATACLASS_FIELD_TYPE_SENTINEL, reducers::_get_dataclass_field_type_sentinel;
    14 => MAKE_DICT_KEYS, reducers::_make_dict_keys;
    15 => MAKE_DICT_VALUES, reducers::_make_dict_values;
    16 => MAKE_DICT_ITEMS, reducers::_make_dict_items;
    17 => FILE_RECONSTRUCTOR, reducers::_file_reconstructor;
    18 => MAKE_LRU_CACHE, reducers::_make_lru_cache;
    19 => MAKE_SINGLEDISPATCH, reducers::_make_singledispatch;
    20 => MAKE_CACHED_PROPERTY, reducers::_make_cached_property;
    21 => RESTORE_FUNCTION, function::_restore_function;
    22 => NEW_FUNCTION, function::_new_function;
}

/// The name of the one reconstructor payloads refer to by name (protocol 2+).
pub const RECONSTRUCT_NAME: &str = "_reconstruct";

/// cloudpickle's names for two load helpers: payloads that a shim maps onto this module keep
/// loading.
const ALIASES: &[(&str, &str)] = &[
    ("subimport", "_subimport"),
    ("dynamic_subimport", "_dynamic_subimport"),
];

/// A reconstructor as a global: its address, and the `__module__` and `__qualname__` objects
/// `save_global` would write for it.
struct KnownGlobal {
    address: usize,
    module: Py<PyAny>,
    qualname: Py<PyString>,
}

/// The reconstructor objects, read once from the module when it is initialised.
pub struct Wire {
    /// `_reconstruct`.
    pub reconstruct: Py<PyAny>,
    /// `WIRE_NAMES[op]`'s function, by op.
    pub functions: Vec<Py<PyAny>>,
    /// The same functions, then `_reconstruct`, as globals (for writing them by name).
    globals: Vec<KnownGlobal>,
}

impl Wire {
    fn build(module: &Bound<'_, PyModule>) -> PyResult<Self> {
        let reconstruct = module.getattr(RECONSTRUCT_NAME)?;
        let functions = WIRE_NAMES
            .iter()
            .map(|name| module.getattr(*name))
            .collect::<PyResult<Vec<_>>>()?;
        let globals = functions
            .iter()
            .chain([&reconstruct])
            .map(|f| {
                Ok(KnownGlobal {
                    // The module keeps the function alive for the life of the process.
                    address: f.as_ptr() as usize,
                    module: f.getattr("__module__")?.unbind(),
                    qualname: f.getattr("__qualname__")?.cast_into::<PyString>()?.unbind(),
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Wire {
            reconstruct: reconstruct.unbind(),
            functions: functions.into_iter().map(Bound::unbind).collect(),
            globals,
        })
    }

    /// The reconstructor with op `op`.
    pub fn get<'py>(&self, py: Python<'py>, op: u8) -> &Bound<'py, PyAny> {
        // Every `op::*` constant indexes the table (checked at compile time above).
        self.functions[usize::from(op)].bind(py)
    }

    /// The op of a skypickle reconstructor, or None for any other object.
    pub fn op_of(&self, obj: &Bound<'_, PyAny>) -> Option<u8> {
        let address = obj.as_ptr() as usize;
        let index = self.globals[..WIRE_NAMES.len()]
            .iter()
            .position(|g| g.address == address)?;
        u8::try_from(index).ok()
    }

    /// `(__module__, __qualname__)` of a reconstructor (or `_reconstruct`), or None for any
    /// other object.
    pub fn as_global<'py>(
        &self,
        obj: &Bound<'py, PyAny>,
    ) -> Option<(Bound<'py, PyAny>, Bound<'py, PyString>)> {
        let py = obj.py();
        let address = obj.as_ptr() as usize;
        self.globals
            .iter()
            .find(|g| g.address == address)
            .map(|g| (g.module.bind(py).clone(), g.qualname.bind(py).clone()))
    }
}

static WIRE: PyOnceLock<Wire> = PyOnceLock::new();

/// The reconstructor objects (read when the module was initialised).
pub fn wire(py: Python<'_>) -> PyResult<&'static Wire> {
    WIRE.get(py).ok_or_else(|| {
        pyo3::exceptions::PySystemError::new_err("skypickle._skypickle is not initialised")
    })
}

/// Add the reconstructors, `_reconstruct`, the aliases and `_WIRE_NAMES` to the module, and
/// build the object cache from it.
pub fn init(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    add_reconstructors(module)?;
    add_reconstruct(module)?;
    for (alias, name) in ALIASES {
        module.add(*alias, module.getattr(*name)?)?;
    }
    // `_reconstruct`'s op table, for tools that read payloads without loading them.
    module.add("_WIRE_NAMES", PyTuple::new(py, WIRE_NAMES)?)?;
    WIRE.get_or_try_init(py, || Wire::build(module))?;
    Ok(())
}

/// The version tag code objects are pickled with ("3.11"): code objects only load on the
/// minor version that made them.
pub fn python_tag(py: Python<'_>) -> PyResult<&Bound<'_, PyString>> {
    Ok(crate::known::get(py)?.python_tag.bind(py))
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
            rebuild::type_name(&op)
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
        Ok(op::MAKE_CODE) if n >= 1 => rebuild::code::_make_code(py, &at(0)?, &rest(1)),
        Ok(op::MAKE_FUNCTION) if n >= 2 => {
            rebuild::function::_make_function(py, &at(0)?, &at(1)?, &rest(2))
        }
        Ok(op::MAKE_EMPTY_CELL) if n == 0 => rebuild::reducers::_make_empty_cell(py),
        Ok(op::CELL_SET) if n == 2 => {
            rebuild::reducers::_cell_set(py, &at(0)?, &at(1)?)?;
            Ok(py.None().into_bound(py))
        }
        Ok(op::SUBIMPORT) if n == 1 => rebuild::reducers::_subimport(py, &at(0)?),
        Ok(op::NEW_FUNCTION) if (3..=6).contains(&n) => rebuild::function::_new_function(
            py,
            &at(0)?,
            &at(1)?,
            &at(2)?,
            arg(3).as_ref(),
            arg(4).as_ref(),
            arg(5).as_ref(),
        ),
        Ok(op::RESTORE_FUNCTION) if (1..=7).contains(&n) => {
            rebuild::function::_restore_function(
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
        _ => match wire(py)?.functions.get(index) {
            Some(function) => function.bind(py).call1(args()),
            None => Err(PyValueError::new_err(format!(
                "_reconstruct() got an unknown op {index} (this skypickle knows 0 to {}; the \
                 pickle may come from a newer skypickle)",
                WIRE_NAMES.len() - 1
            ))),
        },
    }
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
fn add_reconstruct(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    // One definition per module initialisation, alive for the rest of the process (CPython
    // keeps a pointer to it in the function object).
    let def: &'static mut pyo3::ffi::PyMethodDef = Box::leak(Box::new(pyo3::ffi::PyMethodDef {
        ml_name: c"_reconstruct".as_ptr(),
        ml_meth: pyo3::ffi::PyMethodDefPointer {
            PyCFunction: reconstruct_entry,
        },
        ml_flags: pyo3::ffi::METH_VARARGS,
        // The first line is the text signature `inspect.signature` (and stubtest) read.
        ml_doc: c"_reconstruct(op, /, *args)\n--\n\nCall skypickle's reconstructor number op (see _WIRE_NAMES) with args.".as_ptr(),
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
    fn op_constants_name_their_reconstructors() {
        assert_eq!(WIRE_NAMES[usize::from(op::MAKE_CODE)], "_make_code");
        assert_eq!(
            WIRE_NAMES[usize::from(op::CLASS_SETSTATE)],
            "_class_setstate"
        );
        assert_eq!(WIRE_NAMES[usize::from(op::NEW_FUNCTION)], "_new_function");
        assert_eq!(WIRE_NAMES.len(), 23);
    }
}
