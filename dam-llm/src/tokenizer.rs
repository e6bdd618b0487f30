//! DAM's tokenizer: the LLaMA SentencePiece `tokenizer.model` with the exact behaviour of the
//! slow Hugging Face `LlamaTokenizer` that upstream loads (`use_fast=False`, `legacy=False`,
//! transformers 4.46.3), built on the `tokenizers` crate.
//!
//! # What is hand-written and what is `tokenizers`
//!
//! The checkpoint ships only `tokenizer.model` (a SentencePiece `ModelProto`), no
//! `tokenizer.json`. This module parses the protobuf with `prost` (the few messages are
//! declared by hand in `tokenizer/proto.rs`) and converts it to a
//! [`tokenizers::models::bpe::BPE`] with `byte_fallback`: the vocabulary is the piece list in
//! id order, and the merges are derived like `tokenizers`' `SentencePieceExtractor` — every
//! split of a normal piece into two normal pieces, ordered by the merged piece's score (higher
//! first), then by its id, then by the ids of the two parts. That conversion, the text
//! preparation around it (prefix space, special-token splitting) and sentencepiece's decoding
//! rules are hand-written; the BPE merge loop is the `tokenizers` crate's. Only what LLaMA-style
//! models use is accepted (BPE, byte fallback, identity normalizer, no extra-whitespace
//! removal, no user-defined pieces); anything else is a [`TokenizerError::Unsupported`].
//!
//! When a folder ships a `tokenizer.json`, it is loaded with [`tokenizers::Tokenizer`] instead
//! and the same API is served by it (the converted file is then trusted as is).
//!
//! # Encoding (slow `LlamaTokenizer`, `legacy=False`, `add_prefix_space=True`)
//!
//! 1. Empty text gives no tokens.
//! 2. A literal `▁` (U+2581) in the text becomes a space, then one `▁` is prepended.
//! 3. The text is split on the special tokens (`<unk>`, `<s>`, `</s>` and any other special
//!    token of the configuration); they become their ids.
//! 4. Each other segment is SentencePiece-encoded with spaces as `▁` and no further dummy
//!    prefix (upstream disables `add_dummy_prefix` in the model and encodes `"<unk>" +
//!    segment`, dropping the `<unk>` pieces again, which gives the same pieces because no
//!    merge crosses into a `▁`). Whitespace is not collapsed and a trailing space is a
//!    standalone `▁`; characters outside the vocabulary fall back to `<0xNN>` byte pieces.
//! 5. If the first token is `▁` and the second a special token, the `▁` is dropped.
//! 6. With special tokens on, BOS is prepended (and EOS appended if the configuration asks).
//!
//! [`DamTokenizer::tokenize_prompt`] adds upstream's `tokenizer_image_token` on top: the prompt
//! is split on the literal `<image>`, each chunk is encoded on its own with BOS, the first chunk
//! keeps its BOS, later chunks lose their first token, and [`IMAGE_TOKEN_INDEX`] (−200) goes
//! between chunks (consecutive `<image>` give consecutive sentinels).
//!
//! # Decoding
//!
//! [`DamTokenizer::decode`] reproduces `tokenizer.decode(ids, skip_special_tokens=...)`:
//! special ids (`<unk>`, `<s>`, `</s>`) are dropped first (so byte pieces around a dropped
//! special id join), the first remaining piece loses one leading `▁` (the prefix space added
//! when encoding), and sentencepiece turns the pieces into text: `▁` → space, control pieces →
//! nothing, byte pieces are collected into runs and decoded as UTF-8 where **each** byte that
//! does not start a complete valid character becomes its own U+FFFD (not one U+FFFD per
//! invalid sequence as `String::from_utf8_lossy` does). Quirks kept on purpose:
//!
//! * the leading-`▁` removal happens on the piece string before it is looked up again, so a
//!   first piece `▁▁▁` decodes through the piece `▁▁`; a stripped string that is no piece at
//!   all is emitted verbatim (sentencepiece's rule for unknown strings);
//! * with `skip_special = false`, special pieces are emitted as their text (`<s>`), the pieces
//!   between them are decoded separately, and a space is inserted after a leading special
//!   piece when the next piece does not start with `▁` (all as the slow tokenizer does).
//!
//! Upstream then calls Python's `str.strip()` on the generated text: use [`python_strip`],
//! which strips the same characters (Rust's `trim` does not strip U+001C..U+001F).
//! [`StreamDecoder`] yields the same text incrementally.
//!
//! # Configuration files
//!
//! `tokenizer_config.json` and `special_tokens_map.json` are read when present (the latter
//! overrides the former, as in transformers): `bos_token`, `eos_token`, `unk_token`,
//! `pad_token` (strings or `{"content": ...}` objects; defaults `<s>`, `</s>`, `<unk>` and no
//! pad, whose id then falls back to `<unk>`), `additional_special_tokens`,
//! `added_tokens_decoder` (each must be one of those special tokens at its SentencePiece id),
//! `add_bos_token` (default true), `add_eos_token` (default false) and `add_prefix_space`
//! (default true). `legacy` is read but not obeyed: upstream passes `legacy=False` explicitly,
//! which overrides the file, so `legacy: true` only logs a warning.
//! `clean_up_tokenization_spaces: true` is rejected as unsupported.

mod proto;
mod spm;
mod stream;

use std::path::{Path, PathBuf};

use serde_json::Value;

use spm::{SPACE, SpmModel};
pub use stream::StreamDecoder;

/// Sentinel id that marks where the embeddings of one image (frame) go in the prompt ids
/// (upstream `IMAGE_TOKEN_INDEX`).
pub const IMAGE_TOKEN_INDEX: i64 = -200;

/// The literal placeholder that [`DamTokenizer::tokenize_prompt`] splits the prompt on.
pub const IMAGE_PLACEHOLDER: &str = "<image>";

const TOKENIZER_JSON: &str = "tokenizer.json";
const TOKENIZER_MODEL: &str = "tokenizer.model";
const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
const SPECIAL_TOKENS_MAP: &str = "special_tokens_map.json";

/// Errors of loading or running the tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// Neither `tokenizer.json` nor `tokenizer.model` is there.
    #[error("tokenizer file not found: {} (no tokenizer.json beside it either)", path.display())]
    MissingFile {
        /// The `tokenizer.model` looked for.
        path: PathBuf,
    },
    /// A file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the read reported.
        #[source]
        source: std::io::Error,
    },
    /// `tokenizer.model` is not a SentencePiece `ModelProto`.
    #[error("{} is not a valid SentencePiece model: {source}", path.display())]
    Protobuf {
        /// The file.
        path: PathBuf,
        /// What the protobuf decoder reported.
        #[source]
        source: prost::DecodeError,
    },
    /// The model parses but is inconsistent (duplicate pieces, missing byte pieces, ...).
    #[error("invalid tokenizer in {}: {what}", path.display())]
    InvalidModel {
        /// The file.
        path: PathBuf,
        /// What is inconsistent.
        what: String,
    },
    /// The model or configuration uses a feature this implementation does not reproduce
    /// (e.g. a unigram model).
    #[error("unsupported tokenizer in {}: {what}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The feature not reproduced.
        what: String,
    },
    /// A configuration JSON file is malformed.
    #[error("bad tokenizer configuration {}: {what}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is malformed.
        what: String,
    },
    /// An error of the `tokenizers` crate.
    #[error("tokenizers: {0}")]
    Tokenizers(#[source] tokenizers::Error),
}

/// DAM's tokenizer (see the module documentation for the exact semantics).
#[derive(Clone)]
pub struct DamTokenizer {
    backend: Backend,
    bos: u32,
    eos: u32,
    unk: u32,
    pad: Option<u32>,
    /// transformers' `all_special_ids`: skipped by `decode(.., true)`.
    special_ids: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
}

#[derive(Clone)]
enum Backend {
    SentencePiece {
        model: Box<SpmModel>,
        /// Texts split out before SentencePiece, longest first.
        split_tokens: Vec<(String, u32)>,
        add_prefix_space: bool,
    },
    Json(Box<tokenizers::Tokenizer>),
}

impl std::fmt::Debug for DamTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.backend {
            Backend::SentencePiece { .. } => "tokenizer.model (SentencePiece BPE)",
            Backend::Json(_) => "tokenizer.json",
        };
        f.debug_struct("DamTokenizer")
            .field("backend", &backend)
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("unk", &self.unk)
            .field("pad", &self.pad)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .finish()
    }
}

impl DamTokenizer {
    /// Loads the tokenizer of an LLM folder (`<checkpoint>/llm`): `tokenizer.json` if present,
    /// else `tokenizer.model`, with `tokenizer_config.json` / `special_tokens_map.json` when
    /// present.
    pub fn from_dir(llm_dir: &Path) -> Result<Self, TokenizerError> {
        let json = llm_dir.join(TOKENIZER_JSON);
        if json.is_file() {
            return Self::from_tokenizer_json(&json);
        }
        let model = llm_dir.join(TOKENIZER_MODEL);
        if !model.is_file() {
            return Err(TokenizerError::MissingFile { path: model });
        }
        Self::from_sentencepiece_model(&model)
    }

    /// Loads a SentencePiece `tokenizer.model` file directly (even if a `tokenizer.json` lies
    /// beside it); the configuration files are read from the same folder when present.
    pub fn from_sentencepiece_model(model_path: &Path) -> Result<Self, TokenizerError> {
        if !model_path.is_file() {
            return Err(TokenizerError::MissingFile {
                path: model_path.to_path_buf(),
            });
        }
        let bytes = std::fs::read(model_path).map_err(|source| TokenizerError::Io {
            path: model_path.to_path_buf(),
            source,
        })?;
        let model = SpmModel::from_bytes(&bytes, model_path)?;
        let config = HfConfig::load(model_path.parent().unwrap_or(Path::new(".")))?;
        let specials = config.resolve(
            model_path,
            |token| model.id(token),
            |id| model.piece(id).map(str::to_owned),
        )?;
        let mut split_tokens: Vec<(String, u32)> = specials.all.clone();
        split_tokens.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let backend = Backend::SentencePiece {
            model: Box::new(model),
            split_tokens,
            add_prefix_space: config.add_prefix_space,
        };
        Ok(Self::assemble(backend, &config, specials))
    }

    fn from_tokenizer_json(path: &Path) -> Result<Self, TokenizerError> {
        let tokenizer = tokenizers::Tokenizer::from_file(path).map_err(|error| TokenizerError::InvalidModel {
            path: path.to_path_buf(),
            what: error.to_string(),
        })?;
        let config = HfConfig::load(path.parent().unwrap_or(Path::new(".")))?;
        let specials = config.resolve(
            path,
            |token| tokenizer.token_to_id(token),
            |id| tokenizer.id_to_token(id),
        )?;
        Ok(Self::assemble(Backend::Json(Box::new(tokenizer)), &config, specials))
    }

    fn assemble(backend: Backend, config: &HfConfig, specials: Specials) -> Self {
        Self {
            backend,
            bos: specials.bos,
            eos: specials.eos,
            unk: specials.unk,
            pad: specials.pad,
            special_ids: specials.all.iter().map(|(_, id)| *id).collect(),
            add_bos: config.add_bos_token,
            add_eos: config.add_eos_token,
        }
    }

    /// Token ids of `text`, like `tokenizer(text).input_ids` with
    /// `add_special_tokens`: BOS first when the configuration's `add_bos_token` is on (the
    /// default), EOS last when `add_eos_token` is on (off by default). Without special tokens
    /// an empty text gives no ids. (With `tokenizer.json`, its post-processor decides.)
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        match &self.backend {
            Backend::SentencePiece {
                model,
                split_tokens,
                add_prefix_space,
            } => {
                let mut ids = Vec::new();
                if add_special_tokens && self.add_bos {
                    ids.push(self.bos);
                }
                let body = self.tokenize_sentencepiece(model, split_tokens, *add_prefix_space, text)?;
                ids.extend(body);
                if add_special_tokens && self.add_eos {
                    ids.push(self.eos);
                }
                Ok(ids)
            }
            Backend::Json(tokenizer) => Ok(tokenizer
                .encode(text, add_special_tokens)
                .map_err(TokenizerError::Tokenizers)?
                .get_ids()
                .to_vec()),
        }
    }

    /// Steps 1–5 of the module documentation.
    fn tokenize_sentencepiece(
        &self,
        model: &SpmModel,
        split_tokens: &[(String, u32)],
        add_prefix_space: bool,
        text: &str,
    ) -> Result<Vec<u32>, TokenizerError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let mut prepared = String::with_capacity(text.len() + SPACE.len_utf8());
        if add_prefix_space {
            prepared.push(SPACE);
        }
        prepared.extend(text.chars().map(|c| if c == SPACE { ' ' } else { c }));

        let mut ids = Vec::new();
        let mut rest = prepared.as_str();
        while !rest.is_empty() {
            let Some((start, len, id)) = find_split_token(rest, split_tokens) else {
                model.encode_segment(rest, &mut ids)?;
                break;
            };
            let (before, after) = rest.split_at(start);
            model.encode_segment(before, &mut ids)?;
            ids.push(id);
            rest = after.get(len..).unwrap_or_default();
        }
        if let &[first, second, ..] = ids.as_slice()
            && Some(first) == model.id("\u{2581}")
            && self.special_ids.contains(&second)
        {
            ids.remove(0);
        }
        Ok(ids)
    }

    /// The piece (token string) of each id; ids outside the vocabulary give the `<unk>` piece.
    pub fn tokens(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&id| self.piece(id).or_else(|| self.piece(self.unk)).unwrap_or_default())
            .collect()
    }

    fn piece(&self, id: u32) -> Option<String> {
        match &self.backend {
            Backend::SentencePiece { model, .. } => model.piece(id).map(str::to_owned),
            Backend::Json(tokenizer) => tokenizer.id_to_token(id),
        }
    }

    /// Upstream `tokenizer_image_token(prompt, tokenizer)`: ids of a prompt with one
    /// [`IMAGE_TOKEN_INDEX`] per `<image>` (see the module documentation).
    pub fn tokenize_prompt(&self, prompt: &str) -> Result<Vec<i64>, TokenizerError> {
        let chunks = prompt
            .split(IMAGE_PLACEHOLDER)
            .map(|chunk| self.encode(chunk, true))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::new();
        // Upstream drops the first token of every chunk after the first one exactly when the
        // first chunk starts with BOS (`offset = 1`), and keeps that first BOS.
        let offset = match chunks.first().and_then(|chunk| chunk.first()) {
            Some(&first) if first == self.bos => {
                out.push(i64::from(first));
                1
            }
            _ => 0,
        };
        for (i, chunk) in chunks.iter().enumerate() {
            if i > 0 {
                out.push(IMAGE_TOKEN_INDEX);
            }
            out.extend(chunk.iter().skip(offset).map(|&id| i64::from(id)));
        }
        Ok(out)
    }

    /// Text of `ids`, like `tokenizer.decode(ids, skip_special_tokens=skip_special)` (see the
    /// module documentation); ids outside the vocabulary are ignored. Upstream strips the
    /// result with [`python_strip`] afterwards; this does not.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        match &self.backend {
            Backend::SentencePiece {
                model,
                add_prefix_space,
                ..
            } => model.hf_decode(ids, skip_special, &self.special_ids, *add_prefix_space),
            Backend::Json(tokenizer) => tokenizer.decode(ids, skip_special).unwrap_or_else(|error| {
                tracing::warn!("tokenizer.json decode failed: {error}");
                String::new()
            }),
        }
    }

    /// An incremental decoder for generated ids (special tokens skipped); see [`StreamDecoder`].
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        match &self.backend {
            Backend::SentencePiece {
                model,
                add_prefix_space,
                ..
            } => StreamDecoder::sentencepiece(model, &self.special_ids, *add_prefix_space),
            Backend::Json(tokenizer) => StreamDecoder::json(tokenizer),
        }
    }

    /// Id of the BOS token `<s>`.
    pub fn bos_id(&self) -> u32 {
        self.bos
    }

    /// Id of the EOS token `</s>` (generation stops on it).
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// Id of the padding token; the `<unk>` id when the configuration names none (DAM's
    /// `special_tokens_map.json` names `<unk>` anyway).
    pub fn pad_id(&self) -> u32 {
        self.pad.unwrap_or(self.unk)
    }

    /// Id of `<unk>`.
    pub fn unk_id(&self) -> u32 {
        self.unk
    }

    /// Number of pieces (32000 for LLaMA-2; the LLM's `vocab_size`).
    pub fn vocab_size(&self) -> usize {
        match &self.backend {
            Backend::SentencePiece { model, .. } => model.vocab_size(),
            Backend::Json(tokenizer) => tokenizer.get_vocab_size(true),
        }
    }
}

/// Earliest occurrence of any split token in `text` (the longest one at that position):
/// `(byte start, byte length, id)`.
fn find_split_token(text: &str, tokens: &[(String, u32)]) -> Option<(usize, usize, u32)> {
    let mut best: Option<(usize, usize, u32)> = None;
    for (content, id) in tokens {
        if let Some(start) = text.find(content.as_str()) {
            let better = match best {
                None => true,
                Some((best_start, best_len, _)) => {
                    start < best_start || (start == best_start && content.len() > best_len)
                }
            };
            if better {
                best = Some((start, content.len(), *id));
            }
        }
    }
    best
}

/// `s` without the leading and trailing characters that Python's `str.strip()` (no
/// argument) removes: `str.isspace()` characters, i.e. U+0009..U+000D, U+001C..U+001F, space,
/// U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F and U+3000. Unlike
/// `str::trim`, this strips U+001C..U+001F (information separators).
pub fn python_strip(s: &str) -> &str {
    s.trim_matches(is_python_whitespace)
}

/// Whether Python's `str.isspace()` holds for `c` (what [`python_strip`] strips).
pub fn is_python_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | '\u{1c}'..='\u{1f}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// What the two Hugging Face configuration files say about the tokenizer.
struct HfConfig {
    add_bos_token: bool,
    add_eos_token: bool,
    add_prefix_space: bool,
    bos: Option<String>,
    eos: Option<String>,
    unk: Option<String>,
    pad: Option<String>,
    additional: Vec<String>,
    /// `added_tokens_decoder`: (id, content).
    added: Vec<(u32, String)>,
}

/// Special token ids resolved against a vocabulary.
struct Specials {
    bos: u32,
    eos: u32,
    unk: u32,
    pad: Option<u32>,
    /// (content, id) of every special token, deduplicated: transformers' `all_special_tokens`.
    all: Vec<(String, u32)>,
}

impl HfConfig {
    fn load(dir: &Path) -> Result<Self, TokenizerError> {
        let mut config = Self {
            add_bos_token: true,
            add_eos_token: false,
            add_prefix_space: true,
            bos: Some("<s>".into()),
            eos: Some("</s>".into()),
            unk: Some("<unk>".into()),
            pad: None,
            additional: Vec::new(),
            added: Vec::new(),
        };
        let config_path = dir.join(TOKENIZER_CONFIG);
        if let Some(json) = read_json_object(&config_path)? {
            let bad = |what: String| TokenizerError::Config {
                path: config_path.clone(),
                what,
            };
            // transformers passes these to `LlamaTokenizer.__init__` as they are, so an
            // explicit `null` behaves like `false` there.
            config.add_bos_token = json_flag(&json, "add_bos_token", config.add_bos_token).map_err(&bad)?;
            config.add_eos_token = json_flag(&json, "add_eos_token", config.add_eos_token).map_err(&bad)?;
            config.add_prefix_space = json_flag(&json, "add_prefix_space", config.add_prefix_space).map_err(&bad)?;
            if json_flag(&json, "clean_up_tokenization_spaces", false).map_err(&bad)? {
                return Err(TokenizerError::Unsupported {
                    path: config_path.clone(),
                    what: "clean_up_tokenization_spaces=true".into(),
                });
            }
            if json.get("legacy").and_then(Value::as_bool) == Some(true) {
                tracing::warn!(
                    "{} sets legacy=true; DAM loads the tokenizer with legacy=False, which is what is used",
                    config_path.display()
                );
            }
            config.apply_special_tokens(&json).map_err(&bad)?;
            if let Some(added) = json.get("added_tokens_decoder") {
                let added = added
                    .as_object()
                    .ok_or_else(|| bad("added_tokens_decoder is not an object".into()))?;
                for (id, token) in added {
                    let id: u32 = id
                        .parse()
                        .map_err(|_| bad(format!("added_tokens_decoder key `{id}` is not an id")))?;
                    let content =
                        token_content(token).ok_or_else(|| bad(format!("added token {id} has no content")))?;
                    config.added.push((id, content));
                }
            }
        }
        let map_path = dir.join(SPECIAL_TOKENS_MAP);
        if let Some(json) = read_json_object(&map_path)? {
            config
                .apply_special_tokens(&json)
                .map_err(|what| TokenizerError::Config {
                    path: map_path.clone(),
                    what,
                })?;
        }
        Ok(config)
    }

    fn apply_special_tokens(&mut self, json: &serde_json::Map<String, Value>) -> Result<(), String> {
        for (key, slot) in [
            ("bos_token", &mut self.bos),
            ("eos_token", &mut self.eos),
            ("unk_token", &mut self.unk),
            ("pad_token", &mut self.pad),
        ] {
            match json.get(key) {
                None => {}
                Some(Value::Null) => *slot = None,
                Some(value) => *slot = Some(token_content(value).ok_or_else(|| format!("{key} is not a token"))?),
            }
        }
        if let Some(list) = json.get("additional_special_tokens") {
            let list = list
                .as_array()
                .ok_or_else(|| "additional_special_tokens is not a list".to_owned())?;
            self.additional = list
                .iter()
                .map(|value| token_content(value).ok_or_else(|| "bad additional special token".to_owned()))
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    /// Resolves the special tokens with `to_id`; `to_piece` checks `added_tokens_decoder`.
    fn resolve(
        &self,
        path: &Path,
        to_id: impl Fn(&str) -> Option<u32>,
        to_piece: impl Fn(u32) -> Option<String>,
    ) -> Result<Specials, TokenizerError> {
        let invalid = |what: String| TokenizerError::InvalidModel {
            path: path.to_path_buf(),
            what,
        };
        let lookup = |name: &str, content: &Option<String>| -> Result<Option<(String, u32)>, TokenizerError> {
            let Some(content) = content else {
                return Ok(None);
            };
            let id = to_id(content).ok_or_else(|| invalid(format!("{name} `{content}` is not in the vocabulary")))?;
            Ok(Some((content.clone(), id)))
        };
        let required = |name: &str, content: &Option<String>| -> Result<(String, u32), TokenizerError> {
            lookup(name, content)?.ok_or_else(|| invalid(format!("the configuration sets no {name}")))
        };
        let bos = required("bos_token", &self.bos)?;
        let eos = required("eos_token", &self.eos)?;
        let unk = required("unk_token", &self.unk)?;
        let pad = lookup("pad_token", &self.pad)?;
        let mut all: Vec<(String, u32)> = Vec::new();
        let mut push = |token: (String, u32)| {
            if !token.0.is_empty() && !all.contains(&token) {
                all.push(token);
            }
        };
        push(bos.clone());
        push(eos.clone());
        push(unk.clone());
        if let Some(pad) = &pad {
            push(pad.clone());
        }
        for content in &self.additional {
            if let Some(token) = lookup("additional special token", &Some(content.clone()))? {
                push(token);
            }
        }
        for (id, content) in &self.added {
            if to_piece(*id).as_deref() != Some(content.as_str()) {
                return Err(TokenizerError::Unsupported {
                    path: path.to_path_buf(),
                    what: format!("added token {id} `{content}` is not the vocabulary's piece {id}"),
                });
            }
            if !all.iter().any(|(c, i)| c == content && i == id) {
                return Err(TokenizerError::Unsupported {
                    path: path.to_path_buf(),
                    what: format!("added token {id} `{content}` is not one of the special tokens"),
                });
            }
        }
        Ok(Specials {
            bos: bos.1,
            eos: eos.1,
            unk: unk.1,
            pad: pad.map(|(_, id)| id),
            all,
        })
    }
}

/// The JSON object in `path`, `None` when the file does not exist.
fn read_json_object(path: &Path) -> Result<Option<serde_json::Map<String, Value>>, TokenizerError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(TokenizerError::Config {
            path: path.to_path_buf(),
            what: "not a JSON object".into(),
        }),
        Err(error) => Err(TokenizerError::Config {
            path: path.to_path_buf(),
            what: error.to_string(),
        }),
    }
}

/// A boolean setting: absent → `default`, `null` → false.
fn json_flag(json: &serde_json::Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match json.get(key) {
        None => Ok(default),
        Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(other) => Err(format!("{key} is not a boolean: {other}")),
    }
}

/// A token given as `"<s>"` or as `{"content": "<s>", ...}`.
fn token_content(value: &Value) -> Option<String> {
    match value {
        Value::String(content) => Some(content.clone()),
        Value::Object(map) => map.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}
