//! Python bindings of Inferix: a [`Client`](inferix_node::Client) for any
//! manager and an embedded [`LocalNetwork`](inferix_local::LocalNetwork),
//! exposed as the `inferix` package.
//!
//! The extension module (`bindings/python/src/lib.rs`) only calls
//! [`register`]; keeping the code in this library lets it be type-checked
//! and linted with the rest of the workspace. Every blocking call releases
//! the GIL and turns Rust panics into `inferix.InternalError`.

mod client;
mod errors;
mod local;
mod records;
mod runtime;
mod spec;

use pyo3::prelude::*;

use crate::errors::{Error, Kind};
use crate::runtime::blocking;

/// Adds every class and function to the extension module `m`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    client::register(m)?;
    m.add_class::<local::PyLocalNetwork>()?;
    m.add_function(wrap_pyfunction!(demo_scene, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    m.add("DEMO_SCENE_FRAMES", inferix_gpu::DEMO_SCENE_FRAMES)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// Writes the built-in animated demo scene (.glb) to `path`; returns the
/// path as a `pathlib.Path`.
#[pyfunction]
fn demo_scene(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let p = spec::path_arg("path", path)?;
    std::fs::write(&p, inferix_gpu::demo_scene_glb()).map_err(|e| {
        Error::new(
            Kind::InvalidInput,
            format!("cannot write {}: {e}", p.display()),
        )
    })?;
    Ok(py.import("pathlib")?.getattr("Path")?.call1((p,))?.unbind())
}

/// Panics inside the runtime, as a bug would: proves the boundary turns a
/// panic into `InternalError` instead of aborting the interpreter.
#[pyfunction]
fn _panic_for_test(py: Python<'_>) -> PyResult<()> {
    Ok(blocking(py, || async {
        if std::hint::black_box(true) {
            panic!("deliberate panic to test the boundary");
        }
        Ok(())
    })?)
}
