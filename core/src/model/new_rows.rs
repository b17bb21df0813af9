//! The rows of tokens added to a pre-trained vocabulary (the latent tokens `<lvr1>…<lvrK>`),
//! trained on their own while the rest of the embedding table and the LM head stay frozen —
//! PEFT's `trainable_token_indices`. burn has no sparse embedding gradient: a `[V, d]` table
//! that trains materialises a `[V, d]` gradient and two AdamW moments of the same size
//! (3.7 GiB at Qwen2.5-VL-3B's 151 936 × 2048), although only `K` rows can learn anything.
//!
//! Split off, the `K` rows live in a small parameter and the table's copies of them are zero,
//! so the frozen lookup and the frozen head give exactly 0 there and the new rows are added:
//!
//! ```text
//! embed(t)  = E_frozen[t] + [t ∈ ids] · E_new[k(t)]
//! logits(h) = h W_headᵀ  with the columns `ids` ← h E_newᵀ   (tied: the same rows; untied: H_new)
//! ```
//! [`NewTokenRows::merge_into`] writes the rows back, so an export is a plain checkpoint.

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

use crate::util::index_tensor;

/// The trainable rows of the new tokens `ids` (token id order as given).
#[derive(Module, Debug)]
pub struct NewTokenRows {
    /// Token ids of the rows.
    #[module(skip)]
    pub ids: Vec<usize>,
    /// Their input embeddings `[K, d]`.
    pub embed: Param<Tensor<2>>,
    /// Their LM-head columns `[d, K]` when the head is untied (`None`: tied to `embed`).
    pub head: Option<Param<Tensor<2>>>,
}

impl NewTokenRows {
    /// Takes the rows `ids` out of `table` (and the columns out of an untied `head`), leaving
    /// zeros there.
    pub fn split(ids: &[usize], table: &mut Embedding, head: Option<&mut Linear>) -> Self {
        let w = table.weight.val();
        let device = w.device();
        let idx = index_tensor(ids, &device);
        let rows = w.clone().select(0, idx.clone());
        table.weight = table
            .weight
            .clone()
            .map(|w| w.select_assign(0, idx.clone(), rows.clone().neg(), IndexingUpdateOp::Add));
        let head = head.map(|h| {
            let cols = h.weight.val().select(1, idx.clone()); // [d, K]
            h.weight = h.weight.clone().map(|w| {
                w.select_assign(1, idx.clone(), cols.clone().neg(), IndexingUpdateOp::Add)
            });
            Param::from_tensor(cols)
        });
        Self {
            ids: ids.to_vec(),
            embed: Param::from_tensor(rows),
            head,
        }
    }

    /// Writes the rows back into `table` (and `head`), the inverse of [`Self::split`].
    pub fn merge_into(self, table: &mut Embedding, head: Option<&mut Linear>) {
        let device = table.weight.val().device();
        let idx = index_tensor(&self.ids, &device);
        let rows = self.embed.val();
        table.weight = Param::from_tensor(table.weight.val().select_assign(
            0,
            idx.clone(),
            rows.clone(),
            IndexingUpdateOp::Add,
        ));
        if let Some(h) = head {
            let cols = self.head.map(|c| c.val()).unwrap_or(rows.transpose());
            h.weight = Param::from_tensor(h.weight.val().select_assign(
                1,
                idx,
                cols,
                IndexingUpdateOp::Add,
            ));
        }
    }

    /// `frozen [S, d]` (the table's lookup of `ids_in`, zero at the new tokens) plus the new
    /// rows at the positions of new tokens.
    pub fn embed(&self, ids_in: &[u32], frozen: Tensor<2>) -> Tensor<2> {
        let k = self.ids.len();
        let s = ids_in.len();
        let mut onehot = vec![0f32; s * k];
        let mut any = false;
        for (p, &t) in ids_in.iter().enumerate() {
            if let Some(j) = self.ids.iter().position(|&i| i == t as usize) {
                onehot[p * k + j] = 1.0;
                any = true;
            }
        }
        if !any {
            return frozen;
        }
        let device = frozen.device();
        let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [s, k]), &device);
        frozen + onehot.matmul(self.embed.val())
    }

    /// `frozen [R, V]` (the frozen head's logits, zero in the new tokens' columns) with the
    /// new tokens' logits `h [R, d] · E_newᵀ` (or `· H_new`) in those columns.
    pub fn logits(&self, h: Tensor<2>, frozen: Tensor<2>) -> Tensor<2> {
        let cols = match &self.head {
            Some(c) => c.val(),
            None => self.embed.val().transpose(),
        };
        let new = h.matmul(cols); // [R, K]
        let idx = index_tensor(&self.ids, &new.device());
        frozen.select_assign(1, idx, new, IndexingUpdateOp::Add)
    }
}
