//! `lavit devices`: compiled backends and the adapters each one sees; with `--require`, a
//! check that the named backends are compiled in and run (the test entry point's first step).

use anyhow::Result;

#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Fail unless every backend in this comma list (e.g. `cpu,wgpu`, as
    /// `LAVIT_TEST_BACKENDS`) is compiled in and runs a small kernel on its adapter #0.
    #[arg(long, value_name = "LIST")]
    pub require: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(list) = args.require {
        for (name, label) in lavit_backends::require_all(&list)? {
            println!("{name}: ok, {label}");
        }
        return Ok(());
    }
    for (kind, devices) in lavit_backends::describe_all() {
        println!("{kind}:");
        if devices.is_empty() {
            println!("  (no adapter found)");
        }
        for d in devices {
            println!("  {d}");
        }
    }
    Ok(())
}
