// Expose PyO3's `Py_3_X` cfgs to this crate, for the few places where CPython's C API
// differs between the supported versions.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
