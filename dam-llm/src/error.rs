//! Errors of the language crate.

/// What can go wrong loading or running the LLM side.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(transparent)]
    Weights(#[from] dam_core::WeightError),
    #[error(transparent)]
    Core(#[from] dam_core::CoreError),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// The number of image sentinels in the prompt differs from the number of images given.
    #[error("the prompt has {placeholders} image placeholder(s) but {images} image embedding block(s) were given")]
    ImageCountMismatch { placeholders: usize, images: usize },
    /// An image embedding block whose width differs from the LLM's hidden size.
    #[error("image embeddings have shape {found:?}; expected [tokens, {hidden}]")]
    ImageEmbeddingShape { found: Vec<usize>, hidden: usize },
    /// A prompt and generation that do not fit the position table.
    #[error("the prompt ({prompt} positions) plus {new_tokens} new tokens exceeds the model's {max} positions")]
    TooLong {
        prompt: usize,
        new_tokens: usize,
        max: usize,
    },
    /// A spliced prompt (`[positions, hidden]`) whose width is not the LLM's hidden size.
    #[error("prompt {index} has shape {found:?}; expected [positions, {hidden}]")]
    PromptShape {
        index: usize,
        found: Vec<usize>,
        hidden: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    BadTokenId { id: i64, vocab: usize },
    /// Invalid generation options.
    #[error("bad generation options: {0}")]
    BadOptions(String),
    /// Nothing to generate from.
    #[error("empty batch or empty prompt")]
    EmptyInput,
    /// The device failed to run the queued work.
    #[error("device error: {0}")]
    Device(String),
}

pub type Result<T, E = LlmError> = std::result::Result<T, E>;
