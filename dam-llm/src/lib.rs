//! # dam-llm
//!
//! DAM's language side on burn: the SentencePiece tokenizer (built on the `tokenizers` crate
//! from `tokenizer.model`), the LLaMA decoder with a preallocated KV cache, image-embedding
//! splicing, Hugging Face-compatible sampling and streaming generation.
//!
//! Data flow: [`tokenizer`] (prompt → ids with image sentinels) → [`splice`] (ids + image
//! embeddings → input embeddings) → [`session`] (batched prefill, KV cache, decode steps,
//! [`sampling`]) → [`generate`](mod@generate) (stop conditions, text, streaming).

// Every public item is documented (`cargo clippy -- -D warnings` makes this an error).
#![warn(missing_docs)]

pub mod attention;
#[cfg(feature = "cube")]
pub mod decode_graph;
pub mod decoder_layer;
pub mod error;
#[cfg(feature = "cube")]
pub mod fused;
pub mod generate;
pub mod kv_cache;
pub mod mlp;
pub mod model;
pub(crate) mod replay_check;
pub mod rms_norm;
pub mod rope;
pub mod sampling;
pub mod session;
pub mod splice;
pub mod tokenizer;

pub use error::{LlmError, Result};
pub use generate::{Generation, GenerationOptions, TextStream, generate};
pub use model::LlamaModel;
pub use sampling::{Sampling, SamplingParams};
pub use session::{Session, SessionOptions, StopReason, Timings};
pub use tokenizer::DamTokenizer;
