//! cloudpickle's dispatch-table reducers: objects of these exact types are reduced here.
//! They live in `Pickler._dispatch_table` (the first map of `Pickler.dispatch_table`), where
//! subclasses can see, replace or extend them.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyModule, PyTuple};

use super::code::code_reduce;
use super::decision::should_pickle_by_reference;
use crate::known::{self, ViewKind};
use crate::wire::{op, wire};

fn reduce_value<'py>(
    py: Python<'py>,
    callable: Bound<'py, PyAny>,
    args: Vec<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, [callable, PyTuple::new(py, args)?.into_any()])
}

/// Cells: an empty cell, memoised, then filled by `_cell_set` (so a cell may contain
/// something that refers back to it, and a cell shared by two closures stays shared).
#[pyfunction]
pub fn _cell_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let w = wire(py)?;
    match obj.getattr(pyo3::intern!(py, "cell_contents")) {
        Err(_) => reduce_value(py, w.get(py, op::MAKE_EMPTY_CELL).clone(), vec![]),
        Ok(contents) => super::reduce_with_state_setter(
            w.get(py, op::MAKE_EMPTY_CELL),
            PyTuple::empty(py).into_any(),
            contents,
            w.get(py, op::CELL_SET),
        ),
    }
}

#[pyfunction]
pub fn _code_reduce<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    code_reduce(obj)
}

/// Modules: importable ones by name; others (not in `sys.modules`, or registered for
/// pickling by value) with their namespace, minus `__builtins__`.
#[pyfunction]
pub fn _module_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let w = wire(py)?;
    let name = obj.getattr(pyo3::intern!(py, "__name__"))?;
    if should_pickle_by_reference(obj)? {
        return reduce_value(py, w.get(py, op::SUBIMPORT).clone(), vec![name]);
    }
    let vars = obj.cast::<PyModule>()?.dict().copy()?;
    if vars.contains(pyo3::intern!(py, "__builtins__"))? {
        vars.del_item("__builtins__")?;
    }
    if crate::deterministic::current().normalize_paths {
        // The module's source location: file names cut to their base names; the spec and
        // loader, which hold full paths, left out (a module rebuilt from its namespace is
        // loaded by no loader).
        for key in ["__file__", "__cached__"] {
            if let Some(value) = vars.get_item(key)? {
                vars.set_item(key, crate::deterministic::normalized_path(&value)?)?;
            }
        }
        for key in ["__spec__", "__loader__"] {
            if vars.contains(key)? {
                vars.set_item(key, py.None())?;
            }
        }
        if let Some(path) = vars.get_item("__path__")? {
            vars.set_item(
                "__path__",
                crate::deterministic::normalized_path_list(&path)?,
            )?;
        }
    }
    reduce_value(
        py,
        w.get(py, op::DYNAMIC_SUBIMPORT).clone(),
        vec![name, vars.into_any()],
    )
}

/// Bound methods: `MethodType(func, self)`.
#[pyfunction]
pub fn _method_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    reduce_value(
        py,
        obj.get_type().into_any(),
        vec![
            obj.getattr(pyo3::intern!(py, "__func__"))?,
            obj.getattr(pyo3::intern!(py, "__self__"))?,
        ],
    )
}

/// Raw `classmethod` / `staticmethod` objects (as found in a class `__dict__`).
#[pyfunction]
pub fn _classmethod_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    reduce_value(
        py,
        obj.get_type().into_any(),
        vec![obj.getattr(pyo3::intern!(py, "__func__"))?],
    )
}

#[pyfunction]
pub fn _property_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let property = known::get(py)?.property_type.bind(py).clone().into_any();
    reduce_value(
        py,
        property,
        vec![
            obj.getattr(pyo3::intern!(py, "fget"))?,
            obj.getattr(pyo3::intern!(py, "fset"))?,
            obj.getattr(pyo3::intern!(py, "fdel"))?,
            obj.getattr(pyo3::intern!(py, "__doc__"))?,
        ],
    )
}

#[pyfunction]
pub fn _mappingproxy_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let copy = PyDict::new(py);
    copy.update(obj.cast::<pyo3::types::PyMapping>()?)?;
    reduce_value(py, obj.get_type().into_any(), vec![copy.into_any()])
}

/// getset descriptors (`float.real`): `getattr(owner, name)`.
#[pyfunction]
pub fn _getset_descriptor_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let getattr = crate::known::get(py)?.getattr.bind(py).clone();
    reduce_value(
        py,
        getattr,
        vec![
            obj.getattr(pyo3::intern!(py, "__objclass__"))?,
            obj.getattr(pyo3::intern!(py, "__name__"))?,
        ],
    )
}

/// `memoryview` loads as `bytes` (cloudpickle's behaviour).
#[pyfunction]
pub fn _memoryview_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let bytes = py.get_type::<pyo3::types::PyBytes>().into_any();
    reduce_value(py, bytes, vec![obj.call_method0("tobytes")?])
}

#[pyfunction]
pub fn _weakset_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let members = PyList::new(py, obj.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
    reduce_value(py, obj.get_type().into_any(), vec![members.into_any()])
}

#[pyfunction]
pub fn _logger_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let get_logger = py
        .import("logging")?
        .getattr(pyo3::intern!(py, "getLogger"))?;
    reduce_value(
        py,
        get_logger,
        vec![obj.getattr(pyo3::intern!(py, "name"))?],
    )
}

/// The root logger: `logging.getLogger()` (it has no name to look it up by).
#[pyfunction]
#[pyo3(signature = (obj))]
pub fn _root_logger_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let _ = obj;
    let get_logger = py
        .import("logging")?
        .getattr(pyo3::intern!(py, "getLogger"))?;
    reduce_value(py, get_logger, vec![])
}

/// TypeVars: by reference when importable (and not registered for pickling by value), else
/// rebuilt from their parts and tracked like classes.
#[pyfunction]
pub fn _typevar_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let name = obj.getattr(pyo3::intern!(py, "__name__"))?;
    let found = super::decision::lookup_module_and_name(obj, &name.str()?)?;
    if let Some((module, _)) = &found {
        if !super::decision::is_registered_pickle_by_value(module)? {
            let getattr = crate::known::get(py)?.getattr.bind(py).clone();
            return reduce_value(py, getattr, vec![module.clone(), name]);
        }
    }
    let w = wire(py)?;
    reduce_value(
        py,
        w.get(py, op::MAKE_TYPEVAR).clone(),
        vec![
            name,
            obj.getattr(pyo3::intern!(py, "__bound__"))?,
            obj.getattr(pyo3::intern!(py, "__constraints__"))?,
            obj.getattr(pyo3::intern!(py, "__covariant__"))?,
            obj.getattr(pyo3::intern!(py, "__contravariant__"))?,
            super::identity::tracker_id(obj)?,
        ],
    )
}

/// `dataclasses`' field-kind sentinels (`_FIELD`, `_FIELD_CLASSVAR`, `_FIELD_INITVAR`) by name,
/// so `dataclasses.fields()` still recognises them after loading.
#[pyfunction]
pub fn _dataclass_field_base_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let w = wire(py)?;
    reduce_value(
        py,
        w.get(py, op::GET_DATACLASS_FIELD_TYPE_SENTINEL).clone(),
        vec![obj.getattr(pyo3::intern!(py, "name"))?],
    )
}

/// Dict views carry only what they show, not the dict behind them.
fn view_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    rebuild: &Bound<'py, PyAny>,
    as_dict: bool,
    ordered: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let content = if as_dict {
        let d = PyDict::new(py);
        for pair in obj.try_iter()? {
            let pair = pair?.cast_into::<PyTuple>()?;
            d.set_item(pair.get_item(0)?, pair.get_item(1)?)?;
        }
        d.into_any()
    } else {
        PyList::new(py, obj.try_iter()?.collect::<PyResult<Vec<_>>>()?)?.into_any()
    };
    let mut args = vec![content];
    if ordered {
        args.push(pyo3::types::PyBool::new(py, true).to_owned().into_any());
    }
    reduce_value(py, rebuild.clone(), args)
}

/// Dict views (plain and `OrderedDict`, keys/values/items), by their exact type.
#[pyfunction]
pub fn _dict_view_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let tp = obj.get_type();
    let views = &known::get(py)?.dict_views;
    let Some(view) = views.iter().find(|v| tp.is(&v.view_type)) else {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "_dict_view_reduce() takes a dict view, not {}",
            tp.name()?
        )));
    };
    let rebuild = wire(py)?.get(
        py,
        match view.kind {
            ViewKind::Keys => op::MAKE_DICT_KEYS,
            ViewKind::Values => op::MAKE_DICT_VALUES,
            ViewKind::Items => op::MAKE_DICT_ITEMS,
        },
    );
    view_reduce(py, obj, rebuild, view.kind == ViewKind::Items, view.ordered)
}

/// Text files opened for reading: their whole content as an `io.StringIO` at the same
/// position (cloudpickle's behaviour); `sys.stdout`/`sys.stderr` by name.
#[pyfunction]
pub fn _file_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let error = |msg: String| crate::errors::pickling_error(py, msg);
    let (Some(name), Some(mode)) = (obj.getattr_opt("name")?, obj.getattr_opt("mode")?) else {
        return Err(error(
            "Cannot pickle files that do not map to an actual file".into(),
        ));
    };
    let sys = py.import("sys")?;
    let getattr = crate::known::get(py)?.getattr.bind(py).clone();
    for stream in ["stdout", "stderr"] {
        if obj.is(sys.getattr(stream)?) {
            return reduce_value(
                py,
                getattr,
                vec![
                    sys.into_any(),
                    pyo3::types::PyString::new(py, stream).into_any(),
                ],
            );
        }
    }
    if obj.is(sys.getattr(pyo3::intern!(py, "stdin"))?) {
        return Err(error("Cannot pickle standard input".into()));
    }
    if obj.getattr(pyo3::intern!(py, "closed"))?.is_truthy()? {
        return Err(error("Cannot pickle closed files".into()));
    }
    if obj.hasattr("isatty")? && obj.call_method0("isatty")?.is_truthy()? {
        return Err(error("Cannot pickle files that map to tty objects".into()));
    }
    let mode_text = mode.str()?.to_cow()?.into_owned();
    if !mode_text.contains('r') && !mode_text.contains('+') {
        return Err(error(format!(
            "Cannot pickle files that are not opened for reading: {mode_text}"
        )));
    }
    let read_all = || -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let position = obj.call_method0("tell")?;
        obj.call_method1("seek", (0,))?;
        let contents = obj.call_method0("read")?;
        obj.call_method1("seek", (&position,))?;
        Ok((position, contents))
    };
    let (position, contents) = match read_all() {
        Ok(v) => v,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOSError>(py) => {
            let err = error(format!(
                "Cannot pickle file {} as it cannot be read",
                name.str()?
            ));
            err.set_cause(py, Some(e));
            return Err(err);
        }
        Err(e) => return Err(e),
    };
    let copy = py
        .import("io")?
        .getattr(pyo3::intern!(py, "StringIO"))?
        .call0()?;
    copy.call_method1("write", (contents,))?;
    copy.call_method1("seek", (position,))?;
    copy.setattr("name", name)?;
    reduce_value(
        py,
        wire(py)?.get(py, op::FILE_RECONSTRUCTOR).clone(),
        vec![copy],
    )
}

/// `functools.lru_cache` wrappers: by name when importable (their own reduction), else
/// rebuilt around the pickled function with the same `maxsize`/`typed` (cloudpickle cannot).
#[pyfunction]
pub fn _lru_cache_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    if super::decision::lookup_module_and_qualname(obj)?.is_some() {
        return obj.call_method0("__reduce__");
    }
    let params = obj.call_method0("cache_parameters")?;
    Ok(reduce_value(
        py,
        wire(py)?.get(py, op::MAKE_LRU_CACHE).clone(),
        vec![
            obj.getattr(pyo3::intern!(py, "__wrapped__"))?,
            params.get_item("maxsize")?,
            params.get_item("typed")?,
        ],
    )?
    .into_any())
}

/// `functools.cached_property`: its function and attribute name (its lock, where it has one,
/// is not picklable and is recreated).
#[pyfunction]
pub fn _cached_property_reduce<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    reduce_value(
        py,
        wire(py)?.get(py, op::MAKE_CACHED_PROPERTY).clone(),
        vec![
            obj.getattr(pyo3::intern!(py, "func"))?,
            obj.getattr(pyo3::intern!(py, "attrname"))?,
            obj.getattr(pyo3::intern!(py, "__doc__"))?,
        ],
    )
}

/// Register the reducers in `registry` (`Pickler._dispatch_table`) under their exact types.
pub fn install(m: &Bound<'_, PyModule>, registry: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = m.py();
    let known = known::get(py)?;
    let types = py.import("types")?;
    let builtins = py.import("builtins")?;
    let logging = py.import("logging")?;
    let abc = py.import("abc")?;
    let typing = py.import("typing")?;
    let dataclasses = py.import("dataclasses")?;
    let functools = py.import("functools")?;
    let plain = PyDict::new(py);
    let dict_keys = plain.call_method0("keys")?.get_type().into_any();
    let dict_values = plain.call_method0("values")?.get_type().into_any();
    let dict_items = plain.call_method0("items")?.get_type().into_any();
    let ordered = py
        .import("collections")?
        .getattr(pyo3::intern!(py, "OrderedDict"))?
        .call0()?;
    let odict_keys = ordered.call_method0("keys")?.get_type().into_any();
    let odict_values = ordered.call_method0("values")?.get_type().into_any();
    let odict_items = ordered.call_method0("items")?.get_type().into_any();
    let entries: Vec<(Bound<'_, PyAny>, &str)> = vec![
        (known.cell_type.bind(py).clone().into_any(), "_cell_reduce"),
        (
            types.getattr(pyo3::intern!(py, "CodeType"))?,
            "_code_reduce",
        ),
        (
            types.getattr(pyo3::intern!(py, "ModuleType"))?,
            "_module_reduce",
        ),
        (
            types.getattr(pyo3::intern!(py, "MethodType"))?,
            "_method_reduce",
        ),
        (
            builtins.getattr(pyo3::intern!(py, "classmethod"))?,
            "_classmethod_reduce",
        ),
        (
            builtins.getattr(pyo3::intern!(py, "staticmethod"))?,
            "_classmethod_reduce",
        ),
        (
            builtins.getattr(pyo3::intern!(py, "property"))?,
            "_property_reduce",
        ),
        (
            abc.getattr(pyo3::intern!(py, "abstractclassmethod"))?,
            "_classmethod_reduce",
        ),
        (
            abc.getattr(pyo3::intern!(py, "abstractstaticmethod"))?,
            "_classmethod_reduce",
        ),
        (
            abc.getattr(pyo3::intern!(py, "abstractproperty"))?,
            "_property_reduce",
        ),
        (
            typing.getattr(pyo3::intern!(py, "TypeVar"))?,
            "_typevar_reduce",
        ),
        (
            py.import("io")?
                .getattr(pyo3::intern!(py, "TextIOWrapper"))?,
            "_file_reduce",
        ),
        (
            functools.getattr("_lru_cache_wrapper")?,
            "_lru_cache_reduce",
        ),
        (
            functools.getattr("cached_property")?,
            "_cached_property_reduce",
        ),
        (
            dataclasses.getattr(pyo3::intern!(py, "_FIELD_BASE"))?,
            "_dataclass_field_base_reduce",
        ),
        (dict_keys.clone(), "_dict_view_reduce"),
        (dict_values.clone(), "_dict_view_reduce"),
        (dict_items.clone(), "_dict_view_reduce"),
        (odict_keys.clone(), "_dict_view_reduce"),
        (odict_values.clone(), "_dict_view_reduce"),
        (odict_items.clone(), "_dict_view_reduce"),
        (
            types.getattr(pyo3::intern!(py, "MappingProxyType"))?,
            "_mappingproxy_reduce",
        ),
        (
            types.getattr(pyo3::intern!(py, "GetSetDescriptorType"))?,
            "_getset_descriptor_reduce",
        ),
        (
            builtins.getattr(pyo3::intern!(py, "memoryview"))?,
            "_memoryview_reduce",
        ),
        (
            py.import("weakref")?
                .getattr(pyo3::intern!(py, "WeakSet"))?,
            "_weakset_reduce",
        ),
        (
            logging.getattr(pyo3::intern!(py, "Logger"))?,
            "_logger_reduce",
        ),
        (
            logging.getattr(pyo3::intern!(py, "RootLogger"))?,
            "_root_logger_reduce",
        ),
    ];
    for (cls, name) in entries {
        registry.set_item(cls, m.getattr(name)?)?;
    }
    Ok(())
}
