//! skypickle's compiled core. This file is wiring only: see ARCHITECTURE.md for the layers.

pub mod by_value;
pub mod errors;
pub mod fxhash;
pub mod lookups;
pub mod memo;
pub mod output;
pub mod pickler;
pub mod rebuild;
pub mod save;
pub mod writer;

use pyo3::prelude::*;

#[pymodule(gil_used = true)]
mod _skypickle {
    #[pymodule_export]
    use crate::pickler::{dump, dumps, Pickler};

    // The by-value registry and the decision (cloudpickle's names).
    #[pymodule_export]
    use crate::by_value::lookup::{
        list_registry_pickle_by_value, lookup_module_and_qualname_py, register_pickle_by_value,
        should_pickle_by_reference_py, unregister_pickle_by_value, whichmodule_py,
    };

    // cloudpickle's private helpers that tests and integrations call.
    #[pymodule_export]
    use crate::by_value::{class::extract_class_dict_py, function::extract_code_globals_py};

    // Dispatch-table reducers.
    #[pymodule_export]
    use crate::by_value::reducers::{
        _cached_property_reduce, _cell_reduce, _classmethod_reduce, _code_reduce,
        _dataclass_field_base_reduce, _dict_view_reduce, _file_reduce, _getset_descriptor_reduce,
        _logger_reduce, _lru_cache_reduce, _mappingproxy_reduce, _memoryview_reduce,
        _method_reduce, _module_reduce, _property_reduce, _root_logger_reduce, _typevar_reduce,
        _weakset_reduce,
    };

    // Wire names: the reconstructors pickles refer to. Never rename these.
    #[pymodule_export]
    use crate::rebuild::{
        _builtin_type, _cell_set, _class_setstate, _dynamic_subimport, _file_reconstructor,
        _function_setstate, _get_dataclass_field_type_sentinel, _make_cached_property, _make_cell,
        _make_code, _make_dict_items, _make_dict_keys, _make_dict_values, _make_empty_cell,
        _make_function, _make_lru_cache, _make_singledispatch, _make_skeleton_class,
        _make_skeleton_enum, _make_typevar, _new_function, _restore_function, _subimport,
    };

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = m.py();
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("DEFAULT_PROTOCOL", crate::pickler::DEFAULT_PROTOCOL)?;
        m.add("HIGHEST_PROTOCOL", crate::writer::opcodes::HIGHEST_PROTOCOL)?;
        crate::pickler::init_class(py, &py.get_type::<Pickler>())?;
        let lk = crate::lookups::get(py)?;
        crate::by_value::reducers::install(m, lk.dispatch_registry.bind(py))?;
        // cloudpickle's names for two load helpers, so cloudpickle-era payloads that a shim
        // maps onto this module keep loading.
        m.add("subimport", m.getattr("_subimport")?)?;
        m.add("dynamic_subimport", m.getattr("_dynamic_subimport")?)?;
        crate::rebuild::add_reconstruct(m)?;
        // `_reconstruct`'s op table, for tools that read pickles without loading them.
        m.add(
            "_WIRE_NAMES",
            pyo3::types::PyTuple::new(py, crate::rebuild::WIRE_NAMES)?,
        )?;
        m.add(
            "_PICKLE_BY_VALUE_MODULES",
            crate::by_value::lookup::registry(py)?,
        )?;
        Ok(())
    }
}
