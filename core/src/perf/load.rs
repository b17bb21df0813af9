//! `lavit bench --load DIR`: the time and the peak memory of loading a checkpoint, beside the
//! bound loading should keep — the weights in their run dtype, plus the largest tensor once
//! more (the one being converted), plus 10 %.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

use crate::error::Result;
use crate::io::Checkpoint;

/// What loading a checkpoint cost.
#[derive(Debug, Clone)]
pub struct LoadCost {
    pub seconds: f64,
    /// Growth of the process's peak resident memory during the load (`None`: no `/proc`).
    pub peak_growth_bytes: Option<u64>,
    /// The loaded parameters' bytes in the dtype they run in.
    pub weights_bytes: u64,
    /// The largest parameter's bytes in that dtype.
    pub largest_bytes: u64,
}

impl LoadCost {
    /// `weights + largest + 10 %` of the weights.
    pub fn bound_bytes(&self) -> u64 {
        self.weights_bytes + self.largest_bytes + self.weights_bytes / 10
    }
}

/// Loads the checkpoint `dir` onto `device` and measures it.
pub fn time_load(dir: &Path, device: &Device) -> Result<LoadCost> {
    let ckpt = Checkpoint::open(dir)?;
    let t0 = std::time::Instant::now();
    let (model, growth) = super::run::with_memory(|ready| {
        ready();
        ckpt.load(device)
    })?;
    let seconds = t0.elapsed().as_secs_f64();
    let mut sizes = Sizes::default();
    model.visit(&mut sizes);
    Ok(LoadCost {
        seconds,
        peak_growth_bytes: growth,
        weights_bytes: sizes.total,
        largest_bytes: sizes.largest,
    })
}

#[derive(Default)]
struct Sizes {
    total: u64,
    largest: u64,
}

impl ModuleVisitor for Sizes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let bytes = (t.shape().num_elements() * t.dtype().size()) as u64;
        self.total += bytes;
        self.largest = self.largest.max(bytes);
    }
}
