//! The few messages of SentencePiece's `sentencepiece_model.proto` that the converter reads,
//! declared by hand for `prost` (field numbers as in the upstream `.proto`; every field is
//! proto2 `optional`; prost's generated accessor of a field returns the upstream default
//! when the field is absent). Unknown fields (self-test data, denormalizer, the many trainer options)
//! are skipped by the decoder.

/// `ModelProto`: the whole `tokenizer.model` file.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ModelProto {
    /// Vocabulary in id order.
    #[prost(message, repeated, tag = "1")]
    pub pieces: Vec<SentencePiece>,
    #[prost(message, optional, tag = "2")]
    pub trainer_spec: Option<TrainerSpec>,
    #[prost(message, optional, tag = "3")]
    pub normalizer_spec: Option<NormalizerSpec>,
}

/// `ModelProto.SentencePiece`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct SentencePiece {
    #[prost(string, optional, tag = "1")]
    pub piece: Option<String>,
    #[prost(float, optional, tag = "2")]
    pub score: Option<f32>,
    /// `ModelProto.SentencePiece.Type` (an enum on the wire, read as its number; default NORMAL).
    #[prost(int32, optional, tag = "3", default = "1")]
    pub kind: Option<i32>,
}

/// `SentencePiece.Type` numbers.
pub(super) mod piece_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// `TrainerSpec` (only what decides how the model encodes and decodes).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct TrainerSpec {
    /// `ModelType`: UNIGRAM = 1 (proto default), BPE = 2, WORD = 3, CHAR = 4.
    #[prost(int32, optional, tag = "3", default = "1")]
    pub model_type: Option<i32>,
    #[prost(bool, optional, tag = "24")]
    pub treat_whitespace_as_suffix: Option<bool>,
    #[prost(bool, optional, tag = "35")]
    pub byte_fallback: Option<bool>,
    /// Text that sentencepiece's decoder emits for the `<unk>` piece (absent: `" \u{2047} "`).
    #[prost(string, optional, tag = "44")]
    pub unk_surface: Option<String>,
}

/// `TrainerSpec.ModelType` numbers.
pub(super) mod model_type {
    pub const UNIGRAM: i32 = 1;
    pub const BPE: i32 = 2;
    pub const WORD: i32 = 3;
    pub const CHAR: i32 = 4;

    /// Upstream name of a model type number, for error messages.
    pub fn name(model_type: i32) -> String {
        match model_type {
            UNIGRAM => "unigram".into(),
            BPE => "bpe".into(),
            WORD => "word".into(),
            CHAR => "char".into(),
            other => format!("unknown model type {other}"),
        }
    }
}

/// `NormalizerSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct NormalizerSpec {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub precompiled_charsmap: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "4", default = "true")]
    pub remove_extra_whitespaces: Option<bool>,
    #[prost(bool, optional, tag = "5", default = "true")]
    pub escape_whitespaces: Option<bool>,
    #[prost(string, optional, tag = "6")]
    pub normalization_rule_tsv: Option<String>,
}

impl NormalizerSpec {
    /// Whether the normalizer maps any character (a non-empty compiled rule table or TSV).
    pub fn has_rules(&self) -> bool {
        !self.precompiled_charsmap().is_empty() || !self.normalization_rule_tsv().is_empty()
    }
}
