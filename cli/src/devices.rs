//! `lavit devices`: compiled backends and the adapters each one sees.

use anyhow::Result;

pub fn run() -> Result<()> {
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
