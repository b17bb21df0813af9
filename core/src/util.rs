//! Small tensor helpers.

use burn::prelude::*;

/// Reads a float tensor back as `Vec<f32>` (any float dtype), row-major.
pub fn to_vec_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>()
        .expect("reading a float tensor back")
}

thread_local! {
    /// Read-backs done by [`read_f32`] on this thread (the generation loop's and the training
    /// step's only way back from the device): what the browser demo reports per token.
    static READ_BACKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many [`read_f32`] read-backs this thread has done.
pub fn read_backs() -> u64 {
    READ_BACKS.with(|n| n.get())
}

/// [`to_vec_f32`] without blocking: the read-back GPU backends need in the browser, where a
/// buffer can only be mapped asynchronously (on the CPU backend it is ready at once).
pub async fn read_f32<const D: usize>(t: Tensor<D>) -> crate::error::Result<Vec<f32>> {
    READ_BACKS.with(|n| n.set(n.get() + 1));
    let data = t
        .into_data_async()
        .await
        .map_err(|e| crate::error::LavitError::Other(format!("reading a tensor back: {e:?}")))?;
    data.try_into_vec_as::<f32>()
        .map_err(|e| crate::error::LavitError::Other(format!("reading a tensor back: {e:?}")))
}

/// `tᵀ` stored row-major: a copy of the transposed view (flattening it cannot be a view, so
/// the backends copy into row-major order). For the right operand of a small matrix product:
/// on the wgpu backend each operand layout (and bounds check) of a product is a kernel of its
/// own, and a software adapter compiles one for about a second (web-demo/README.md), so a
/// product with a row-major right operand can share the kernel of the projections.
pub fn transposed_row_major(t: Tensor<2>) -> Tensor<2> {
    let [r, c] = t.dims();
    t.transpose().reshape([r * c]).reshape([c, r])
}

/// Reads an int tensor back as `Vec<i64>`.
pub fn to_vec_i64<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
    t.try_into_vec_as::<i64>()
        .expect("reading an int tensor back")
}

/// `[n]` int tensor from indices.
pub fn index_tensor(idx: &[usize], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(
        TensorData::new(
            idx.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            [idx.len()],
        ),
        device,
    )
}

/// Float tensor of `shape` from host data.
pub fn tensor_from<const D: usize>(
    data: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), device)
}
