//! The `lavit` command line of lavit-rs, as a library (the binary is `main.rs`; the tests call
//! the option conversions directly). Thin: each command parses its flags, picks a backend and
//! calls into lavit-core.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The commit this binary was built from (`git describe --always --dirty`; `build.rs`).
pub const BUILD_COMMIT: &str = env!("LAVIT_BUILD_COMMIT");

pub mod bench;
pub mod common;
pub mod demo;
pub mod devices;
pub mod eval;
pub mod export;
pub mod extract;
pub mod forward;
pub mod import;
pub mod infer;
pub mod init;
pub mod params;
pub mod synth;
pub mod train;

/// The command line.
#[derive(Parser)]
#[command(
    name = "lavit",
    version,
    about = "LaViT: latent visual thought alignment on burn"
)]
pub struct Cli {
    /// Threads of the CPU backend [default: LAVIT_THREADS, else every core].
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// The whole LaViT pipeline on the embedded synthetic task (no download).
    Demo(demo::Args),
    /// One forward pass of a Qwen2.5-VL checkpoint on one image + prompt; writes the inputs,
    /// logits and last hidden state as safetensors (the parity check against HF).
    Forward(forward::Args),
    /// Teacher signals (V_top + attention trajectories) for a Visual-CoT dataset.
    Extract(extract::Args),
    /// Teacher signals in the LaViT reference implementation's format, into a signal store.
    ImportSignals(import::Args),
    /// Train a student (LaViT from a signal store, or CE only from a dataset).
    Train(train::Args),
    /// Write a model again, in our layout or the LaViT reference implementation's.
    Export(export::Args),
    /// Generate the synthetic grounded-reasoning dataset.
    Synth(synth::Args),
    /// Train the synthetic task's tokenizer.
    TaskTokenizer(synth::TokArgs),
    /// A random-weight checkpoint from a config.json.
    Init(init::Args),
    /// Answer a benchmark and report accuracy.
    Eval(eval::Args),
    /// Parameter counts of a config and the memory a training run needs.
    Params(params::Args),
    /// Answer one question about one image; heatmaps of the latent steps.
    Infer(infer::Args),
    /// Render a stored teacher trajectory over its image.
    Viz(infer::VizArgs),
    /// List the compiled backends and the adapters each one sees.
    Devices(devices::Args),
    /// Throughput and memory of a training step, teacher extraction and generation.
    Bench(bench::Args),
}

/// Parses the command line, runs the command inside the CPU thread pool, and reports an error
/// as one `error:` line with a non-zero exit.
pub fn main() -> ExitCode {
    common::init_tracing();
    if let Err(e) = lavit_core::error::failpoints_from_env() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let backend = cli.command.backend().map_or("cpu", |b| b.backend.as_str());
    let probes_gpus = backend != "cpu" || matches!(cli.command, Command::Devices(_));
    // SAFETY: no other thread has started yet (the pool starts below).
    unsafe {
        let kept = lavit_backends::keep_freed_memory();
        tracing::debug!("glibc allocator: keep freed memory = {kept}");
        lavit_backends::set_default_backend(backend);
        if probes_gpus {
            lavit_backends::quiet_display_probe();
        }
    }
    let result = lavit_backends::threads::resolve(cli.threads)
        .map_err(anyhow::Error::msg)
        .and_then(|n| {
            lavit_backends::threads::run_in_pool(n, move || dispatch(cli.command))
                .map_err(anyhow::Error::msg)?
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", common::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

impl Command {
    /// The command's backend flags, if it computes.
    pub fn backend(&self) -> Option<&common::BackendArgs> {
        match self {
            Command::Forward(a) => Some(&a.backend),
            Command::Demo(a) => Some(&a.backend),
            Command::Extract(a) => Some(&a.backend),
            Command::Train(a) => Some(&a.backend),
            Command::Export(a) => Some(&a.backend),
            Command::Init(a) => Some(&a.backend),
            Command::Eval(a) => Some(&a.backend),
            Command::Infer(a) => Some(&a.backend),
            Command::Bench(a) => Some(&a.backend),
            _ => None,
        }
    }
}

pub fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Forward(args) => forward::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Devices(args) => devices::run(args),
        Command::Extract(args) => extract::run(args),
        Command::ImportSignals(args) => import::run(args),
        Command::Train(args) => train::run(args),
        Command::Export(args) => export::run(args),
        Command::Synth(args) => synth::run(args),
        Command::TaskTokenizer(args) => synth::run_tokenizer(args),
        Command::Init(args) => init::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Viz(args) => infer::run_viz(args),
        Command::Params(args) => params::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
