//! lavit-rs patch: with the `blas` feature, `f32` and `f64` products go to the system's CBLAS
//! (OpenBLAS, linked as `libopenblas`) whenever each operand has a unit stride on one axis and
//! a leading dimension BLAS accepts; every other product (and every other type) stays on
//! gemm's own kernels. See PATCH.md beside this crate.

use core::any::TypeId;

use cblas_sys::{CBLAS_LAYOUT, CBLAS_TRANSPOSE, cblas_dgemm, cblas_sgemm};

#[link(name = "openblas")]
unsafe extern "C" {}

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
    let layout = CBLAS_LAYOUT::CblasRowMajor;
    unsafe {
        if is_f32 {
            let (alpha, beta) = (*(alpha as *const T as *const f32), *(beta as *const T as *const f32));
            let keep = if read_dst { alpha } else { 0.0 };
            cblas_sgemm(
                layout, ta, tb, mi, ni, ki, beta, a as *const f32, lda, b as *const f32, ldb, keep,
                dst as *mut f32, ldc,
            );
        } else {
            let (alpha, beta) = (*(alpha as *const T as *const f64), *(beta as *const T as *const f64));
            let keep = if read_dst { alpha } else { 0.0 };
            cblas_dgemm(
                layout, ta, tb, mi, ni, ki, beta, a as *const f64, lda, b as *const f64, ldb, keep,
                dst as *mut f64, ldc,
            );
        }
    }
    true
}
