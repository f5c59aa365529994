//! `inferix.LocalNetwork`: a whole network inside the Python process.

use std::path::PathBuf;
use std::sync::Mutex;

use inferix_local::{LocalNetwork, LocalTransport};
use pyo3::prelude::*;

use crate::client::{Conn, PyClient};
use crate::errors::{Error, Kind, Op};
use crate::runtime::{blocking, runtime};
use crate::spec::{arg, path_arg};

/// A manager, workers and verifiers running on background threads of this
/// process, rendering with the built-in GPU path tracer.
///
/// Defaults: 3 workers, 2 verifiers, quorum 1, workers announcing IB 1.0.
/// `transport="quic"` listens on 127.0.0.1 so `Client(net.url)` and other
/// processes can connect; `"inproc"` (default) is reachable only through
/// `client()`. Without `data_dir` a temporary folder is used and removed on
/// shutdown.
#[pyclass(module = "inferix", name = "LocalNetwork", frozen)]
pub(crate) struct PyLocalNetwork {
    net: Mutex<Option<LocalNetwork>>,
    address: String,
    data_dir: PathBuf,
    device: String,
}

impl PyLocalNetwork {
    fn closed() -> Error {
        Error::new(Kind::Connection, "the local network is shut down")
    }
}

#[pymethods]
impl PyLocalNetwork {
    #[new]
    #[pyo3(signature = (workers = None, verifiers = None, *, quorum = None, ib = None, data_dir = None, transport = None))]
    fn new(
        py: Python<'_>,
        workers: Option<&Bound<'_, PyAny>>,
        verifiers: Option<&Bound<'_, PyAny>>,
        quorum: Option<&Bound<'_, PyAny>>,
        ib: Option<&Bound<'_, PyAny>>,
        data_dir: Option<&Bound<'_, PyAny>>,
        transport: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let count = |name: &str, v: Option<&Bound<'_, PyAny>>, default: usize| match v {
            Some(v) => arg::<usize>(name, v, "a non-negative int"),
            None => Ok(default),
        };
        let (workers, verifiers, quorum) = (
            count("workers", workers, 3)?,
            count("verifiers", verifiers, 2)?,
            count("quorum", quorum, 1)?,
        );
        let ib = match ib {
            Some(v) => arg::<f64>("ib", v, "a positive number")?,
            None => 1.0,
        };
        let transport = match transport {
            Some(v) => arg::<String>("transport", v, "\"inproc\" or \"quic\"")?,
            None => "inproc".into(),
        };
        let transport = match transport.as_str() {
            "inproc" => LocalTransport::InProcess,
            "quic" => LocalTransport::Quic,
            other => {
                return Err(Error::invalid(format!(
                    "transport must be \"inproc\" or \"quic\", got {other:?}"
                ))
                .into())
            }
        };
        let mut builder = LocalNetwork::builder()
            .workers(workers)
            .verifiers(verifiers)
            .quorum(quorum)
            .ib(ib)
            .transport(transport);
        if let Some(d) = data_dir.filter(|d| !d.is_none()) {
            builder = builder.data_dir(path_arg("data_dir", d)?);
        }
        let net = blocking(
            py,
            || async move { builder.start().await.map_err(Error::local) },
        )?;
        Ok(Self {
            address: net.address().to_string(),
            data_dir: net.data_dir().to_path_buf(),
            device: net.device().to_string(),
            net: Mutex::new(Some(net)),
        })
    }

    /// The manager's address; with `transport="quic"` other processes and
    /// `inferix.Client(url)` can connect to it.
    #[getter]
    fn url(&self) -> String {
        self.address.clone()
    }

    /// Folder of the database, blobs and worker scratch space.
    #[getter]
    fn data_dir(&self) -> String {
        self.data_dir.display().to_string()
    }

    /// Render device of the workers.
    #[getter]
    fn device(&self) -> String {
        self.device.clone()
    }

    /// A client connected to this network.
    fn client(&self, py: Python<'_>) -> PyResult<PyClient> {
        let guard = self.net.lock().unwrap_or_else(|e| e.into_inner());
        let net = guard.as_ref().ok_or_else(Self::closed)?;
        let client = blocking(py, || async move {
            net.client()
                .await
                .map_err(|e| Error::client(e, Op::Connect))
        })?;
        Ok(PyClient::from_conn(Conn::new(client, None, &self.address)))
    }

    /// Stops every node and waits for them; idempotent.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let net = self.net.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(net) = net {
            blocking(py, || async move {
                net.shutdown().await;
                Ok(())
            })?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.shutdown(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("LocalNetwork(url={:?})", self.address)
    }
}

impl Drop for PyLocalNetwork {
    fn drop(&mut self) {
        let net = self.net.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(net), Ok(rt)) = (net, runtime()) {
            let _guard = rt.enter();
            drop(net);
        }
    }
}
