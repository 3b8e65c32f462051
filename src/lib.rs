//! skypickle's compiled core. This file is wiring only: see ARCHITECTURE.md for the layers.

pub mod errors;
pub mod lookups;
pub mod memo;
pub mod output;
pub mod pickler;
pub mod save;
pub mod writer;

use pyo3::prelude::*;

#[pymodule(gil_used = true)]
mod _skypickle {
    #[pymodule_export]
    use crate::pickler::{dump, dumps, Pickler};

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = m.py();
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("DEFAULT_PROTOCOL", crate::pickler::DEFAULT_PROTOCOL)?;
        m.add("HIGHEST_PROTOCOL", crate::writer::opcodes::HIGHEST_PROTOCOL)?;
        crate::pickler::init_class(py, &py.get_type::<Pickler>())?;
        Ok(())
    }
}
