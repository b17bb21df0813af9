//! Teacher signal extraction (`V_top`, attention trajectories) and the signal store.

pub mod extract;
#[cfg(feature = "import")]
pub mod import;
pub mod pipeline;
#[cfg(not(target_arch = "wasm32"))]
pub mod run;
pub mod store;
#[cfg(not(target_arch = "wasm32"))]
pub mod stream;

pub use extract::{ExtractConfig, TeacherSignals, extract_signals, split_steps};
pub use store::{SignalRecord, SignalStore, SignalWriter};
