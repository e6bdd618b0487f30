//! Splicing image embeddings into the prompt (spec §6.5): the k-th image sentinel (−200) is
//! replaced by the k-th image's projector output; text runs are looked up in the embedding
//! table.

use burn::tensor::Tensor;

use crate::error::{LlmError, Result};
use crate::model::LlamaModel;
use crate::tokenizer::IMAGE_TOKEN_INDEX;

/// The LLM input `[P, D]` for `ids` (with sentinels) and one `[T', D]` block per sentinel,
/// consumed in order. Longer results are truncated to `tokenizer_model_max_length` as
/// upstream does.
pub fn splice(model: &LlamaModel, ids: &[i64], images: &[Tensor<2>]) -> Result<Tensor<2>> {
    let placeholders = ids.iter().filter(|&&i| i == IMAGE_TOKEN_INDEX).count();
    if placeholders != images.len() {
        return Err(LlmError::ImageCountMismatch {
            placeholders,
            images: images.len(),
        });
    }
    let hidden = model.hidden_size();
    for image in images {
        let dims = image.dims();
        if dims[1] != hidden {
            return Err(LlmError::ImageEmbeddingShape {
                found: dims.to_vec(),
                hidden,
            });
        }
    }
    let mut parts = Vec::new();
    let mut text: Vec<u32> = Vec::new();
    let mut next_image = images.iter();
    for &id in ids {
        if id == IMAGE_TOKEN_INDEX {
            if !text.is_empty() {
                parts.push(model.embed(&text)?);
                text.clear();
            }
            parts.push(next_image.next().expect("counted above").clone());
        } else if id < 0 || id as usize >= model.config.vocab_size {
            return Err(LlmError::BadTokenId {
                id,
                vocab: model.config.vocab_size,
            });
        } else {
            text.push(id as u32);
        }
    }
    if !text.is_empty() {
        parts.push(model.embed(&text)?);
    }
    if parts.is_empty() {
        return Err(LlmError::EmptyInput);
    }
    let embeds = Tensor::cat(parts, 0);
    let len = embeds.dims()[0];
    match model.config.tokenizer_model_max_length {
        Some(max) if len > max => {
            tracing::warn!("prompt of {len} positions truncated to {max} (tokenizer_model_max_length)");
            Ok(embeds.narrow(0, 0, max))
        }
        _ => Ok(embeds),
    }
}
