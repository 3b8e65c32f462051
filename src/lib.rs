//! skypickle's compiled core. This file is wiring only: see ARCHITECTURE.md for the layers.

pub mod by_value;
pub mod class_tracker;
pub mod deterministic;
pub mod errors;
pub mod ffi;
pub mod fxhash;
pub mod known;
pub mod memo;
pub mod modules;
pub mod output;
pub mod pickler;
pub mod rebuild;
pub mod save;
pub mod wire;
pub mod writer;

use pyo3::prelude::*;

#[pymodule(gil_used = true)]
mod _skypickle {
    #[pymodule_export]
    use crate::pickler::{dump, dumps, explain, fingerprint, Pickler};

    // The by-value registry and the decision (cloudpickle's names).
    #[pymodule_export]
    use crate::by_value::decision::{
        list_registry_pickle_by_value, lookup_module_and_qualname_py, register_pickle_by_value,
        should_pickle_by_reference_py, unregister_pickle_by_value, whichmodule_py,
    };

    // What the memo keeps between dumps on this thread, for the tests.
    #[pymodule_export]
    use crate::memo::kept_memo_bytes;

    // The class tracker's (class, id) pairs, for skypickle._bridge.
    #[pymodule_export]
    use crate::class_tracker::tracked_classes_py;

    // cloudpickle's private helpers that tests and integrations call.
    #[pymodule_export]
    use crate::by_value::{class_parts::extract_class_dict_py, code::extract_code_globals_py};

    // Dispatch-table reducers.
    #[pymodule_export]
    use crate::by_value::reducers::{
        _cached_property_reduce, _cell_reduce, _classmethod_reduce, _code_reduce,
        _dataclass_field_base_reduce, _dict_view_reduce, _file_reduce, _getset_descriptor_reduce,
        _logger_reduce, _lru_cache_reduce, _mappingproxy_reduce, _memoryview_reduce,
        _method_reduce, _module_reduce, _property_reduce, _root_logger_reduce, _typevar_reduce,
        _weakset_reduce,
    };

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = m.py();
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("DEFAULT_PROTOCOL", crate::pickler::DEFAULT_PROTOCOL)?;
        m.add("HIGHEST_PROTOCOL", crate::writer::opcodes::HIGHEST_PROTOCOL)?;
        // The reconstructors (the wire names), `_reconstruct` and `_WIRE_NAMES`.
        crate::wire::init(m)?;
        // Everything looked up once, read from this module and the standard library.
        let known = crate::known::init(m)?;
        crate::pickler::init_class(py, &py.get_type::<Pickler>())?;
        crate::by_value::reducers::install(m, known.dispatch_registry.bind(py))?;
        m.add("_PICKLE_BY_VALUE_MODULES", known.by_value_registry.bind(py))?;
        m.add("_CLOUDPICKLE_COPIES", known.cloudpickle_copies.bind(py))?;
        Ok(())
    }
}
