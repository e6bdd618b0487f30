//! Errors of the language crate.

/// What can go wrong loading or running the LLM side.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// From reading the LLM's safetensors files.
    #[error(transparent)]
    Weights(#[from] dam_core::WeightError),
    /// From `dam-core` (prompt templates, configs).
    #[error(transparent)]
    Core(#[from] dam_core::CoreError),
    /// From loading the tokenizer.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// The number of image sentinels in the prompt differs from the number of images given.
    #[error("the prompt has {placeholders} image placeholder(s) but {images} image embedding block(s) were given")]
    ImageCountMismatch {
        /// `<image>` sentinels in the prompt.
        placeholders: usize,
        /// Image embedding blocks given.
        images: usize,
    },
    /// An image embedding block whose width differs from the LLM's hidden size.
    #[error("image embeddings have shape {found:?}; expected [tokens, {hidden}]")]
    ImageEmbeddingShape {
        /// The block's shape.
        found: Vec<usize>,
        /// The LLM's hidden size.
        hidden: usize,
    },
    /// A prompt and generation that do not fit the position table.
    #[error("the prompt ({prompt} positions) plus {new_tokens} new tokens exceeds the model's {max} positions")]
    TooLong {
        /// Prompt length, in positions (text tokens and image embeddings).
        prompt: usize,
        /// New tokens asked for.
        new_tokens: usize,
        /// The model's `max_position_embeddings`.
        max: usize,
    },
    /// A spliced prompt (`[positions, hidden]`) whose width is not the LLM's hidden size.
    #[error("prompt {index} has shape {found:?}; expected [positions, {hidden}]")]
    PromptShape {
        /// Index of the prompt in the batch.
        index: usize,
        /// Its shape.
        found: Vec<usize>,
        /// The LLM's hidden size.
        hidden: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    BadTokenId {
        /// The id.
        id: i64,
        /// The vocabulary size.
        vocab: usize,
    },
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

/// `Result` with [`LlmError`] as its default error.
pub type Result<T, E = LlmError> = std::result::Result<T, E>;
