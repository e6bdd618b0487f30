//! # dam-llm
//!
//! DAM's language side on burn: the SentencePiece tokenizer (built on the `tokenizers` crate
//! from `tokenizer.model`), the LLaMA decoder with a preallocated KV cache, image-embedding
//! splicing, Hugging Face-compatible sampling and streaming generation.

pub mod tokenizer;
