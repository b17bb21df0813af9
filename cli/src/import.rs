//! `lavit import-signals`: teacher signals in another project's format into our signal store
//! (resumable, like extraction).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use lavit_core::teacher::SignalWriter;
use lavit_core::teacher::import::{import_reference, read_reference_data};
use lavit_core::teacher::store::VtopDtype;

use crate::common::progress_bar;

#[derive(clap::Args)]
pub struct Args {
    /// The format of the data: `reference` (the LaViT reference implementation's training
    /// JSON with torch.save'd V_top tensors and trajectory JSON files).
    #[arg(long)]
    pub format: String,
    /// Its training JSON (`{"results": [...]}`).
    #[arg(long)]
    pub data: PathBuf,
    /// Root of `image_relative_path`.
    #[arg(long)]
    pub images: PathBuf,
    /// Root of feature paths that are not absolute [the data file's folder].
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Signal store to fill (samples already there are skipped).
    #[arg(long)]
    pub out: PathBuf,
    /// How V_top is stored: bf16, f32 or f16.
    #[arg(long, default_value = "bf16")]
    pub vtop_dtype: String,
    /// Samples per written shard file.
    #[arg(long, default_value_t = 64)]
    pub flush_every: usize,
}

pub fn run(a: Args) -> Result<()> {
    if a.format != "reference" {
        bail!(
            "--format `{}`: the supported format is `reference`",
            a.format
        );
    }
    let dtype = VtopDtype::parse(&a.vtop_dtype).map_err(anyhow::Error::msg)?;
    let root = a.root.clone().unwrap_or_else(|| {
        a.data
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let samples = read_reference_data(&a.data, &root).context("reading the training data")?;
    let mut writer = SignalWriter::open(&a.out, 0, 1, a.flush_every)
        .context("opening the signal store")?
        .with_vtop_dtype(dtype);
    let bar = progress_bar(samples.len() as u64, "import");
    let summary = import_reference(&samples, &a.images, &mut writer, &mut |d, _| {
        bar.set_position(d as u64)
    });
    bar.finish_and_clear();
    let summary = summary.context(
        "import stopped (the samples before the bad one are stored; a rerun skips them)",
    )?;
    println!(
        "imported {} samples into {} ({} already there)",
        summary.imported,
        a.out.display(),
        summary.skipped_done
    );
    Ok(())
}
