//! Text generation on top of a [`Session`]: stop strings, the final text as upstream builds it
//! (`decode(skip_special_tokens=True)` then Python's `strip()`), and streaming as text deltas.

use burn::tensor::Tensor;

use crate::error::{LlmError, Result};
use crate::model::LlamaModel;
use crate::sampling::Sampling;
use crate::session::{Session, SessionOptions, StopReason, Timings};
use crate::tokenizer::{DamTokenizer, StreamDecoder, is_python_whitespace, python_strip};

/// Generation settings. Defaults are the original's: sampling with temperature 0.2, top-k 50,
/// top-p 0.5, up to 512 new tokens, stop at EOS.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationOptions {
    /// Most tokens to generate per sequence (EOS not counted).
    pub max_new_tokens: usize,
    /// Greedy or sampled choice of each token.
    pub sampling: Sampling,
    /// Extra stop strings; generation stops when one appears and the text is cut before it.
    pub stop_strings: Vec<String>,
    /// Never stop at EOS (benchmarks).
    pub suppress_eos: bool,
    /// Keep every step's logits (parity tests, `--dump`).
    pub record_logits: bool,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 512,
            sampling: Sampling::default(),
            stop_strings: Vec::new(),
            suppress_eos: false,
            record_logits: false,
        }
    }
}

impl GenerationOptions {
    /// Argmax decoding of up to `max_new_tokens` tokens, the other settings as by default
    /// (what the reference fixtures were generated with).
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            max_new_tokens,
            sampling: Sampling::Greedy,
            ..Self::default()
        }
    }

    /// Checks the settings before any work: at least one new token (transformers' `generate`
    /// refuses `max_new_tokens=0` too) and the sampling ranges.
    pub fn validate(&self) -> Result<()> {
        check_options(self.max_new_tokens, &self.sampling)
    }

    fn session_options(&self, tokenizer: &DamTokenizer) -> SessionOptions {
        SessionOptions {
            max_new_tokens: self.max_new_tokens,
            sampling: self.sampling,
            eos: vec![tokenizer.eos_id()],
            suppress_eos: self.suppress_eos,
            record_logits: self.record_logits,
            lookahead: crate::session::DEFAULT_LOOKAHEAD,
            prompt_multiple: crate::session::DEFAULT_PROMPT_MULTIPLE,
            cache_multiple: crate::session::DEFAULT_CACHE_MULTIPLE,
        }
    }
}

/// The checks of [`GenerationOptions::validate`], also made by [`Session::new`]:
/// `max_new_tokens` at least 1 (a session always chooses one token from the prompt's logits,
/// so 0 could only be honoured by not generating at all; upstream raises instead) and
/// [`Sampling::validate`].
pub(crate) fn check_options(max_new_tokens: usize, sampling: &Sampling) -> Result<()> {
    if max_new_tokens == 0 {
        return Err(LlmError::BadOptions("max_new_tokens must be at least 1, got 0".into()));
    }
    sampling.validate().map_err(LlmError::BadOptions)
}

/// One sequence's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// Generated ids (EOS not included).
    pub token_ids: Vec<u32>,
    /// The description: decoded without special tokens, cut at a stop string, stripped.
    pub text: String,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Timings of the whole batch this sequence was part of.
    pub timings: Timings,
    /// Logits `[V]` of every step (with `record_logits`).
    pub step_logits: Vec<Vec<f32>>,
}

/// The final text of generated ids: upstream's `batch_decode(skip_special_tokens=True)`, cut at
/// the first stop string, then `strip()`.
pub fn final_text(tokenizer: &DamTokenizer, ids: &[u32], stop_strings: &[String]) -> (String, Option<String>) {
    let text = tokenizer.decode(ids, true);
    match first_stop(&text, stop_strings) {
        Some((at, s)) => (python_strip(&text[..at]).to_string(), Some(s)),
        None => (python_strip(&text).to_string(), None),
    }
}

fn first_stop(text: &str, stop_strings: &[String]) -> Option<(usize, String)> {
    stop_strings
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.clone())))
        .min_by_key(|(at, _)| *at)
}

/// Generates for a batch of spliced prompts (`[P_i, D]` each) in one batched decode.
pub fn generate(
    model: &LlamaModel,
    tokenizer: &DamTokenizer,
    prompts: Vec<Tensor<2>>,
    options: &GenerationOptions,
) -> Result<Vec<Generation>> {
    let mut session = Session::new(model, prompts, options.session_options(tokenizer))?;
    while session.step()?.is_some() {
        if options.stop_strings.is_empty() {
            continue;
        }
        for i in 0..session.batch_size() {
            if session.finished()[i].is_none() {
                let text = tokenizer.decode(&session.tokens()[i], true);
                if let Some((_, s)) = first_stop(&text, &options.stop_strings) {
                    session.stop(i, StopReason::StopString(s));
                }
            }
        }
    }
    let timings = session.timings();
    Ok((0..session.batch_size())
        .map(|i| {
            let ids = session.tokens()[i].clone();
            let (text, _) = final_text(tokenizer, &ids, &options.stop_strings);
            Generation {
                token_ids: ids,
                text,
                stop_reason: session.finished()[i].clone().unwrap_or(StopReason::MaxTokens),
                timings,
                step_logits: session.step_logits()[i].clone(),
            }
        })
        .collect())
}

/// Streaming generation of one sequence: an iterator of text deltas.
///
/// Each item is `Ok(delta)`, or once `Err` when the device fails (see [`Session::step`]);
/// the stream ends after an error.
///
/// The deltas concatenate to exactly [`Generation::text`] of [`TextStream::finish`]: leading
/// whitespace is dropped and trailing whitespace held back (the final text is stripped), text
/// that could start a stop string is held until it is known not to, and byte-fallback tokens
/// are held until they complete a UTF-8 character.
pub struct TextStream<'a> {
    session: Session<'a>,
    decoder: StreamDecoder<'a>,
    tokenizer: &'a DamTokenizer,
    stop_strings: Vec<String>,
    /// Decoded text so far (before stripping).
    text: String,
    /// Bytes of `text` already emitted (after the leading whitespace).
    emitted: usize,
    /// Start of the text proper (leading whitespace skipped).
    start: Option<usize>,
    done: bool,
    /// The device's error the stream ended on (handed out by `next`), as text: `finish`
    /// reports it too (`LlmError` is not `Clone`).
    failed: Option<String>,
}

impl<'a> TextStream<'a> {
    /// Prefills `prompt` (`[P, D]`) and returns the stream.
    pub fn new(
        model: &'a LlamaModel,
        tokenizer: &'a DamTokenizer,
        prompt: Tensor<2>,
        options: &GenerationOptions,
    ) -> Result<Self> {
        Ok(Self {
            // One token at a time: a stream hands each token out as soon as it exists.
            session: Session::new(
                model,
                vec![prompt],
                SessionOptions {
                    lookahead: 1,
                    ..options.session_options(tokenizer)
                },
            )?,
            decoder: tokenizer.stream_decoder(),
            tokenizer,
            stop_strings: options.stop_strings.iter().filter(|s| !s.is_empty()).cloned().collect(),
            text: String::new(),
            emitted: 0,
            start: None,
            done: false,
            failed: None,
        })
    }

    /// Longest suffix of `text` that is a proper prefix of a stop string.
    fn held_for_stop(&self, text: &str) -> usize {
        self.stop_strings
            .iter()
            .map(|s| {
                (1..s.len())
                    .rev()
                    .find(|&n| s.is_char_boundary(n) && text.ends_with(&s[..n]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0)
    }

    /// Emits what is safe to emit of `self.text`.
    fn release(&mut self, finished: bool) -> Option<String> {
        let start = *self.start.get_or_insert(0);
        let body = &self.text[start..];
        let lead = body.len() - body.trim_start_matches(is_python_whitespace).len();
        if self.emitted == 0 && lead > 0 {
            self.start = Some(start + lead);
        }
        let start = self.start.unwrap_or(0);
        let mut end = self.text.len();
        if let Some((at, _)) = first_stop(&self.text[start..], &self.stop_strings) {
            end = start + at;
        } else if !finished {
            end -= self.held_for_stop(&self.text[start..]);
        }
        // Trailing whitespace waits: it is dropped if nothing follows it.
        let candidate = &self.text[start..end];
        end = start + candidate.trim_end_matches(is_python_whitespace).len();
        let from = start + self.emitted;
        if end > from {
            let delta = self.text[from..end].to_string();
            self.emitted = end - start;
            Some(delta)
        } else {
            None
        }
    }

    /// Runs the stream to the end and returns the result; its `text` equals the concatenated
    /// deltas (those already taken and the rest).
    ///
    /// # Errors
    /// The device's failure, as [`Session::step`] reports it — also when an earlier item of
    /// the stream already handed it out (the generation is incomplete then).
    pub fn finish(mut self) -> Result<Generation> {
        for delta in self.by_ref() {
            delta?;
        }
        if let Some(error) = self.failed {
            return Err(LlmError::Device(format!(
                "the stream ended on a device error (an earlier item); the generation is incomplete: {error}"
            )));
        }
        let ids = self.session.tokens()[0].clone();
        let (text, _) = final_text(self.tokenizer, &ids, &self.stop_strings);
        Ok(Generation {
            token_ids: ids,
            text,
            stop_reason: self.session.finished()[0].clone().unwrap_or(StopReason::MaxTokens),
            timings: self.session.timings(),
            step_logits: self.session.step_logits()[0].clone(),
        })
    }
}

impl Iterator for TextStream<'_> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        while !self.done {
            let step = match self.session.step() {
                Ok(step) => step,
                Err(e) => {
                    self.done = true;
                    self.failed = Some(e.to_string());
                    return Some(Err(e));
                }
            };
            match step {
                Some(tokens) => {
                    if let Some(id) = tokens[0]
                        && self.session.finished()[0] != Some(StopReason::Eos)
                        && let Some(piece) = self.decoder.push(id)
                    {
                        self.text.push_str(&piece);
                        let start = self.start.unwrap_or(0);
                        if let Some((_, s)) = first_stop(&self.text[start..], &self.stop_strings) {
                            self.session.stop(0, StopReason::StopString(s));
                        }
                    }
                    if self.session.is_done() {
                        continue;
                    }
                    if let Some(delta) = self.release(false) {
                        return Some(Ok(delta));
                    }
                }
                None => {
                    self.done = true;
                    let rest = std::mem::replace(&mut self.decoder, self.tokenizer.stream_decoder()).finish();
                    self.text.push_str(&rest);
                    return self.release(true).map(Ok);
                }
            }
        }
        None
    }
}
