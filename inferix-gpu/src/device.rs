//! Choosing a cubecl runtime and device, without crashing when none exists.

use cubecl::prelude::*;
use cubecl::server::Handle;
use inferix_core::renderer::RenderError;

/// A compute client on one of the enabled runtimes.
#[derive(Clone)]
pub(crate) enum Backend {
    /// wgpu (Vulkan, Metal, DX12; lavapipe on machines without a GPU).
    #[cfg(feature = "wgpu")]
    Wgpu(ComputeClient<cubecl::wgpu::WgpuRuntime>),
    /// NVIDIA CUDA.
    #[cfg(feature = "cuda")]
    Cuda(ComputeClient<cubecl::cuda::CudaRuntime>),
    /// AMD ROCm/HIP.
    #[cfg(feature = "hip")]
    Hip(ComputeClient<cubecl::hip::HipRuntime>),
}

/// Runs `$body` with `$client` bound to the concrete client of `$backend`.
macro_rules! with_client {
    ($backend:expr, $client:ident => $body:expr) => {
        match $backend {
            #[cfg(feature = "wgpu")]
            $crate::device::Backend::Wgpu($client) => $body,
            #[cfg(feature = "cuda")]
            $crate::device::Backend::Cuda($client) => $body,
            #[cfg(feature = "hip")]
            $crate::device::Backend::Hip($client) => $body,
            #[cfg(not(any(feature = "wgpu", feature = "cuda", feature = "hip")))]
            b => match *b {},
        }
    };
}
pub(crate) use with_client;

/// An opened device and a human-readable class name.
#[derive(Clone)]
pub(crate) struct Device {
    pub(crate) backend: Backend,
    pub(crate) class: String,
    /// The device is the CPU (a software Vulkan driver such as lavapipe):
    /// callers pick smaller default workloads for it.
    pub(crate) software: bool,
}

/// Which runtime to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// The wgpu runtime (Vulkan/Metal/DX12).
    Wgpu,
    /// The CUDA runtime.
    Cuda,
    /// The HIP runtime.
    Hip,
}

/// A device buffer handle as a kernel array argument of `len` elements.
#[allow(unsafe_code)]
pub(crate) fn array_arg<R: Runtime>(handle: &Handle, len: usize) -> ArrayArg<R> {
    // SAFETY: every handle passed here was created by this crate from a slice
    // of exactly `len` elements of the kernel parameter's element type (see
    // `upload_f32`/`upload_u32`), so the length matches the allocation; the
    // kernels are launched with bounds checking on.
    unsafe { ArrayArg::from_raw_parts(handle.clone(), len) }
}

/// Whether a shared library can be found by the dynamic loader.
fn library_present(names: &[&str]) -> bool {
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
        "/usr/lib/wsl/lib",
        "/opt/rocm/lib",
        "/usr/local/cuda/lib64",
    ];
    let mut extra: Vec<String> = Vec::new();
    if let Ok(p) = std::env::var("LD_LIBRARY_PATH") {
        extra.extend(p.split(':').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    let found_in_dirs = names.iter().any(|n| {
        dirs.iter()
            .map(|d| d.to_string())
            .chain(extra.iter().cloned())
            .any(|d| std::path::Path::new(&d).join(n).exists())
    });
    if found_in_dirs {
        return true;
    }
    std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout);
            names.iter().any(|n| s.contains(n))
        })
        .unwrap_or(false)
}

/// A CUDA driver is installed and a device node exists.
pub(crate) fn cuda_available() -> bool {
    let dev = std::path::Path::new("/dev/nvidiactl").exists() || cfg!(windows);
    dev && library_present(&["libcuda.so.1", "libcuda.so", "nvcuda.dll"])
}

/// A ROCm/HIP runtime is installed and the AMD kernel driver is present.
pub(crate) fn hip_available() -> bool {
    std::path::Path::new("/dev/kfd").exists()
        && library_present(&["libamdhip64.so", "libamdhip64.so.6"])
}

const INSTALL_HINT: &str = "no GPU or Vulkan device found; install a GPU driver, or Mesa's \
     software Vulkan driver lavapipe (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`, \
     or run scripts/setup-gpu.sh)";

/// Opens the best available device: CUDA, then HIP, then wgpu.
pub(crate) fn open_best() -> Result<Device, RenderError> {
    let mut errors: Vec<String> = Vec::new();
    #[cfg(feature = "cuda")]
    match open(RuntimeKind::Cuda) {
        Ok(d) => return Ok(d),
        Err(e) => errors.push(e.to_string()),
    }
    #[cfg(feature = "hip")]
    match open(RuntimeKind::Hip) {
        Ok(d) => return Ok(d),
        Err(e) => errors.push(e.to_string()),
    }
    #[cfg(feature = "wgpu")]
    match open(RuntimeKind::Wgpu) {
        Ok(d) => return Ok(d),
        Err(e) => errors.push(e.to_string()),
    }
    if errors.is_empty() {
        errors.push("inferix-gpu was built without any runtime feature (wgpu, cuda, hip)".into());
    }
    Err(RenderError::NoDevice(format!(
        "{INSTALL_HINT}; tried: {}",
        errors.join("; ")
    )))
}

/// Opens a specific runtime.
pub(crate) fn open(kind: RuntimeKind) -> Result<Device, RenderError> {
    match kind {
        RuntimeKind::Wgpu => open_wgpu(),
        RuntimeKind::Cuda => open_cuda(),
        RuntimeKind::Hip => open_hip(),
    }
}

#[cfg(feature = "wgpu")]
fn open_wgpu() -> Result<Device, RenderError> {
    use cubecl::wgpu::{AutoGraphicsApi, GraphicsApi, WgpuDevice};
    let backend = AutoGraphicsApi::backend();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backend.into(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = cubecl::future::block_on(instance.enumerate_adapters(backend.into()));
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(|a| a.get_info()).collect();
    let pick = |ty: wgpu::DeviceType| infos.iter().find(|i| i.device_type == ty);
    let (device, info) = if let Some(i) = pick(wgpu::DeviceType::DiscreteGpu) {
        (WgpuDevice::DiscreteGpu(0), i)
    } else if let Some(i) = pick(wgpu::DeviceType::IntegratedGpu) {
        (WgpuDevice::IntegratedGpu(0), i)
    } else if let Some(i) = pick(wgpu::DeviceType::VirtualGpu) {
        (WgpuDevice::VirtualGpu(0), i)
    } else if let Some(i) = pick(wgpu::DeviceType::Cpu) {
        (WgpuDevice::Cpu, i)
    } else if let Some(i) = pick(wgpu::DeviceType::Other) {
        // cubecl falls back to "other" adapters when no CPU adapter exists.
        (WgpuDevice::Cpu, i)
    } else {
        return Err(RenderError::NoDevice(format!(
            "{INSTALL_HINT} (wgpu found no {backend:?} adapter)"
        )));
    };
    let class = format!("wgpu:{}:{}", info.name, info.driver_info);
    let software = matches!(device, WgpuDevice::Cpu);
    tracing::info!(adapter = %info.name, driver = %info.driver_info, "opening wgpu device");
    let client = cubecl::wgpu::WgpuRuntime::client(&device);
    Ok(Device {
        backend: Backend::Wgpu(client),
        class,
        software,
    })
}

#[cfg(not(feature = "wgpu"))]
fn open_wgpu() -> Result<Device, RenderError> {
    Err(RenderError::NoDevice(
        "inferix-gpu was built without the `wgpu` feature".into(),
    ))
}

#[cfg(feature = "cuda")]
fn open_cuda() -> Result<Device, RenderError> {
    if !cuda_available() {
        return Err(RenderError::NoDevice(
            "no CUDA driver (libcuda) or NVIDIA device found".into(),
        ));
    }
    let device = cubecl::cuda::CudaDevice { index: 0 };
    let client = std::panic::catch_unwind(|| cubecl::cuda::CudaRuntime::client(&device))
        .map_err(|_| RenderError::NoDevice("CUDA driver present but no usable device".into()))?;
    Ok(Device {
        backend: Backend::Cuda(client),
        class: "cuda:0".into(),
        software: false,
    })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda() -> Result<Device, RenderError> {
    let _ = cuda_available;
    Err(RenderError::NoDevice(
        "inferix-gpu was built without the `cuda` feature".into(),
    ))
}

#[cfg(feature = "hip")]
fn open_hip() -> Result<Device, RenderError> {
    // The HIP runtime aborts the process when no driver exists: probe first.
    if !hip_available() {
        return Err(RenderError::NoDevice(
            "no ROCm/HIP driver (libamdhip64, /dev/kfd) found".into(),
        ));
    }
    let device = cubecl::hip::AmdDevice { index: 0 };
    let client = std::panic::catch_unwind(|| cubecl::hip::HipRuntime::client(&device))
        .map_err(|_| RenderError::NoDevice("HIP driver present but no usable device".into()))?;
    Ok(Device {
        backend: Backend::Hip(client),
        class: "hip:0".into(),
        software: false,
    })
}

#[cfg(not(feature = "hip"))]
fn open_hip() -> Result<Device, RenderError> {
    let _ = hip_available;
    Err(RenderError::NoDevice(
        "inferix-gpu was built without the `hip` feature".into(),
    ))
}

/// Uploads a slice of f32.
pub(crate) fn upload_f32<R: Runtime>(client: &ComputeClient<R>, data: &[f32]) -> Handle {
    client.create_from_slice(f32::as_bytes(data))
}

/// Uploads a slice of u32.
pub(crate) fn upload_u32<R: Runtime>(client: &ComputeClient<R>, data: &[u32]) -> Handle {
    client.create_from_slice(u32::as_bytes(data))
}

/// Reads a buffer back as f32.
pub(crate) fn read_f32<R: Runtime>(client: &ComputeClient<R>, h: Handle) -> Vec<f32> {
    let bytes = client.read_one_unchecked(h);
    f32::from_bytes(&bytes).to_vec()
}

/// Reads a buffer back as u32.
pub(crate) fn read_u32<R: Runtime>(client: &ComputeClient<R>, h: Handle) -> Vec<u32> {
    let bytes = client.read_one_unchecked(h);
    u32::from_bytes(&bytes).to_vec()
}
