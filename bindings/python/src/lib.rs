//! The `inferix._inferix` extension module: everything lives in the
//! `inferix-py` library so other extension modules can embed it too.

use pyo3::prelude::*;

/// Module initialiser called by Python on `import inferix._inferix`.
#[pymodule]
fn _inferix(m: &Bound<'_, PyModule>) -> PyResult<()> {
    inferix_py::register(m)
}
