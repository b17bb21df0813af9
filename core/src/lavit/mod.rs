//! The LaViT method (arXiv 2601.10129; docs/ARCHITECTURE.md): latent tokens, heads, losses, targets, sensory gating.

pub mod gating;
pub mod heads;
pub mod losses;
pub mod student;
pub mod targets;

pub use gating::{GateLayout, GateSchedule};
pub use losses::LossWeights;
pub use student::{LavitConfig, LavitStudent, SampleTargets, StudentSample};
