//! Matrix products against a plain f64 triple loop, in every layout a training step uses
//! (`A·B`, `A·Bᵀ`, `Aᵀ·B`; 2-D, a batch of 1 as a `Linear` calls it, and batched):
//! the CPU backend's, with a decoder's matrix-vector products — gemm's kernels in the default
//! build, OpenBLAS with `--features lavit-backends/blas` (vendor/gemm/PATCH.md) — and the GPU
//! backends' of `LAVIT_TEST_BACKENDS` in products small enough for the patched tiling's one
//! register tile a unit (vendor/cubek-matmul/PATCH.md).

use burn::prelude::*;
use lavit_core::util::to_vec_f32;
use lavit_tests::test_devices;

/// `[batch, m, n]` = `a · b` from row-major `[batch, m, k]` and `[batch, k, n]`, in f64.
fn reference(a: &[f32], b: &[f32], [batch, m, k, n]: [usize; 4]) -> Vec<f64> {
    let mut c = vec![0.0; batch * m * n];
    for z in 0..batch {
        for i in 0..m {
            for j in 0..n {
                c[(z * m + i) * n + j] = (0..k)
                    .map(|p| a[(z * m + i) * k + p] as f64 * b[(z * k + p) * n + j] as f64)
                    .sum();
            }
        }
    }
    c
}

#[test]
fn cpu_matmul_equals_a_triple_loop_in_every_layout() {
    let device = lavit_backends::select("cpu", 0).unwrap();
    // Shapes on both sides of the kernels' blocking, and a row or column of one.
    check_products(
        &device,
        "cpu",
        &[
            [1, 37, 64, 300],
            [1, 130, 257, 65],
            [3, 33, 80, 64],
            [2, 1, 40, 9],
            [1, 9, 40, 1],
            // Large enough for burn-flex to ask for rayon: the matrix-vector split
            // (vendor/gemm/src/gemv_split.rs), with a block that is not a multiple of 64.
            [1, 1, 1024, 7001],
            [1, 7001, 1024, 1],
            // `rows_fma` takes four rows of W per pass, `cols_dot` (the `nt` layout) eight lanes
            // of the depth: a depth that is a multiple of neither.
            [1, 1, 1027, 7001],
            // Below burn-flex's rayon threshold, wider than one block of `rows_fma` (4096).
            [1, 1, 300, 9000],
        ],
    );
}

/// The GPU backends' products of at most 2²⁴ multiply-adds a matrix, for which the patched
/// selector gives each unit one register tile (vendor/cubek-matmul/PATCH.md), in the four
/// layouts: one with every dimension off the tiles (bounds checks), and a batch of two with the
/// patch embedding's depth (1,176, where upstream's partition is deeper). The model's own
/// products run through the same kernels in the parity and conformance tests. With Mesa's
/// shader cache off, 2.0 s on lavapipe.
#[test]
fn gpu_matmul_equals_a_triple_loop_in_every_layout() {
    for (name, device) in test_devices().into_iter().filter(|(n, _)| n != "cpu") {
        check_products(&device, &name, &[[1, 37, 75, 45], [2, 144, 1176, 48]]);
    }
}

/// Each product of `dims` (`[batch, m, k, n]`) on `device`, stored plain and with either
/// operand transposed (and as 2-D for a batch of one), within `1e-4 · k` of the f64 loop.
fn check_products(device: &Device, name: &str, dims: &[[usize; 4]]) {
    let dist = burn::tensor::Distribution::Uniform(-1.0, 1.0);
    for &dims in dims {
        let [batch, m, k, n] = dims;
        let a = Tensor::<3>::random([batch, m, k], dist, device);
        let b = Tensor::<3>::random([batch, k, n], dist, device);
        let want = reference(&to_vec_f32(a.clone()), &to_vec_f32(b.clone()), dims);
        // The same products with an operand stored transposed (a strided view).
        let at = a.clone().swap_dims(1, 2).into_data();
        let at = Tensor::<3>::from_data(at, device).swap_dims(1, 2);
        let bt = b.clone().swap_dims(1, 2).into_data();
        let bt = Tensor::<3>::from_data(bt, device).swap_dims(1, 2);
        let mut got = vec![
            ("nn", a.clone().matmul(b.clone())),
            ("tn", at.matmul(b.clone())),
            ("nt", a.clone().matmul(bt)),
        ];
        if batch == 1 {
            let two = a.squeeze_dim::<2>(0).matmul(b.squeeze_dim::<2>(0));
            got.push(("2-D", two.unsqueeze_dim(0)));
        }
        for (layout, c) in got {
            let c = to_vec_f32(c);
            let err = c
                .iter()
                .zip(&want)
                .map(|(&x, &y)| (x as f64 - y).abs())
                .fold(0.0, f64::max);
            assert!(
                err < 1e-4 * k as f64,
                "{name} {dims:?} {layout}: max error {err}"
            );
        }
    }
}
