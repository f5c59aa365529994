//! `inferix.Client` and `inferix.Job`; the value objects they return are in
//! `records.rs`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inferix_core::ids::JobId;
use inferix_core::job::JobSpec;
use inferix_core::protocol::JobEvent;
use inferix_node::Client;
use inferix_transport::{NodeIdentity, QuicConfig, QuicTransport, Transport};
use pyo3::prelude::*;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::errors::{Error, Kind, Op};
use crate::records::{is_final, PyEvent, PyJobStatus, PyQuote};
use crate::runtime::{blocking, interruptible, runtime};
use crate::spec::{job_file, path_arg, upload_job_file, JobArgs, JobRequest};

/// One connection to a manager, shared by a client and its jobs.
pub(crate) struct Conn {
    client: Mutex<Option<Arc<Client>>>,
    /// Keeps a QUIC endpoint alive as long as its connection.
    transport: Mutex<Option<Arc<dyn Transport>>>,
    address: String,
}

impl Conn {
    pub(crate) fn new(
        client: Client,
        transport: Option<Arc<dyn Transport>>,
        address: &str,
    ) -> Self {
        Self {
            client: Mutex::new(Some(Arc::new(client))),
            transport: Mutex::new(transport),
            address: address.to_string(),
        }
    }

    fn get(&self) -> Result<Arc<Client>, Error> {
        self.client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::new(Kind::Connection, "the client is closed"))
    }

    fn close(&self) {
        // Connections close from inside the runtime (QUIC needs it).
        let client = self.client.lock().unwrap_or_else(|e| e.into_inner()).take();
        let transport = self
            .transport
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match runtime() {
            Ok(rt) => {
                let _guard = rt.enter();
                drop(client);
                drop(transport);
            }
            Err(_) => {
                drop(client);
                drop(transport);
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close();
    }
}

/// A connection to a manager over QUIC.
#[pyclass(module = "inferix", name = "Client", frozen)]
pub(crate) struct PyClient {
    conn: Arc<Conn>,
}

impl PyClient {
    pub(crate) fn from_conn(conn: Conn) -> Self {
        Self {
            conn: Arc::new(conn),
        }
    }
}

fn timeout_arg(name: &str, t: Option<f64>) -> Result<Option<Duration>, Error> {
    match t {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(Error::invalid(format!(
            "{name} must be a non-negative number of seconds, got {s}"
        ))),
    }
}

#[pymethods]
impl PyClient {
    #[new]
    #[pyo3(signature = (url, token = None, *, timeout = 10.0))]
    fn new(
        py: Python<'_>,
        url: &Bound<'_, PyAny>,
        token: Option<&Bound<'_, PyAny>>,
        timeout: f64,
    ) -> PyResult<Self> {
        let url: String = url.extract().map_err(|_| {
            Error::invalid(format!(
                "url must be a str like \"<node-id>@host:port\", got {}",
                url.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let token: Option<String> = match token {
            None => None,
            Some(t) if t.is_none() => None,
            Some(t) => Some(
                t.extract()
                    .map_err(|_| Error::invalid("token must be a str or None"))?,
            ),
        };
        let limit = timeout_arg("timeout", Some(timeout))?.unwrap_or_default();
        let address = url
            .strip_prefix("inferix://")
            .unwrap_or(&url)
            .trim()
            .to_string();
        if !address.contains('@') {
            return Err(Error::invalid(format!(
                "manager address {url:?} must look like \"<node-id>@host:port\", as printed by `inferix manager`"
            ))
            .into());
        }
        let conn = blocking(py, || async move {
            let mut config = QuicConfig::default();
            config.handshake_timeout(limit.max(Duration::from_millis(100)));
            let transport: Arc<dyn Transport> = Arc::new(
                QuicTransport::new(NodeIdentity::generate(), config)
                    .map_err(|e| Error::new(Kind::Connection, format!("cannot open QUIC: {e}")))?,
            );
            let connect = Client::connect(&*transport, &address, token);
            let client = tokio::time::timeout(limit + Duration::from_secs(1), connect)
                .await
                .map_err(|_| {
                    Error::new(
                        Kind::Connection,
                        format!("no manager answered at {address} within {timeout} s"),
                    )
                })?
                .map_err(|e| Error::client(e, Op::Connect))?;
            Ok(Conn::new(client, Some(transport), &address))
        })?;
        Ok(Self::from_conn(conn))
    }

    /// The manager's address.
    #[getter]
    fn url(&self) -> String {
        self.conn.address.clone()
    }

    /// Closes the connection; later calls raise `ConnectionError`.
    fn close(&self) {
        self.conn.close();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("Client(url={:?})", self.conn.address)
    }

    /// Prices a job without submitting it.
    #[pyo3(signature = (scene, *, frames = None, resolution = None, samples = None, fmt = None, chunk = None, seed = None, min_ib = None, priority = None, tags = None, tiles = None, view = None, outputs = None))]
    #[allow(clippy::too_many_arguments)]
    fn quote(
        &self,
        py: Python<'_>,
        scene: &Bound<'_, PyAny>,
        frames: Option<&Bound<'_, PyAny>>,
        resolution: Option<&Bound<'_, PyAny>>,
        samples: Option<&Bound<'_, PyAny>>,
        fmt: Option<&Bound<'_, PyAny>>,
        chunk: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        min_ib: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        tiles: Option<&Bound<'_, PyAny>>,
        view: Option<&Bound<'_, PyAny>>,
        outputs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyQuote> {
        let req = JobRequest::parse(JobArgs {
            scene,
            frames,
            resolution,
            samples,
            fmt,
            chunk,
            seed,
            min_ib,
            priority,
            tags,
            tiles,
            view,
            outputs,
        })?;
        let client = self.conn.get()?;
        Ok(blocking(py, || async move {
            let spec = upload(&client, &req).await?;
            client
                .quote(&spec)
                .await
                .map(PyQuote::from)
                .map_err(|e| Error::client(e, Op::Quote))
        })?)
    }

    /// Submits a job; returns it at once (see `Job.wait`).
    #[pyo3(signature = (scene, *, frames = None, resolution = None, samples = None, fmt = None, chunk = None, seed = None, min_ib = None, priority = None, tags = None, tiles = None, view = None, outputs = None))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        scene: &Bound<'_, PyAny>,
        frames: Option<&Bound<'_, PyAny>>,
        resolution: Option<&Bound<'_, PyAny>>,
        samples: Option<&Bound<'_, PyAny>>,
        fmt: Option<&Bound<'_, PyAny>>,
        chunk: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        min_ib: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        tiles: Option<&Bound<'_, PyAny>>,
        view: Option<&Bound<'_, PyAny>>,
        outputs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyJob> {
        let req = JobRequest::parse(JobArgs {
            scene,
            frames,
            resolution,
            samples,
            fmt,
            chunk,
            seed,
            min_ib,
            priority,
            tags,
            tiles,
            view,
            outputs,
        })?;
        let client = self.conn.get()?;
        let (id, quote) = blocking(py, || async move {
            let spec = upload(&client, &req).await?;
            client
                .submit(&spec)
                .await
                .map_err(|e| Error::client(e, Op::Submit))
        })?;
        Ok(PyJob {
            conn: self.conn.clone(),
            id,
            quote: Some(quote.into()),
        })
    }

    /// Prices the job a job file (.toml or .json) describes.
    fn quote_file(&self, py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<PyQuote> {
        let file = job_file(path)?;
        let client = self.conn.get()?;
        Ok(blocking(py, || async move {
            let spec = upload_job_file(&client, &file).await?;
            client
                .quote(&spec)
                .await
                .map(PyQuote::from)
                .map_err(|e| Error::client(e, Op::Quote))
        })?)
    }

    /// Submits the job a job file (.toml or .json) describes; its scene
    /// path is taken from the file's folder.
    fn submit_file(&self, py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<PyJob> {
        let file = job_file(path)?;
        let client = self.conn.get()?;
        let (id, quote) = blocking(py, || async move {
            let spec = upload_job_file(&client, &file).await?;
            client
                .submit(&spec)
                .await
                .map_err(|e| Error::client(e, Op::Submit))
        })?;
        Ok(PyJob {
            conn: self.conn.clone(),
            id,
            quote: Some(quote.into()),
        })
    }

    /// A job submitted earlier (by this or another client), by id.
    fn job(&self, py: Python<'_>, job_id: &Bound<'_, PyAny>) -> PyResult<PyJob> {
        let text: String = job_id
            .extract()
            .map_err(|_| Error::invalid("job_id must be a str"))?;
        let id: JobId = text
            .trim()
            .parse()
            .map_err(|e| Error::invalid(format!("job_id {text:?}: {e}")))?;
        let client = self.conn.get()?;
        blocking(py, || async move {
            client
                .status(id)
                .await
                .map_err(|e| Error::client(e, Op::Status))
        })?;
        Ok(PyJob {
            conn: self.conn.clone(),
            id,
            quote: None,
        })
    }
}

async fn upload(client: &Client, req: &JobRequest) -> Result<JobSpec, Error> {
    let scene = client
        .upload_scene(&req.scene)
        .await
        .map_err(|e| Error::client(e, Op::Upload))?;
    Ok(req.spec(scene))
}

/// A submitted job.
#[pyclass(module = "inferix", name = "Job", frozen)]
pub(crate) struct PyJob {
    conn: Arc<Conn>,
    id: JobId,
    quote: Option<PyQuote>,
}

#[pymethods]
impl PyJob {
    /// The job id (32 hex digits).
    #[getter]
    fn id(&self) -> String {
        self.id.to_string()
    }

    /// The price agreed at submission (None for a job looked up by id).
    #[getter]
    fn quote(&self) -> Option<PyQuote> {
        self.quote.clone()
    }

    fn __repr__(&self) -> String {
        format!("Job(id={:?})", self.id.to_string())
    }

    /// The job's current status.
    fn status(&self, py: Python<'_>) -> PyResult<PyJobStatus> {
        let (client, id) = (self.conn.get()?, self.id);
        Ok(blocking(py, || async move {
            client
                .status(id)
                .await
                .map(PyJobStatus::from)
                .map_err(|e| Error::client(e, Op::Status))
        })?)
    }

    /// Blocks until the job completes, fails or is cancelled and returns
    /// its final status; raises `Timeout` after `timeout` seconds.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyJobStatus> {
        let limit = timeout_arg("timeout", timeout)?;
        let (client, id) = (self.conn.get()?, self.id);
        let follow = async move {
            let mut events = client
                .watch(id)
                .await
                .map_err(|e| Error::client(e, Op::Status))?;
            loop {
                match events.recv().await {
                    Some(ev) if is_final(&ev) => break,
                    Some(_) => {}
                    None => return Err(lost(id)),
                }
            }
            client
                .status(id)
                .await
                .map(PyJobStatus::from)
                .map_err(|e| Error::client(e, Op::Status))
        };
        interruptible(py, follow, limit, || {
            format!(
                "job {id} did not finish within {} s",
                timeout.unwrap_or_default()
            )
        })
    }

    /// Iterates over the job's events from now on, ending after the final
    /// one; `timeout` bounds the wait for each event.
    #[pyo3(signature = (timeout = None))]
    fn events(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyEvents> {
        let limit = timeout_arg("timeout", timeout)?;
        let (client, id) = (self.conn.get()?, self.id);
        let rx = blocking(py, || async move {
            client
                .watch(id)
                .await
                .map_err(|e| Error::client(e, Op::Status))
        })?;
        Ok(PyEvents {
            _conn: self.conn.clone(),
            job: id,
            limit,
            rx: Arc::new(tokio::sync::Mutex::new(Some(rx))),
        })
    }

    /// Downloads every accepted frame into `directory` as
    /// `frame_NNNN.<ext>`; returns their paths in frame order.
    fn download(&self, py: Python<'_>, directory: &Bound<'_, PyAny>) -> PyResult<Vec<Py<PyAny>>> {
        let dir = path_arg("directory", directory)?;
        let (client, id) = (self.conn.get()?, self.id);
        let files: Vec<PathBuf> = blocking(py, || async move {
            client
                .download(id, &dir)
                .await
                .map_err(|e| Error::client(e, Op::Download))
        })?;
        let path_cls = py.import("pathlib")?.getattr("Path")?;
        files
            .into_iter()
            .map(|p| Ok(path_cls.call1((p,))?.unbind()))
            .collect()
    }

    /// Waits until the outputs the job asked for are made (or failed),
    /// then downloads the one named `name` (e.g. `"mp4"`, `"zip"`) into
    /// `directory`; returns its path. An output that failed raises with
    /// its reason.
    fn download_output(
        &self,
        py: Python<'_>,
        name: &str,
        directory: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let dir = path_arg("directory", directory)?;
        let (client, id, name) = (self.conn.get()?, self.id, name.to_string());
        let file: PathBuf = blocking(py, || async move {
            client
                .wait_outputs(id)
                .await
                .map_err(|e| Error::client(e, Op::Status))?;
            client
                .download_output(id, &name, &dir)
                .await
                .map_err(|e| Error::client(e, Op::Download))
        })?;
        Ok(py
            .import("pathlib")?
            .getattr("Path")?
            .call1((file,))?
            .unbind())
    }

    /// Cancels the job.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        let (client, id) = (self.conn.get()?, self.id);
        Ok(blocking(py, || async move {
            client
                .cancel(id)
                .await
                .map_err(|e| Error::client(e, Op::Cancel))
        })?)
    }

    /// Stops leasing the job's tasks (running ones finish).
    fn pause(&self, py: Python<'_>) -> PyResult<()> {
        let (client, id) = (self.conn.get()?, self.id);
        Ok(blocking(py, || async move {
            client
                .pause(id)
                .await
                .map_err(|e| Error::client(e, Op::Pause))
        })?)
    }

    /// Leases a paused job's tasks again.
    fn resume(&self, py: Python<'_>) -> PyResult<()> {
        let (client, id) = (self.conn.get()?, self.id);
        Ok(blocking(py, || async move {
            client
                .resume(id)
                .await
                .map_err(|e| Error::client(e, Op::Pause))
        })?)
    }

    /// Claims that accepted `frames` are bad; returns the claim number.
    /// Another node re-renders them; the outcome arrives as a
    /// `claim_settled` event.
    #[pyo3(signature = (frames, reason = "bad frames"))]
    fn claim(&self, py: Python<'_>, frames: Vec<u32>, reason: &str) -> PyResult<u64> {
        let (client, id, reason) = (self.conn.get()?, self.id, reason.to_string());
        Ok(blocking(py, || async move {
            client
                .claim(id, frames, &reason)
                .await
                .map_err(|e| Error::client(e, Op::Claim))
        })?)
    }
}

fn lost(id: JobId) -> Error {
    Error::new(
        Kind::Connection,
        format!("connection to the manager lost while following job {id}"),
    )
}

/// Events of one job, as an iterator.
#[pyclass(module = "inferix", name = "JobEvents", frozen)]
pub(crate) struct PyEvents {
    /// Keeps the connection open while events are read.
    _conn: Arc<Conn>,
    job: JobId,
    limit: Option<Duration>,
    rx: Arc<tokio::sync::Mutex<Option<UnboundedReceiver<JobEvent>>>>,
}

#[pymethods]
impl PyEvents {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyEvent>> {
        let (rx, id, limit) = (self.rx.clone(), self.job, self.limit);
        let next = async move {
            let mut guard = rx.lock().await;
            let Some(events) = guard.as_mut() else {
                return Ok(None);
            };
            match events.recv().await {
                Some(ev) => {
                    if is_final(&ev) {
                        *guard = None;
                    }
                    Ok(Some(PyEvent::from(&ev)))
                }
                None => {
                    *guard = None;
                    Err(lost(id))
                }
            }
        };
        interruptible(py, next, limit, || {
            format!(
                "no event of job {id} within {} s",
                limit.unwrap_or_default().as_secs_f64()
            )
        })
    }
}

/// Registers the classes of this module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyClient>()?;
    m.add_class::<PyJob>()?;
    m.add_class::<PyEvents>()?;
    m.add_class::<PyQuote>()?;
    m.add_class::<PyJobStatus>()?;
    m.add_class::<PyEvent>()?;
    Ok(())
}
