//! Data-parallel training over several devices: each step's `grad_accum` micro-batches are
//! dealt round-robin to one replica per device, each replica (in its own thread) sums its
//! gradients, and the sums are all-reduced before one optimiser step on the student's device.
//!
//! Two all-reduces: ours through the host ([`AllReduce::Host`]: every backend, and the only one
//! for the CPU and wgpu backends), and burn's collective one ([`AllReduce::Collective`]:
//! `burn::tensor::distributed`, the backends with device-to-device transport — CUDA with NCCL),
//! in which the trainable parameters of every replica are marked distributed and burn sums their
//! gradients across the devices inside each backward pass.

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation};

use super::TrainConfig;
use super::trainer::{MicroBatches, micro_batches};
use crate::error::{LavitError, Result};
use crate::lavit::student::{LavitStudent, StudentSample};

/// How the replicas' gradient sums are added up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllReduce {
    /// Moved to the student's device through the host and added there (every backend).
    #[default]
    Host,
    /// burn's collective all-reduce inside the backward pass (`burn::tensor::distributed`):
    /// only for backends with device-to-device transport (CUDA); any other panics in burn.
    Collective,
}

/// The devices of a data-parallel run — none or one: the student's own device, no replicas —
/// and how their gradients are summed. The same device may appear more than once (the CPU
/// backend has one device: replicas are then threads sharing it; host all-reduce only).
#[derive(Debug, Clone, Default)]
pub struct Replicas {
    pub devices: Vec<Device>,
    pub all_reduce: AllReduce,
}

impl Replicas {
    /// Replicas on `devices` with the host all-reduce.
    pub fn host(devices: Vec<Device>) -> Self {
        Self {
            devices,
            all_reduce: AllReduce::Host,
        }
    }

    /// Whether a step runs on several replicas.
    pub fn parallel(&self) -> bool {
        self.devices.len() > 1
    }

    /// Refuses a split that cannot run: more replicas than micro-batches; with the collective
    /// all-reduce, replicas with unequal numbers of micro-batches (each backward pass is a
    /// collective every replica must join) or a device named twice.
    pub fn check(&self, grad_accum: usize) -> Result<()> {
        let r = self.devices.len();
        if r > grad_accum {
            return Err(LavitError::Invalid(format!(
                "{r} devices need at least as many micro-batches per step (grad_accum is {grad_accum})"
            )));
        }
        if self.all_reduce == AllReduce::Collective && self.parallel() {
            if !grad_accum.is_multiple_of(r) {
                return Err(LavitError::Invalid(format!(
                    "the collective all-reduce needs grad_accum ({grad_accum}) to be a multiple of the {r} devices"
                )));
            }
            let d = &self.devices;
            if (0..r).any(|i| (i + 1..r).any(|j| d[i] == d[j])) {
                return Err(LavitError::Invalid(
                    "the collective all-reduce needs distinct devices".into(),
                ));
            }
        }
        Ok(())
    }

    /// burn's communication server for the run's devices (collective all-reduce only); closed
    /// when the returned context is dropped.
    pub fn context(&self) -> Option<DistributedContext> {
        (self.all_reduce == AllReduce::Collective && self.parallel()).then(|| {
            let config = DistributedConfig {
                all_reduce_op: ReduceOperation::Sum,
            };
            DistributedContext::init(self.devices.clone(), config)
        })
    }
}

/// Marks every trainable parameter distributed: burn then all-reduces its gradient across the
/// devices of the running [`DistributedContext`] in each backward pass.
fn mark_distributed(student: LavitStudent) -> LavitStudent {
    struct Mark;
    impl ModuleMapper for Mark {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, t, mapper) = param.consume();
            let t = if t.is_require_grad() {
                t.set_distributed(id)
            } else {
                t
            };
            Param::from_mapped_value(id, t, mapper)
        }
    }
    student.map(&mut Mark)
}

/// [`micro_batches`] over the replicas: micro-batch `j` runs on replica `j mod R` (a fork of
/// `student` on that device, in its own thread); the replicas' gradient sums are all-reduced
/// on `student`'s device, their loss statistics added.
pub(super) fn data_parallel(
    student: &LavitStudent,
    replicas: &Replicas,
    batch: &[usize],
    samples: &[StudentSample],
    cfg: &TrainConfig,
    g: f64,
) -> Result<MicroBatches> {
    let r = replicas.devices.len();
    let collective = replicas.all_reduce == AllReduce::Collective;
    let shares: Vec<Vec<usize>> = (0..r)
        .map(|k| batch.iter().skip(k).step_by(r).copied().collect())
        .collect();
    let results: Vec<Result<(MicroBatches, GradientsParams)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = replicas
            .devices
            .iter()
            .zip(&shares)
            .map(|(device, share)| {
                let mut replica = student.clone().fork(device);
                if collective {
                    replica = mark_distributed(replica);
                }
                scope.spawn(move || {
                    let mut m = pollster::block_on(micro_batches(
                        &replica, share, samples, cfg, g, collective,
                    ))?;
                    let grads = m.acc.grads();
                    Ok((m, grads))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(LavitError::Other("a replica thread panicked".into())))
            })
            .collect()
    });
    let home = student.vlm.device();
    let mut total = MicroBatches::empty();
    for (j, res) in results.into_iter().enumerate() {
        let (m, grads) = res?;
        // Collective: every replica's sums already are the total; the first one's is taken.
        if !collective || j == 0 {
            total
                .acc
                .accumulate(student, grads.to_device(&home, student));
        }
        total.add_stats(m);
    }
    Ok(total)
}
