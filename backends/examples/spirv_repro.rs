//! Minimal reproduction of the one backend failure we know of: burn's native SPIR-V kernels
//! (the `vulkan` feature) on Mesa's lavapipe software Vulkan driver.
//!
//! ```text
//! cargo run -p lavit-backends --example spirv_repro --features vulkan -- vulkan
//! cargo run -p lavit-backends --example spirv_repro --features vulkan -- wgpu   # WGSL path
//! ```
//!
//! Each step prints before it runs, so the output shows where a crash happens.

use burn::tensor::{Distribution, Tensor};

fn main() {
    let backend = std::env::args().nth(1).unwrap_or_else(|| "vulkan".into());
    println!("selecting `{backend}`");
    let device = match lavit_backends::select(&backend, 0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    println!("device: {}", lavit_backends::device_label(&device));
    println!("allocating a 64×64 tensor");
    let a = Tensor::<2>::random([64, 64], Distribution::Default, &device);
    println!("first kernel: matmul");
    let c = a.clone().matmul(a);
    println!("reading back");
    let s = c.sum().into_scalar::<f32>();
    println!("ok: sum = {s}");
}
