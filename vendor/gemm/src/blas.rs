//! lavit-rs patch: with the `blas` feature, `f32` and `f64` products go to the system's CBLAS
//! (OpenBLAS, linked as `libopenblas`) whenever each operand has a unit stride on one axis and
//! a leading dimension BLAS accepts; every other product (and every other type) stays on
//! gemm's own kernels. See PATCH.md beside this crate.

use core::any::TypeId;

use cblas_sys::{CBLAS_LAYOUT, CBLAS_TRANSPOSE, cblas_dgemm, cblas_sgemm};

#[link(name = "openblas")]
unsafe extern "C" {
    fn openblas_set_num_threads(n: core::ffi::c_int);
}

/// OpenBLAS runs single-threaded: its own threads spin after each call and fight the caller's
/// rayon workers for the cores; parallel products are split over rayon here instead.
fn single_threaded() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
}

/// An operand of `rows × cols` at strides `(rs, cs)` as BLAS sees it in row-major order:
/// whether it is stored transposed, and its leading dimension. `None` when neither axis has a
/// unit stride (or a stride is not positive, or too large for BLAS's `int`).
fn operand(rows: usize, cols: usize, rs: isize, cs: isize) -> Option<(CBLAS_TRANSPOSE, i32)> {
    let fits = |x: usize| i32::try_from(x).ok();
    if cs == 1 && (rs >= cols as isize || rows == 1) {
        return Some((CBLAS_TRANSPOSE::CblasNoTrans, fits(cols.max(rs.max(1) as usize))?));
    }
    if rs == 1 && (cs >= rows as isize || cols == 1) {
        return Some((CBLAS_TRANSPOSE::CblasTrans, fits(rows.max(cs.max(1) as usize))?));
    }
    None
}

/// `dst := alpha · dst (if read_dst) + beta · lhs · rhs` through CBLAS, gemm's argument
/// convention; returns false (nothing done) where BLAS cannot take the operands.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn try_gemm<T: 'static>(
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
    let is_f32 = TypeId::of::<T>() == TypeId::of::<f32>();
    if !(is_f32 || TypeId::of::<T>() == TypeId::of::<f64>()) || m == 0 || n == 0 || k == 0 {
        return false;
    }
    // Row-major C as it is, or a column-major C as Cᵀ = Bᵀ · Aᵀ in row-major.
    let (m, n, ldc, a, a_rs, a_cs, b, b_rs, b_cs) = if dst_cs == 1 && (dst_rs >= n as isize || m == 1) {
        (m, n, dst_rs.max(n as isize), lhs, lhs_rs, lhs_cs, rhs, rhs_rs, rhs_cs)
    } else if dst_rs == 1 && (dst_cs >= m as isize || n == 1) {
        (n, m, dst_cs.max(m as isize), rhs, rhs_cs, rhs_rs, lhs, lhs_cs, lhs_rs)
    } else {
        return false;
    };
    let (Some((ta, lda)), Some((tb, ldb))) = (operand(m, k, a_rs, a_cs), operand(k, n, b_rs, b_cs))
    else {
        return false;
    };
    let (Ok(mi), Ok(ni), Ok(ki), Ok(ldc)) = (
        i32::try_from(m),
        i32::try_from(n),
        i32::try_from(k),
        i32::try_from(ldc),
    ) else {
        return false;
    };
    single_threaded();
    let threads = match parallelism {
        crate::Parallelism::None => 1,
        crate::Parallelism::Rayon(0) => rayon::current_num_threads(),
        crate::Parallelism::Rayon(t) => t,
    };
    let call = Call { ta, tb, k: ki, lda, ldb, ldc, read_dst, is_f32 };
    let (a, b, c) = (a as usize, b as usize, dst as usize);
    let (alpha, beta) = (alpha as *const T as usize, beta as *const T as usize);
    let size = if is_f32 { 4 } else { 8 };
    // Rows of C need the same rows of op(A); columns of C the same columns of op(B). Split
    // the longer side into one block per thread, each a single-threaded BLAS call.
    let by_rows = m >= n;
    let len = if by_rows { m } else { n };
    let parts = threads.min(len.div_ceil(16)).max(1);
    let block = len.div_ceil(parts);
    let run = |i: usize| {
        let (start, count) = (i * block, block.min(len.saturating_sub(i * block)));
        if count == 0 {
            return;
        }
        let (mut a, mut b, mut c) = (a, b, c);
        let (mut mm, mut nn) = (mi, ni);
        if by_rows {
            a += size * start * if matches!(ta, CBLAS_TRANSPOSE::CblasNoTrans) { lda as usize } else { 1 };
            c += size * start * ldc as usize;
            mm = count as i32;
        } else {
            b += size * start * if matches!(tb, CBLAS_TRANSPOSE::CblasNoTrans) { 1 } else { ldb as usize };
            c += size * start;
            nn = count as i32;
        }
        unsafe { call.run(mm, nn, a, b, c, alpha, beta) };
    };
    if parts == 1 {
        run(0);
    } else {
        use rayon::prelude::*;
        (0..parts).into_par_iter().for_each(run);
    }
    true
}

/// The arguments every block of one product shares.
struct Call {
    ta: CBLAS_TRANSPOSE,
    tb: CBLAS_TRANSPOSE,
    k: i32,
    lda: i32,
    ldb: i32,
    ldc: i32,
    read_dst: bool,
    is_f32: bool,
}

impl Call {
    /// One `m × n` block: operands and destination at the given addresses.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run(&self, m: i32, n: i32, a: usize, b: usize, c: usize, alpha: usize, beta: usize) {
        let layout = CBLAS_LAYOUT::CblasRowMajor;
        let Call { ta, tb, k, lda, ldb, ldc, read_dst, is_f32 } = *self;
        unsafe {
            if is_f32 {
                let (alpha, beta) = (*(alpha as *const f32), *(beta as *const f32));
                let keep = if read_dst { alpha } else { 0.0 };
                cblas_sgemm(
                    layout, ta, tb, m, n, k, beta, a as *const f32, lda, b as *const f32, ldb,
                    keep, c as *mut f32, ldc,
                );
            } else {
                let (alpha, beta) = (*(alpha as *const f64), *(beta as *const f64));
                let keep = if read_dst { alpha } else { 0.0 };
                cblas_dgemm(
                    layout, ta, tb, m, n, k, beta, a as *const f64, lda, b as *const f64, ldb,
                    keep, c as *mut f64, ldc,
                );
            }
        }
    }
}

