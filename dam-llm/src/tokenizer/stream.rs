//! Incremental decoding of generated ids into text deltas.

use super::spm::{SPACE, SpmModel, Surface, push_sentencepiece_bytes};

/// Turns generated ids into text pieces as they arrive, always skipping special tokens (what
/// upstream's streamer does).
///
/// Concatenating every `push` result and the `finish` result gives exactly
/// [`DamTokenizer::decode`](super::DamTokenizer::decode)`(all ids, true)` (before the caller's
/// [`python_strip`](super::python_strip)); a delta never ends inside a UTF-8 character and
/// never contains a U+FFFD for bytes that a later id completes:
///
/// * byte-fallback pieces (`<0xNN>`) are held until they form a complete character, or until
///   they can no longer form one; in that case each such byte becomes one U+FFFD, exactly where
///   the one-shot decoder puts it (sentencepiece's rule, see the module documentation);
/// * special ids are ignored entirely, like in `decode`, which drops them before joining the
///   pieces: a run of byte pieces interrupted by a special id still forms one character;
/// * the leading-space removal: the slow tokenizer removes one leading `▁` from the first
///   non-special piece of the decoded sequence (the prefix space it added when encoding). The
///   stream applies the same rule to the first non-special id it is given, so a stream started
///   at the first generated id yields the same text as decoding the generated ids at once,
///   without any look-ahead.
///
/// For a folder loaded from `tokenizer.json` the deltas are computed by re-decoding all ids
/// with the `tokenizers` decoder and emitting what was appended (held while the text ends in
/// U+FFFD); `finish` returns the rest.
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    inner: Inner<'a>,
}

#[derive(Debug)]
enum Inner<'a> {
    SentencePiece {
        model: &'a SpmModel,
        special_ids: &'a [u32],
        strip_first_space: bool,
        started: bool,
        pending: Vec<u8>,
    },
    Json {
        tokenizer: &'a tokenizers::Tokenizer,
        ids: Vec<u32>,
        emitted: String,
    },
}

impl<'a> StreamDecoder<'a> {
    pub(super) fn sentencepiece(model: &'a SpmModel, special_ids: &'a [u32], strip_first_space: bool) -> Self {
        Self {
            inner: Inner::SentencePiece {
                model,
                special_ids,
                strip_first_space,
                started: false,
                pending: Vec::new(),
            },
        }
    }

    pub(super) fn json(tokenizer: &'a tokenizers::Tokenizer) -> Self {
        Self {
            inner: Inner::Json {
                tokenizer,
                ids: Vec::new(),
                emitted: String::new(),
            },
        }
    }

    /// Feeds one id; returns the text it completes, if any (`None` when nothing new is ready:
    /// special ids, ids outside the vocabulary, byte pieces of an unfinished character).
    pub fn push(&mut self, id: u32) -> Option<String> {
        match &mut self.inner {
            Inner::SentencePiece {
                model,
                special_ids,
                strip_first_space,
                started,
                pending,
            } => {
                if special_ids.contains(&id) {
                    return None;
                }
                let mut piece = model.piece(id)?;
                if !*started {
                    *started = true;
                    if *strip_first_space {
                        piece = piece.strip_prefix(SPACE).unwrap_or(piece);
                    }
                }
                let mut out = String::new();
                match model.surface(piece) {
                    Surface::Byte(byte) => {
                        pending.push(byte);
                        let used = push_sentencepiece_bytes(pending, &mut out, false);
                        pending.drain(..used.min(pending.len()));
                    }
                    Surface::Text(text) => {
                        push_sentencepiece_bytes(pending, &mut out, true);
                        pending.clear();
                        out.push_str(&text);
                    }
                }
                (!out.is_empty()).then_some(out)
            }
            Inner::Json {
                tokenizer,
                ids,
                emitted,
            } => {
                ids.push(id);
                let text = match tokenizer.decode(ids, true) {
                    Ok(text) => text,
                    Err(error) => {
                        tracing::warn!("tokenizer.json decode failed while streaming: {error}");
                        return None;
                    }
                };
                if text.ends_with('\u{FFFD}') {
                    return None;
                }
                let delta = text.strip_prefix(emitted.as_str())?.to_owned();
                *emitted = text;
                (!delta.is_empty()).then_some(delta)
            }
        }
    }

    /// Ends the stream and returns the text still held back (an unfinished byte sequence
    /// becomes one U+FFFD per byte, as in `decode`).
    pub fn finish(self) -> String {
        match self.inner {
            Inner::SentencePiece { pending, .. } => {
                let mut out = String::new();
                push_sentencepiece_bytes(&pending, &mut out, true);
                out
            }
            Inner::Json {
                tokenizer,
                ids,
                emitted,
            } => {
                let text = match tokenizer.decode(&ids, true) {
                    Ok(text) => text,
                    Err(error) => {
                        tracing::warn!("tokenizer.json decode failed while streaming: {error}");
                        return String::new();
                    }
                };
                match text.strip_prefix(emitted.as_str()) {
                    Some(rest) => rest.to_owned(),
                    // The decoder rewrote text already emitted (cannot happen with
                    // SentencePiece-style decoders); return what follows the common prefix.
                    None => {
                        let common = text
                            .char_indices()
                            .zip(emitted.chars())
                            .take_while(|((_, a), b)| a == b)
                            .last()
                            .map_or(0, |((i, c), _)| i + c.len_utf8());
                        text.get(common..).unwrap_or_default().to_owned()
                    }
                }
            }
        }
    }
}
