//! SentencePiece BPE `tokenizer.model` → `tokenizers` [`BPE`], plus sentencepiece's decoding rules.
//!
//! Hand-written here: reading the protobuf, checking that the model is one whose encoding the
//! conversion reproduces, deriving the merge list from the piece scores, and sentencepiece's
//! piece-to-text rules (byte pieces, control pieces, unknown pieces, U+FFFD placement). The BPE
//! merge loop itself is the `tokenizers` crate's.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use prost::Message;
use tokenizers::Model;
use tokenizers::models::bpe::{BPE, Merges, Vocab};

use super::TokenizerError;
use super::proto::{ModelProto, model_type, piece_type};

/// SentencePiece's whitespace meta symbol `▁` (U+2581).
pub(super) const SPACE: char = '\u{2581}';
const REPLACEMENT: char = '\u{FFFD}';

/// What a vocabulary entry is, as far as decoding is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceKind {
    Normal,
    Unknown,
    Control,
    Byte(u8),
}

/// What sentencepiece's decoder makes of one piece string.
pub(super) enum Surface<'a> {
    /// Text to append (ends a run of byte pieces).
    Text(Cow<'a, str>),
    /// One byte of a byte-fallback run.
    Byte(u8),
}

/// A SentencePiece BPE model converted to a `tokenizers` BPE.
#[derive(Clone)]
pub(super) struct SpmModel {
    bpe: BPE,
    /// Piece string per id.
    pieces: Vec<String>,
    kinds: Vec<PieceKind>,
    ids: HashMap<String, u32>,
    unk_surface: String,
    num_merges: usize,
}

impl std::fmt::Debug for SpmModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpmModel")
            .field("pieces", &self.pieces.len())
            .field("merges", &self.num_merges)
            .finish_non_exhaustive()
    }
}

impl SpmModel {
    /// Parses a serialized `ModelProto` and builds the BPE. `path` is only used in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, TokenizerError> {
        let proto = ModelProto::decode(bytes).map_err(|source| TokenizerError::Protobuf {
            path: path.to_path_buf(),
            source,
        })?;
        let unsupported = |what: String| TokenizerError::Unsupported {
            path: path.to_path_buf(),
            what,
        };
        let invalid = |what: String| TokenizerError::InvalidModel {
            path: path.to_path_buf(),
            what,
        };

        let trainer = proto.trainer_spec.unwrap_or_default();
        let normalizer = proto.normalizer_spec.unwrap_or_default();
        if trainer.model_type() != model_type::BPE {
            return Err(unsupported(format!(
                "SentencePiece model type `{}` (only BPE models such as LLaMA's are supported)",
                model_type::name(trainer.model_type())
            )));
        }
        if !trainer.byte_fallback() {
            return Err(unsupported("a BPE model without byte_fallback".into()));
        }
        if trainer.treat_whitespace_as_suffix() {
            return Err(unsupported("treat_whitespace_as_suffix=true".into()));
        }
        if normalizer.has_rules() {
            return Err(unsupported(format!(
                "normalizer `{}` with character rules (only the identity normalizer of LLaMA-style models)",
                normalizer.name()
            )));
        }
        if normalizer.remove_extra_whitespaces() {
            return Err(unsupported("remove_extra_whitespaces=true".into()));
        }
        if !normalizer.escape_whitespaces() {
            return Err(unsupported("escape_whitespaces=false".into()));
        }
        if proto.pieces.is_empty() {
            return Err(invalid("the model has no pieces".into()));
        }
        if u32::try_from(proto.pieces.len()).is_err() {
            return Err(invalid("too many pieces".into()));
        }

        let mut pieces = Vec::with_capacity(proto.pieces.len());
        let mut kinds = Vec::with_capacity(proto.pieces.len());
        let mut scores = Vec::with_capacity(proto.pieces.len());
        let mut ids = HashMap::with_capacity(proto.pieces.len());
        let mut unk_piece = None;
        let mut byte_seen = [false; 256];
        for (id, entry) in (0u32..).zip(&proto.pieces) {
            let piece = entry.piece.clone().unwrap_or_default();
            if piece.is_empty() {
                return Err(invalid(format!("piece {id} is empty")));
            }
            let kind = match entry.kind() {
                piece_type::NORMAL => PieceKind::Normal,
                piece_type::UNKNOWN => {
                    if unk_piece.replace(piece.clone()).is_some() {
                        return Err(invalid("more than one UNKNOWN piece".into()));
                    }
                    PieceKind::Unknown
                }
                piece_type::CONTROL => PieceKind::Control,
                piece_type::BYTE => {
                    let byte = parse_byte_piece(&piece)
                        .ok_or_else(|| invalid(format!("byte piece {id} `{piece}` is not of the form <0xNN>")))?;
                    byte_seen[usize::from(byte)] = true;
                    PieceKind::Byte(byte)
                }
                piece_type::USER_DEFINED => {
                    return Err(unsupported(format!("user-defined piece {id} `{piece}`")));
                }
                piece_type::UNUSED => return Err(unsupported(format!("unused piece {id} `{piece}`"))),
                other => return Err(invalid(format!("piece {id} `{piece}` has unknown type {other}"))),
            };
            if ids.insert(piece.clone(), id).is_some() {
                return Err(invalid(format!("piece `{piece}` appears twice")));
            }
            pieces.push(piece);
            kinds.push(kind);
            scores.push(entry.score.unwrap_or(0.0));
        }
        let unk_piece = unk_piece.ok_or_else(|| invalid("no UNKNOWN (<unk>) piece".into()))?;
        if let Some(missing) = byte_seen.iter().position(|seen| !seen) {
            return Err(invalid(format!(
                "byte_fallback is on but the byte piece <0x{missing:02X}> is missing"
            )));
        }

        let merges = derive_merges(&pieces, &kinds, &scores, &ids);
        let num_merges = merges.len();
        let vocab: Vocab = ids.iter().map(|(piece, &id)| (piece.clone(), id)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .unk_token(unk_piece)
            .byte_fallback(true)
            .build()
            .map_err(TokenizerError::Tokenizers)?;
        Ok(Self {
            bpe,
            pieces,
            kinds,
            ids,
            unk_surface: trainer.unk_surface.clone().unwrap_or_else(|| " \u{2047} ".to_owned()),
            num_merges,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The piece of `id`, `None` outside the vocabulary.
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(usize::try_from(id).ok()?).map(String::as_str)
    }

    /// The id of a piece string.
    pub fn id(&self, piece: &str) -> Option<u32> {
        self.ids.get(piece).copied()
    }

    /// SentencePiece-encodes one text segment (no special tokens in it) without any dummy
    /// prefix: spaces become `▁` (the identity normalizer does nothing else), then the whole
    /// segment is one BPE word, with byte fallback for characters outside the vocabulary.
    pub fn encode_segment(&self, segment: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        if segment.is_empty() {
            return Ok(());
        }
        let normalized = segment.replace(' ', "\u{2581}");
        let tokens = self.bpe.tokenize(&normalized).map_err(TokenizerError::Tokenizers)?;
        out.extend(tokens.iter().map(|token| token.id));
        Ok(())
    }

    /// What sentencepiece's `DecodePieces` makes of one piece string (with HF's `legacy=False`
    /// model, i.e. `add_dummy_prefix` off, and `remove_extra_whitespaces` off, so no leading
    /// `▁` is ever consumed here). A string that is not a piece is returned verbatim (this is
    /// what sentencepiece does for unknown strings other than the `<unk>` piece itself).
    pub fn surface<'a>(&'a self, piece: &'a str) -> Surface<'a> {
        let Some(&id) = self.ids.get(piece) else {
            return Surface::Text(Cow::Borrowed(piece));
        };
        let kind = usize::try_from(id).ok().and_then(|i| self.kinds.get(i)).copied();
        match kind {
            Some(PieceKind::Byte(byte)) => Surface::Byte(byte),
            Some(PieceKind::Control) => Surface::Text(Cow::Borrowed("")),
            Some(PieceKind::Unknown) => Surface::Text(Cow::Borrowed(&self.unk_surface)),
            Some(PieceKind::Normal) | None => {
                if piece.contains(SPACE) {
                    Surface::Text(Cow::Owned(piece.replace(SPACE, " ")))
                } else {
                    Surface::Text(Cow::Borrowed(piece))
                }
            }
        }
    }

    /// sentencepiece's `DecodePieces`: appends the text of `pieces` to `out`.
    fn decode_pieces<'a>(&'a self, pieces: impl IntoIterator<Item = &'a str>, out: &mut String) {
        let mut bytes = Vec::new();
        for piece in pieces {
            match self.surface(piece) {
                Surface::Byte(byte) => bytes.push(byte),
                Surface::Text(text) => {
                    push_sentencepiece_bytes(&bytes, out, true);
                    bytes.clear();
                    out.push_str(&text);
                }
            }
        }
        push_sentencepiece_bytes(&bytes, out, true);
    }

    /// transformers 4.46 slow-tokenizer decoding: `PreTrainedTokenizer._decode` followed by
    /// `LlamaTokenizer.convert_tokens_to_string` with `legacy=False`.
    ///
    /// Special ids are dropped first when `skip_special` (so byte pieces on both sides of a
    /// dropped special id form one byte run); ids outside the vocabulary are dropped always (HF
    /// would raise). The first remaining piece loses one leading `▁` when `add_prefix_space`.
    /// Special pieces that are kept are appended as their piece text, and each run of other
    /// pieces between them is decoded by sentencepiece separately.
    pub fn hf_decode(&self, ids: &[u32], skip_special: bool, special_ids: &[u32], add_prefix_space: bool) -> String {
        let mut tokens: Vec<(u32, &str)> = ids
            .iter()
            .filter(|id| !(skip_special && special_ids.contains(id)))
            .filter_map(|&id| self.piece(id).map(|piece| (id, piece)))
            .collect();
        let Some(first) = tokens.first_mut() else {
            return String::new();
        };
        if add_prefix_space && let Some(rest) = first.1.strip_prefix(SPACE) {
            first.1 = rest;
        }
        let mut out = String::new();
        let mut current: Vec<&str> = Vec::new();
        let mut prev_is_special = false;
        for (i, &(id, token)) in tokens.iter().enumerate() {
            if special_ids.contains(&id) {
                self.decode_pieces(current.drain(..), &mut out);
                out.push_str(token);
                prev_is_special = true;
            } else {
                if prev_is_special && i == 1 && add_prefix_space && !token.starts_with(SPACE) {
                    out.push(' ');
                }
                current.push(token);
                prev_is_special = false;
            }
        }
        self.decode_pieces(current, &mut out);
        out
    }
}

/// The merge list of the `SentencePieceExtractor`: every split of a normal piece into two
/// normal pieces, ordered by the merged piece's score (higher first), then its id, then the
/// ids of the left and right parts. Only NORMAL pieces take part: sentencepiece's BPE symbols
/// are characters and merged normal pieces, never byte/control/unknown pieces.
fn derive_merges(pieces: &[String], kinds: &[PieceKind], scores: &[f32], ids: &HashMap<String, u32>) -> Merges {
    let is_normal = |id: u32| usize::try_from(id).ok().and_then(|i| kinds.get(i)) == Some(&PieceKind::Normal);
    let mut ranked: Vec<(f32, u32, u32, u32)> = Vec::new();
    for ((merged, piece), (kind, &score)) in (0u32..).zip(pieces).zip(kinds.iter().zip(scores)) {
        if *kind != PieceKind::Normal {
            continue;
        }
        for (split, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(split);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right))
                && is_normal(l)
                && is_normal(r)
            {
                ranked.push((score, merged, l, r));
            }
        }
    }
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    ranked
        .into_iter()
        .filter_map(|(_, _, l, r)| {
            let left = pieces.get(usize::try_from(l).ok()?)?;
            let right = pieces.get(usize::try_from(r).ok()?)?;
            Some((left.clone(), right.clone()))
        })
        .collect()
}

/// `<0xNN>` (two upper-case hex digits, as sentencepiece writes them) → the byte.
fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Appends a run of byte-fallback bytes decoded the way sentencepiece's decoder does it: at
/// each position a complete, valid UTF-8 character (lead byte of the right length, trail bytes,
/// no overlong form, no surrogate, at most U+10FFFF) is kept whole, and otherwise exactly ONE
/// byte becomes U+FFFD and decoding resumes at the next byte. (This differs from
/// `String::from_utf8_lossy`, which replaces a maximal invalid prefix with a single U+FFFD.)
///
/// With `is_final == false` an incomplete sequence at the end that could still become a
/// valid character is left undecoded. Returns how many bytes were consumed.
pub(super) fn push_sentencepiece_bytes(bytes: &[u8], out: &mut String, is_final: bool) -> usize {
    let mut offset = 0;
    while let Some(rest) = bytes.get(offset..)
        && let Some(&lead) = rest.first()
    {
        let need = utf8_sequence_len(lead);
        if need == 0 {
            out.push(REPLACEMENT);
            offset += 1;
            continue;
        }
        match rest.get(..need) {
            Some(sequence) => match std::str::from_utf8(sequence) {
                Ok(text) => {
                    out.push_str(text);
                    offset += need;
                }
                Err(_) => {
                    out.push(REPLACEMENT);
                    offset += 1;
                }
            },
            None => {
                if !is_final && utf8_prefix_can_complete(rest, need) {
                    break;
                }
                out.push(REPLACEMENT);
                offset += 1;
            }
        }
    }
    offset
}

/// Sequence length announced by a lead byte, by sentencepiece's masks; 0 for a byte that
/// cannot start a character.
fn utf8_sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 0,
    }
}

/// Whether some continuation turns `prefix` (shorter than `need`) into a valid character.
/// Validity beyond the second byte only needs trail bytes, so filling with 0x80 is enough.
fn utf8_prefix_can_complete(prefix: &[u8], need: usize) -> bool {
    let mut buf = [0x80u8; 4];
    let Some(head) = buf.get_mut(..prefix.len()) else {
        return false;
    };
    head.copy_from_slice(prefix);
    let valid = |buf: &[u8; 4]| buf.get(..need).is_some_and(|s| std::str::from_utf8(s).is_ok());
    if prefix.len() >= 2 {
        return valid(&buf);
    }
    (0x80..=0xBF).any(|second| {
        buf[1] = second;
        valid(&buf)
    })
}
