//! lavit-rs patch: matrix–vector products (one row or one column of output), the whole of a
//! token-by-token decoder (every projection and the LM head at one position). gemm-common sends
//! them to its gemv kernels, which run on the calling thread whatever the `Parallelism` asked
//! for, so decoding used one core; and it runs `x · W` with W's rows contiguous (a `Linear`
//! weight stored `[d_in, d_out]`) as one axpy per row of W over the whole output, which
//! reached half of PyTorch's memory bandwidth. Here the long side is cut into one block per
//! rayon thread, and `x · W` runs on `rows_fma` (x86-64 with AVX2 and FMA), which keeps a block
//! of the output in L1 while W streams through, and `x · Wᵀ` with W's columns contiguous (a
//! tied LM head) on `cols_dot`; every other block is a single-threaded gemm call on its slice.
//! Only `f32` and `f64`. See PATCH.md beside this crate.

use core::any::TypeId;

/// Blocks are multiples of this many rows/columns (whole SIMD registers, cache lines).
const ALIGN: usize = 64;
/// Below this many multiply–adds a split costs more than it saves.
const MIN_WORK: usize = 1 << 18;

/// Splits `dst := alpha·dst (if read_dst) + beta·lhs·rhs` over rayon when `m == 1` or
/// `n == 1`; returns false (nothing done) for any other product, type or parallelism.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn try_split<T: 'static>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_cs: isize,
    dst_rs: isize,
    read_dst: bool,
    lhs: *const T,
    lhs_cs: isize,
    lhs_rs: isize,
    rhs: *const T,
    rhs_cs: isize,
    rhs_rs: isize,
    alpha: &T,
    beta: &T,
    parallelism: crate::Parallelism,
) -> bool {
    let is = |t: TypeId| TypeId::of::<T>() == t;
    let numeric = is(TypeId::of::<f32>()) || is(TypeId::of::<f64>());
    let threads = match parallelism {
        crate::Parallelism::None => 1,
        crate::Parallelism::Rayon(0) => rayon::current_num_threads(),
        crate::Parallelism::Rayon(t) => t,
    };
    // One row (split the columns) or one column (split the rows); k <= 2 is gemm's outer
    // product path, left alone.
    let (len, by_cols) = match (m, n) {
        (1, n) => (n, true),
        (m, 1) => (m, false),
        _ => return false,
    };
    if !numeric || k <= 2 || m.saturating_mul(n).saturating_mul(k) < MIN_WORK {
        return false;
    }
    // One row of f32 output on a CPU with AVX2 and FMA: our kernels below (also without
    // rayon: one block).
    #[cfg(target_arch = "x86_64")]
    let simd_row = by_cols
        && is(TypeId::of::<f32>())
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    let simd_row = false;
    // `x · W` with W's rows contiguous (a `Linear` weight stored `[d_in, d_out]`): gemm-common
    // runs it as one axpy over the whole output row per row of W, which streams the output
    // through the cache k times; `rows_fma` keeps a block of the output in L1 instead.
    let rows_kernel = simd_row && rhs_cs == 1;
    // `x · Wᵀ` with each output's weights contiguous (a tied LM head `x · Eᵀ`, E `[vocab, d]`):
    // one dot product per output column; `cols_dot` runs four at a time.
    let dot_kernel = simd_row && !rows_kernel && rhs_rs == 1 && lhs_cs == 1;
    let parts = threads.min(len / ALIGN).max(1);
    if parts < 2 && !rows_kernel && !dot_kernel {
        return false;
    }
    let block = len.div_ceil(parts).div_ceil(ALIGN) * ALIGN;
    let size = core::mem::size_of::<T>() as isize;
    let (dst, lhs, rhs) = (dst as usize, lhs as usize, rhs as usize);
    let (alpha, beta) = (alpha as *const T as usize, beta as *const T as usize);
    let run = |i: usize| {
        let start = i * block;
        let count = block.min(len.saturating_sub(start));
        if count == 0 {
            return;
        }
        let s = start as isize;
        #[cfg(target_arch = "x86_64")]
        if rows_kernel {
            // SAFETY: as below; `rows_kernel` checked the layout, the type and the CPU.
            unsafe {
                rows_fma(
                    k,
                    count,
                    lhs as *const f32,
                    lhs_cs,
                    (rhs as *const f32).offset(s),
                    rhs_rs,
                    (dst as *mut f32).offset(s * dst_cs),
                    dst_cs,
                    read_dst,
                    core::ptr::read(alpha as *const f32),
                    core::ptr::read(beta as *const f32),
                );
            }
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if dot_kernel {
            // SAFETY: as below; `dot_kernel` checked the layout, the type and the CPU.
            unsafe {
                cols_dot(
                    k,
                    count,
                    lhs as *const f32,
                    (rhs as *const f32).offset(s * rhs_cs),
                    rhs_cs,
                    (dst as *mut f32).offset(s * dst_cs),
                    dst_cs,
                    read_dst,
                    core::ptr::read(alpha as *const f32),
                    core::ptr::read(beta as *const f32),
                );
            }
            return;
        }
        // SAFETY: each block writes its own disjoint rows/columns of dst; the operands are
        // only read; T is f32 or f64 (Copy), so reading alpha/beta by address is a copy.
        unsafe {
            let (dst_off, lhs_off, rhs_off, mm, nn) = if by_cols {
                (s * dst_cs, 0, s * rhs_cs, 1, count)
            } else {
                (s * dst_rs, s * lhs_rs, 0, count, 1)
            };
            crate::gemm::gemm::<T>(
                mm,
                nn,
                k,
                (dst as isize + dst_off * size) as *mut T,
                dst_cs,
                dst_rs,
                read_dst,
                (lhs as isize + lhs_off * size) as *const T,
                lhs_cs,
                lhs_rs,
                (rhs as isize + rhs_off * size) as *const T,
                rhs_cs,
                rhs_rs,
                core::ptr::read(alpha as *const T),
                core::ptr::read(beta as *const T),
                false,
                false,
                false,
                crate::Parallelism::None,
            );
        }
    };
    if parts == 1 {
        run(0);
    } else {
        use rayon::prelude::*;
        (0..parts).into_par_iter().for_each(run);
    }
    true
}

/// Output columns per block of [`rows_fma`]: 16 KiB of accumulators, half a typical L1 (on the
/// 2-core EPYC, 64 columns in registers: 14 GB/s; 1024: 17.5; 4096: 20–22; PyTorch: 24).
#[cfg(target_arch = "x86_64")]
const COLS: usize = 4096;

/// `dst[j] := alpha·dst[j] (if read_dst) + beta·Σ_p x[p]·w[p, j]` for `j < n`, `p < k`: `w`'s
/// rows contiguous at stride `w_rs`, `x` at stride `x_s`, `dst` at stride `dst_s`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_fma(
    k: usize,
    n: usize,
    x: *const f32,
    x_s: isize,
    w: *const f32,
    w_rs: isize,
    dst: *mut f32,
    dst_s: isize,
    read_dst: bool,
    alpha: f32,
    beta: f32,
) {
    let mut col = 0;
    while col < n {
        let nb = COLS.min(n - col);
        let mut acc = [0f32; COLS];
        let acc = &mut acc[..nb];
        // SAFETY (both loops): the caller's operands hold k rows of n columns at these strides.
        let row = |p: usize| unsafe {
            (
                *x.offset(p as isize * x_s),
                core::slice::from_raw_parts(w.offset(p as isize * w_rs).add(col), nb),
            )
        };
        // Four rows of W per pass over the block: the accumulators are loaded and stored once
        // per four multiply–adds, and four streams are in flight. The sum is still taken row
        // by row in order, so the result is bit-identical to one row per pass.
        let mut p = 0;
        while p + 4 <= k {
            let ((x0, r0), (x1, r1), (x2, r2), (x3, r3)) =
                (row(p), row(p + 1), row(p + 2), row(p + 3));
            for j in 0..nb {
                let a = r0[j].mul_add(x0, acc[j]);
                let a = r1[j].mul_add(x1, a);
                let a = r2[j].mul_add(x2, a);
                acc[j] = r3[j].mul_add(x3, a);
            }
            p += 4;
        }
        for p in p..k {
            let (xv, r) = row(p);
            for (a, &v) in acc.iter_mut().zip(r) {
                *a = v.mul_add(xv, *a);
            }
        }
        for (j, &a) in acc.iter().enumerate() {
            // SAFETY: dst holds n entries at stride dst_s.
            unsafe {
                store(
                    dst.offset((col + j) as isize * dst_s),
                    a,
                    read_dst,
                    alpha,
                    beta,
                )
            };
        }
        col += nb;
    }
}

/// `*d := alpha·*d (if read_dst) + beta·a`: gemm's write of one output, shared by the kernels.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn store(d: *mut f32, a: f32, read_dst: bool, alpha: f32, beta: f32) {
    // SAFETY: the caller passes a valid, exclusively owned output.
    unsafe { *d = if read_dst { alpha * *d } else { 0.0 } + beta * a };
}

/// Output columns per pass of [`cols_dot`]: four weight streams in flight.
#[cfg(target_arch = "x86_64")]
const DOT_COLS: usize = 4;

/// `dst[j] := alpha·dst[j] (if read_dst) + beta·Σ_p x[p]·w[p, j]` for `j < n`, `p < k`, with
/// each column of `w` contiguous (`w[p, j]` at `w + j·w_cs + p`) and `x` contiguous: the dot
/// products of four columns at a time, eight lanes each, summed across lanes at the end.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn cols_dot(
    k: usize,
    n: usize,
    x: *const f32,
    w: *const f32,
    w_cs: isize,
    dst: *mut f32,
    dst_s: isize,
    read_dst: bool,
    alpha: f32,
    beta: f32,
) {
    use core::arch::x86_64::*;
    let k8 = k / 8 * 8;
    // SAFETY (all reads): the caller's operands hold n columns of k entries at these strides.
    let col = |j: usize| unsafe { w.offset(j as isize * w_cs) };
    let hsum = |v: __m256| {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
    };
    let mut j = 0;
    while j < n {
        let cols = DOT_COLS.min(n - j);
        let c: [*const f32; DOT_COLS] = core::array::from_fn(|i| col(j + i.min(cols - 1)));
        let mut acc = [_mm256_setzero_ps(); DOT_COLS];
        let mut p = 0;
        while p < k8 {
            let xv = unsafe { _mm256_loadu_ps(x.add(p)) };
            for (a, c) in acc.iter_mut().zip(&c) {
                *a = unsafe { _mm256_fmadd_ps(_mm256_loadu_ps(c.add(p)), xv, *a) };
            }
            p += 8;
        }
        for (i, (a, c)) in acc.iter().zip(&c).take(cols).enumerate() {
            let tail: f32 = (k8..k).map(|p| unsafe { *c.add(p) * *x.add(p) }).sum();
            let d = unsafe { dst.offset((j + i) as isize * dst_s) };
            // SAFETY: dst holds n entries at stride dst_s.
            unsafe { store(d, hsum(*a) + tail, read_dst, alpha, beta) };
        }
        j += cols;
    }
}
