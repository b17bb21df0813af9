//! lavit-backends: the one place that names burn backends.
//!
//! Each backend sits behind a cargo feature (`cpu` = burn's flex CPU backend, always on by
//! default; `wgpu` = WGSL kernels on Vulkan / Metal / DX12 / WebGPU; `vulkan` = native SPIR-V
//! kernels; `metal`; `webgpu`; `cuda`). At run time [`select`] turns a name and an index into a
//! burn [`Device`]; asking for a backend that was not compiled in, or for which no adapter
//! exists, is an error that lists what is available.

use std::fmt;
use std::str::FromStr;

pub use burn::tensor::Device;

/// A backend the CLI can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Cpu,
    Wgpu,
    Vulkan,
    Metal,
    Dx12,
    WebGpu,
    Cuda,
}

impl BackendKind {
    pub const ALL: [BackendKind; 7] = [
        BackendKind::Cpu,
        BackendKind::Wgpu,
        BackendKind::Vulkan,
        BackendKind::Metal,
        BackendKind::Dx12,
        BackendKind::WebGpu,
        BackendKind::Cuda,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Vulkan => "vulkan",
            BackendKind::Metal => "metal",
            BackendKind::Dx12 => "dx12",
            BackendKind::WebGpu => "webgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether burn 0.22 has a collective all-reduce between this backend's devices
    /// (`burn::tensor::distributed`: device-to-device transport, i.e. CUDA with NCCL). The
    /// CPU backend leaves it unimplemented, wgpu reports no device transport.
    pub fn has_collectives(self) -> bool {
        matches!(self, BackendKind::Cuda)
    }

    /// Whether this binary was compiled with the backend's feature.
    pub fn compiled(self) -> bool {
        match self {
            BackendKind::Cpu => cfg!(feature = "cpu"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Vulkan => cfg!(feature = "vulkan"),
            BackendKind::Metal => cfg!(feature = "metal"),
            BackendKind::Dx12 => cfg!(feature = "dx12"),
            BackendKind::WebGpu => cfg!(feature = "webgpu"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of backend selection.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unknown backend `{name}`; this build has: {}", compiled_list())]
    Unknown { name: String },
    #[error(
        "backend `{kind}` is not compiled in (rebuild with `cargo build --release -p lavit-cli --features {kind}`); this build has: {}",
        compiled_list()
    )]
    NotCompiled { kind: BackendKind },
    #[error("backend `{name}`: {message}")]
    Precision { name: String, message: String },
    #[error("backend `wgpu`: {0}")]
    WgpuInit(String),
    #[error("backend `{kind}` is compiled in, but no adapter #{index} was found: {found}")]
    NoAdapter {
        kind: BackendKind,
        index: usize,
        found: String,
    },
}

/// Comma-separated names of the compiled backends.
pub fn compiled_list() -> String {
    BackendKind::ALL
        .iter()
        .filter(|k| k.compiled())
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for BackendKind {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BackendKind::ALL
            .iter()
            .copied()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| BackendError::Unknown { name: s.into() })
    }
}

/// Floating-point precision of a device's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
    Bf16,
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "bf16" => Ok(Self::Bf16),
            o => Err(format!("unknown precision `{o}` (f32, f16, bf16)")),
        }
    }
}

/// Like [`select`], with the device's default float dtype set to `precision` (before any
/// tensor exists on it). Unsupported dtypes are an error naming the backend.
pub fn select_with_precision(
    name: &str,
    index: usize,
    precision: Precision,
) -> Result<Device, BackendError> {
    let mut device = select(name, index)?;
    let dtype = match precision {
        Precision::F32 => return Ok(device),
        Precision::F16 => burn::tensor::FloatDType::F16,
        Precision::Bf16 => burn::tensor::FloatDType::BF16,
    };
    if !device.supports_dtype(dtype) {
        return Err(BackendError::Precision {
            name: name.into(),
            message: format!("{dtype:?} is not supported by this device"),
        });
    }
    device
        .configure(dtype)
        .map_err(|e| BackendError::Precision {
            name: name.into(),
            message: format!("{e:?}"),
        })?;
    Ok(device)
}

/// The device for backend `name` and adapter `index` (no autodiff; call `.autodiff()` to train).
pub fn select(name: &str, index: usize) -> Result<Device, BackendError> {
    let kind: BackendKind = name.parse()?;
    if !kind.compiled() {
        return Err(BackendError::NotCompiled { kind });
    }
    device_of(kind, index)
}

#[allow(unused_variables, unreachable_code, unreachable_patterns)]
fn device_of(kind: BackendKind, index: usize) -> Result<Device, BackendError> {
    match kind {
        #[cfg(feature = "cpu")]
        BackendKind::Cpu => {
            if index != 0 {
                return Err(BackendError::NoAdapter {
                    kind,
                    index,
                    found: "the CPU backend has one device, #0".into(),
                });
            }
            Ok(Device::flex())
        }
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => wgpu_device(kind, index, None),
        #[cfg(feature = "vulkan")]
        BackendKind::Vulkan => wgpu_device(kind, index, Some("Vulkan")),
        #[cfg(feature = "metal")]
        BackendKind::Metal => wgpu_device(kind, index, Some("Metal")),
        #[cfg(feature = "webgpu")]
        BackendKind::WebGpu => wgpu_device(kind, index, Some("BrowserWebGpu")),
        #[cfg(feature = "dx12")]
        BackendKind::Dx12 => wgpu_device(kind, index, Some("Dx12")),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(Device::cuda(index)),
        _ => Err(BackendError::NotCompiled { kind }),
    }
}

/// What to install when wgpu sees no adapter at all.
#[cfg(feature = "wgpu")]
const NO_WGPU_ADAPTER: &str = if cfg!(target_os = "windows") {
    "wgpu sees no adapter (DX12 or Vulkan; WARP, the software rasterizer, ships with Windows)"
} else if cfg!(target_os = "macos") {
    "wgpu sees no Metal adapter"
} else {
    "wgpu sees no adapter (install a Vulkan driver, e.g. Mesa's lavapipe: mesa-vulkan-drivers)"
};

/// Opens adapter #0 of every backend named in `list` (comma-separated, as
/// `LAVIT_TEST_BACKENDS`), so that a test run or CI job that expects a backend fails, rather
/// than skips, when it is missing. Returns each backend's device label, or the first failure:
/// [`BackendError::NotCompiled`] ("not compiled in") and [`BackendError::NoAdapter`]
/// ("compiled in, but no adapter") say which of the two it is.
pub fn require_all(list: &str) -> Result<Vec<(String, String)>, BackendError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            let kind: BackendKind = name.parse()?;
            let device = select(name, 0)?;
            smoke_test(kind, &device)?;
            Ok((name.to_string(), device_label(&device)))
        })
        .collect()
}

/// Runs one small reduction on `device` and checks its result: an adapter that is listed but
/// cannot run burn's kernels fails here, not in the middle of a test.
fn smoke_test(kind: BackendKind, device: &Device) -> Result<(), BackendError> {
    use burn::tensor::{Tensor, TensorData};
    let run = std::panic::AssertUnwindSafe(|| {
        let t = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.5], [3]), device);
        t.sum().into_scalar::<f32>()
    });
    let failed = |what: String| BackendError::NoAdapter {
        kind,
        index: 0,
        found: format!("the adapter is listed but failed a smoke test: {what}"),
    };
    match std::panic::catch_unwind(run) {
        Ok(6.5) => Ok(()),
        Ok(sum) => Err(failed(format!("1 + 2 + 3.5 gave {sum}"))),
        Err(panic) => Err(failed(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "it panicked".into()),
        )),
    }
}

/// The `index`-th wgpu adapter (optionally only those of graphics API `api`), as a device of
/// backend `kind`.
#[cfg(feature = "wgpu")]
fn wgpu_device(kind: BackendKind, index: usize, api: Option<&str>) -> Result<Device, BackendError> {
    use burn::tensor::DeviceKind;
    let adapters: Vec<AdapterInfo> = list_wgpu_adapters()
        .into_iter()
        .filter(|a| api.is_none_or(|api| a.backend == api))
        .collect();
    if adapters.is_empty() {
        return Err(BackendError::NoAdapter {
            kind,
            index,
            found: NO_WGPU_ADAPTER.into(),
        });
    }
    let Some(adapter) = adapters.get(index) else {
        return Err(BackendError::NoAdapter {
            kind,
            index,
            found: format!("found {}: {}", adapters.len(), describe_adapters(&adapters)),
        });
    };
    // Count adapters of the same type before this one: burn indexes per device type.
    let same_type = adapters[..index]
        .iter()
        .filter(|a| a.device_type == adapter.device_type)
        .count();
    let dk = match adapter.device_type.as_str() {
        "DiscreteGpu" => DeviceKind::DiscreteGpu(same_type),
        "IntegratedGpu" => DeviceKind::IntegratedGpu(same_type),
        "VirtualGpu" => DeviceKind::VirtualGpu(same_type),
        "Cpu" => DeviceKind::Cpu,
        _ => DeviceKind::DefaultDevice,
    };
    Ok(match kind {
        #[cfg(feature = "vulkan")]
        BackendKind::Vulkan => Device::vulkan(dk),
        #[cfg(feature = "metal")]
        BackendKind::Metal => Device::metal(dk),
        #[cfg(feature = "webgpu")]
        BackendKind::WebGpu => Device::webgpu(dk),
        #[cfg(feature = "dx12")]
        BackendKind::Dx12 => Device::wgpu_options()
            .device_kind(dk)
            .graphics_api(burn::tensor::wgpu::WgpuBackend::Dx12)
            .init()
            .map_err(|e| BackendError::NoAdapter {
                kind,
                index,
                found: format!("DX12 initialisation failed: {e}"),
            })?,
        _ => Device::wgpu(dk),
    })
}

/// What a wgpu adapter reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

#[cfg(feature = "wgpu")]
fn describe_adapters(adapters: &[AdapterInfo]) -> String {
    adapters
        .iter()
        .enumerate()
        .map(|(i, a)| format!("#{i} {} ({}, {})", a.name, a.backend, a.device_type))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Adapters wgpu sees on this machine (all graphics APIs).
#[cfg(feature = "wgpu")]
pub fn list_wgpu_adapters() -> Vec<AdapterInfo> {
    use burn::tensor::wgpu::wgpu;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    adapters
        .into_iter()
        .map(|a| {
            let i = a.get_info();
            AdapterInfo {
                name: i.name,
                backend: format!("{:?}", i.backend),
                device_type: format!("{:?}", i.device_type),
                driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
            }
        })
        .collect()
}

#[cfg(not(feature = "wgpu"))]
pub fn list_wgpu_adapters() -> Vec<AdapterInfo> {
    Vec::new()
}

/// One line per compiled backend with the devices it can use (for `lavit devices`).
pub fn describe_all() -> Vec<(BackendKind, Vec<String>)> {
    let mut out = Vec::new();
    for kind in BackendKind::ALL.iter().copied().filter(|k| k.compiled()) {
        let devices = match kind {
            BackendKind::Cpu => vec!["#0 CPU (burn flex)".to_string()],
            BackendKind::Wgpu
            | BackendKind::Vulkan
            | BackendKind::Metal
            | BackendKind::Dx12
            | BackendKind::WebGpu => list_wgpu_adapters()
                .iter()
                .filter(|a| match kind {
                    BackendKind::Vulkan => a.backend == "Vulkan",
                    BackendKind::Metal => a.backend == "Metal",
                    BackendKind::Dx12 => a.backend == "Dx12",
                    BackendKind::WebGpu => a.backend == "BrowserWebGpu",
                    _ => true,
                })
                .enumerate()
                .map(|(i, a)| {
                    format!(
                        "#{i} {} ({}, {}, {})",
                        a.name, a.backend, a.device_type, a.driver
                    )
                })
                .collect(),
            BackendKind::Cuda => vec!["#0.. CUDA devices (opened on first use)".to_string()],
        };
        out.push((kind, devices));
    }
    out
}

/// The wgpu device initialised asynchronously — the only way in the browser, where wgpu means
/// WebGPU and adapter and device requests are promises. Call once, before any tensor touches
/// wgpu; fails (no panic) when `navigator.gpu` or an adapter is missing.
#[cfg(feature = "wgpu")]
pub async fn init_wgpu_async() -> Result<Device, BackendError> {
    Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| BackendError::WgpuInit(format!("{e}")))
}

/// Makes backend `name` the one burn's `Device::default()` picks in this process (burn's
/// `BURN_DEVICE`), unless the user set `BURN_DEVICE`: burn materialises some state on the
/// default device (an optimiser state loaded from a checkpoint), which would otherwise be the
/// first GPU backend compiled in — a CPU run would start a Vulkan instance for it. Unknown
/// names and backends burn cannot name are left alone.
///
/// # Safety
/// Sets an environment variable: call it before any other thread of the process starts.
#[cfg(not(target_arch = "wasm32"))]
pub unsafe fn set_default_backend(name: &str) {
    if std::env::var_os("BURN_DEVICE").is_some() {
        return;
    }
    let burn_name = match name.parse::<BackendKind>() {
        Ok(BackendKind::Cpu) => "flex",
        Ok(BackendKind::Wgpu) => "wgpu",
        Ok(BackendKind::Vulkan) => "vulkan",
        Ok(BackendKind::Metal) => "metal",
        Ok(BackendKind::WebGpu) => "webgpu",
        Ok(BackendKind::Cuda) => "cuda",
        _ => return,
    };
    if name.parse::<BackendKind>().is_ok_and(|k| k.compiled()) {
        // SAFETY: the caller guarantees no other thread runs yet.
        unsafe { std::env::set_var("BURN_DEVICE", burn_name) };
    }
}

/// Gives the process a private `XDG_RUNTIME_DIR` when it has none, before wgpu probes its
/// adapters: Mesa's Vulkan drivers look for a Wayland display and, without that variable,
/// print `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` although nothing
/// failed (headless machines, CI). Linux only; a directory the variable already names is kept.
///
/// # Safety
/// Sets an environment variable: call it before any other thread of the process starts.
#[cfg(not(target_arch = "wasm32"))]
pub unsafe fn quiet_display_probe() {
    if !cfg!(target_os = "linux") || std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let dir = std::env::temp_dir().join(format!("lavit-xdg-{user}"));
    #[cfg(unix)]
    let made = {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(&dir).is_ok() || dir.is_dir()
    };
    #[cfg(not(unix))]
    let made = false;
    if made {
        // SAFETY: the caller guarantees no other thread runs yet.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}

/// Keeps the CPU backend's large buffers in the process instead of handing them back to the
/// kernel after every op (glibc only; elsewhere a no-op). burn's CPU backend allocates a fresh
/// buffer per tensor op; glibc serves every buffer over 32 MiB (the 1.24 GB embedding
/// gradient and its AdamW moments at 3B widths) with a fresh `mmap` — from a per-thread arena
/// even where `mmap` is switched off — and the kernel zeroes each page at its first touch.
/// Measured at 3B widths (`docs/PERFORMANCE.md`), that page zeroing was a third of a training
/// step. Here: one arena (`M_ARENA_MAX` 1, so that the next rule holds on rayon's threads),
/// no `mmap` for blocks (`M_MMAP_MAX` 0) and no trimming (`M_TRIM_THRESHOLD` -1): freed
/// blocks stay mapped and the next op reuses their pages. The cost: the resident set stays at
/// its peak (+2.3 GiB peak at 3B widths, from fragmentation of the one heap).
///
/// Left alone where the user tuned glibc's allocator (any `MALLOC_*` variable, or
/// `glibc.malloc` in `GLIBC_TUNABLES`): `MALLOC_ARENA_MAX=0` restores glibc's defaults.
/// Returns whether it applied the settings.
///
/// # Safety
/// Call it before any other thread of the process starts (arenas are per thread).
#[cfg(not(target_arch = "wasm32"))]
pub unsafe fn keep_freed_memory() -> bool {
    if malloc_tuned_by_user(std::env::vars_os()) {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; the caller guarantees no other
        // thread allocates meanwhile. Each returns 1 on success.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1) == 1
                && libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, -1) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Whether the environment `vars` tunes glibc's allocator: a `MALLOC_*` variable, or
/// `glibc.malloc` in `GLIBC_TUNABLES` ([`keep_freed_memory`] then leaves it alone).
pub fn malloc_tuned_by_user(
    mut vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> bool {
    vars.any(|(k, v)| {
        k.to_str().is_some_and(|k| k.starts_with("MALLOC_"))
            || (k == "GLIBC_TUNABLES" && v.to_string_lossy().contains("glibc.malloc"))
    })
}

/// A short human name of `device` (for logs and reports).
pub fn device_label(device: &Device) -> String {
    let dbg = format!("{device:?}");
    if dbg.contains("Flex") {
        if cfg!(all(feature = "blas", not(target_arch = "wasm32"))) {
            "cpu (flex, matmul on OpenBLAS)".into()
        } else {
            "cpu (flex)".into()
        }
    } else if dbg.contains("Wgpu") {
        #[cfg(feature = "wgpu")]
        if let Some(id) = device.identity() {
            // Browsers may hide the adapter's name.
            if !id.name.is_empty() {
                return format!("wgpu ({})", id.name);
            }
            return "wgpu (adapter name not exposed)".into();
        }
        format!("wgpu ({dbg})")
    } else {
        dbg
    }
}

/// How many threads the CPU backend uses, and running work inside its pool.
#[cfg(not(target_arch = "wasm32"))]
pub mod threads {
    /// The environment variable that sets the CPU backend's thread count.
    pub const ENV: &str = "LAVIT_THREADS";

    /// Threads to use: `requested`, else `LAVIT_THREADS`, else every core. An unparsable or
    /// zero `LAVIT_THREADS` is an error naming it.
    pub fn resolve(requested: Option<usize>) -> Result<usize, String> {
        if let Some(n) = requested {
            return if n == 0 {
                Err("--threads must be at least 1".into())
            } else {
                Ok(n)
            };
        }
        match std::env::var(ENV) {
            Ok(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{ENV}={v:?} is not a positive thread count")),
            },
            Err(_) => Ok(std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)),
        }
    }

    /// Threads of the pool the caller runs in (every core outside one).
    pub fn current() -> usize {
        rayon::current_num_threads()
    }

    /// Runs `f` on a thread of a dedicated pool of `threads` threads, so that the CPU
    /// backend's parallel kernels (burn-flex's rayon regions) start from a pool thread and
    /// never pay rayon's cross-thread injection (a mutex/condvar round trip per region).
    /// Results do not depend on the thread count beyond float summation order.
    pub fn run_in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R, String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("lavit-cpu-{i}"))
            // Deep models recurse through burn's autodiff graph: the main thread's stack
            // size, not rayon's 2 MiB default.
            .stack_size(16 << 20)
            .build()
            .map_err(|e| format!("starting {threads} CPU threads: {e}"))?;
        Ok(pool.install(f))
    }
}

/// GPU work, counted on CubeCL's own launch path — the same natively and in the browser: kernel
/// launches (on wgpu each is one compute dispatch) and kernels launched for the first time in
/// this process (each is compiled once; wgpu's pipeline cache keeps it). For the browser
/// demo's and the benchmarks' per-token counts; the CPU backend launches no kernels.
#[cfg(feature = "wgpu")]
pub mod gpu_work {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::{Arc, Mutex};

    use burn::cubecl::launched::LaunchedKernels;
    use burn::cubecl::logging::{LaunchObservation, LaunchObserver};

    static LAUNCHES: AtomicU64 = AtomicU64::new(0);

    struct CountLaunches;

    impl LaunchObserver for CountLaunches {
        fn launched(&self, _kernel: &'static str) {
            LAUNCHES.fetch_add(1, Relaxed);
        }
    }

    /// Counts while it lives (one per process: CubeCL has one observer slot).
    pub struct Meter {
        _observation: LaunchObservation,
        seen: Mutex<HashSet<u128>>,
    }

    /// What a measured piece of work ([`Meter::start`] … [`Span::end`]) launched.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Work {
        /// Kernel launches (wgpu compute dispatches).
        pub dispatches: u64,
        /// Kernels launched for the first time in this process (pipeline compilations).
        pub compilations: u64,
    }

    impl Meter {
        pub fn new() -> Self {
            Self {
                _observation: LaunchObservation::new(Arc::new(CountLaunches)),
                seen: Mutex::new(HashSet::new()),
            }
        }

        /// Starts counting the kernel launches of one piece of work, without collecting their
        /// ids (which [`Meter::start`] does for the compilations, at a cost per launch).
        pub fn count(&self) -> Count {
            Count(LAUNCHES.load(Relaxed))
        }

        /// Starts measuring one piece of work; [`Span::end`] says what it launched.
        pub fn start(&self) -> Span<'_> {
            Span {
                meter: self,
                launches: LAUNCHES.load(Relaxed),
                kernels: LaunchedKernels::new(),
            }
        }
    }

    impl Default for Meter {
        fn default() -> Self {
            Self::new()
        }
    }

    /// A piece of work whose kernel launches are being counted.
    pub struct Count(u64);

    impl Count {
        /// The kernel launches since [`Meter::count`].
        pub fn end(self) -> u64 {
            LAUNCHES.load(Relaxed) - self.0
        }
    }

    /// A piece of work being measured.
    pub struct Span<'a> {
        meter: &'a Meter,
        launches: u64,
        kernels: LaunchedKernels,
    }

    impl Span<'_> {
        pub fn end(self) -> Work {
            let launched = self.kernels.finish();
            let mut seen = self.meter.seen.lock().unwrap_or_else(|p| p.into_inner());
            let compilations = launched.iter().filter(|&&k| seen.insert(k)).count() as u64;
            Work {
                dispatches: LAUNCHES.load(Relaxed) - self.launches,
                compilations,
            }
        }
    }
}
