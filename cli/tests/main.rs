//! The `lavit` binary's tests in one test binary (one link instead of one per file).

mod alloc_cap;
mod common;

#[global_allocator]
static ALLOC: alloc_cap::CappedAlloc = alloc_cap::CappedAlloc;

mod backends;
mod bench;
mod bench_eval;
mod crash;
mod demo;
mod docs;
mod e2e;
mod errors;
mod extract;
mod forward;
mod fuzz;
mod hub;
mod options;
