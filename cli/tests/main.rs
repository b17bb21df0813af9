//! The `lavit` binary's tests in one test binary (one link instead of one per file).

mod common;

mod bench;
mod bench_eval;
mod demo;
mod docs;
mod e2e;
mod errors;
mod extract;
mod forward;
mod hub;
mod options;
