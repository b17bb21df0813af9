//! The CPU backend's matrix products against a plain f64 triple loop, in every layout a training
//! step uses (`A·B`, `A·Bᵀ`, `Aᵀ·B`; 2-D, a batch of 1 as a `Linear` calls it, and batched)
//! and a decoder's matrix-vector products:
//! gemm's kernels in the default build, OpenBLAS with `--features lavit-backends/blas`
//! (vendor/gemm/PATCH.md).

use burn::prelude::*;
use lavit_core::util::to_vec_f32;

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
    let dist = burn::tensor::Distribution::Uniform(-1.0, 1.0);
    // Shapes on both sides of the kernels' blocking, and a row or column of one.
    for dims in [
        [1, 37, 64, 300],
        [1, 130, 257, 65],
        [3, 33, 80, 64],
        [2, 1, 40, 9],
        [1, 9, 40, 1],
        // Large enough for burn-flex to ask for rayon: the matrix-vector split
        // (vendor/gemm/src/gemv_split.rs), with a block that is not a multiple of 64.
        [1, 1, 1024, 7001],
        [1, 7001, 1024, 1],
        // `rows_fma` takes four rows of W per pass, `cols_dot` (the `nt` layout) eight lanes of
        // the depth: a depth that is a multiple of neither.
        [1, 1, 1027, 7001],
        // Below burn-flex's rayon threshold, wider than one block of `rows_fma` (4096).
        [1, 1, 300, 9000],
    ] {
        let [batch, m, k, n] = dims;
        let a = Tensor::<3>::random([batch, m, k], dist, &device);
        let b = Tensor::<3>::random([batch, k, n], dist, &device);
        let want = reference(&to_vec_f32(a.clone()), &to_vec_f32(b.clone()), dims);
        // The same products with an operand stored transposed (a strided view).
        let at = a.clone().swap_dims(1, 2).into_data();
        let at = Tensor::<3>::from_data(at, &device).swap_dims(1, 2);
        let bt = b.clone().swap_dims(1, 2).into_data();
        let bt = Tensor::<3>::from_data(bt, &device).swap_dims(1, 2);
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
            assert!(err < 1e-4 * k as f64, "{dims:?} {layout}: max error {err}");
        }
    }
}
