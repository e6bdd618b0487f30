//! A batched generation session: prefill of B left-padded prompts, then one decode step at a
//! time over a preallocated KV cache with static shapes.
//!
//! Sequences of different lengths are left-padded so that they all end at the same cache
//! position; padded keys are masked and RoPE positions start at 0 at each sequence's first
//! real token, so a padded sequence computes what it would alone. Padded query rows attend to
//! themselves only (never to nothing), which keeps every value finite.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::error::{LlmError, Result};
use crate::kv_cache::KvCache;
use crate::model::LlamaModel;
use crate::sampling::{Sampler, Sampling, top_k};

/// Why a sequence stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The end-of-sequence token was generated (it is not part of the text).
    Eos,
    /// A stop string appeared in the text (the text is cut before it).
    StopString(String),
    /// `max_new_tokens` were generated.
    MaxTokens,
}

/// Wall-clock time per phase.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Prompt processing up to the first next-token logits.
    pub prefill: Duration,
    /// All decode steps.
    pub decode: Duration,
    /// The part of `decode` the host spent queuing the decode forwards (building the op
    /// graph, uploads, launches). On GPU backends the rest is mostly waiting for the device
    /// at the token read-back, so `decode_enqueue ≈ decode` means the host is the bottleneck.
    pub decode_enqueue: Duration,
    /// Tokens produced by the decode phase (all sequences).
    pub decode_tokens: usize,
}

impl Timings {
    /// Decode throughput in tokens per second (all sequences together).
    pub fn decode_tokens_per_second(&self) -> f64 {
        let s = self.decode.as_secs_f64();
        if s > 0.0 { self.decode_tokens as f64 / s } else { 0.0 }
    }
}

/// Options of the token loop.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Most tokens to generate per sequence.
    pub max_new_tokens: usize,
    /// Greedy or sampled choice of each token (each sequence has its own sampler).
    pub sampling: Sampling,
    /// End-of-sequence ids.
    pub eos: Vec<u32>,
    /// Never pick an EOS id (benchmarks force a fixed number of tokens).
    pub suppress_eos: bool,
    /// Keep every step's logits on the host (parity tests, `--dump`).
    pub record_logits: bool,
    /// Greedy decoding only: how many tokens are chosen on the device, each fed straight
    /// into the next forward, before the host reads them back (in one transfer). With 1 the
    /// host reads every token before queuing the next step; with more, the host can queue
    /// step t+1 while the device still runs step t. A sequence that ends inside a chunk
    /// wastes at most `lookahead − 1` forwards; the ids are the same either way. Ignored (1)
    /// when sampling or recording logits.
    ///
    /// Measured on an H100 with burn 0.22 CUDA (docs/performance.md, 2026-11-26): decode is
    /// bound by the host's time to queue the step's ops, not by the device, and 8 was slower
    /// than 1 (42.8 vs 49.4 tok/s) — the fusion queue grows when nothing flushes it. Hence
    /// the default of 1; the option stays for backends where the device is the bottleneck.
    pub lookahead: usize,
    /// Left-pad the prompts (masked, as for a batch of different lengths) to a multiple of
    /// this many positions; 1 = off. An experiment for the cubecl backends: DAM-3B's prompt
    /// of 247 positions misses the launch constraint of burn-cubecl's tensor-core flash
    /// attention (its query stage of 16 × 2–8 rows must divide the sequence), as SigLIP's
    /// 729 does (`dam_vision::sdpa`); 128 pads it to 256 for ≈ 4 % more prefill rows and 9
    /// more cache slots. Not measured on a GPU yet (docs/performance.md), so
    /// [`DEFAULT_PROMPT_MULTIPLE`] is 1. Skipped when the padded prompt plus the new tokens
    /// would pass `max_position_embeddings`. The ids are those of the unpadded prompt.
    pub prompt_multiple: usize,
    /// Round the KV cache's length (prompt + new tokens, the key length every decode step
    /// attends over with a mask) up to a multiple of this many slots; 1 = exact. The extra
    /// slots are never written and always masked, so the ids and logits are those of an exact
    /// cache (tested). Why: on an H100 (2026-11-26, one process, burn-cubecl's attention) a
    /// 512-slot cache decoded DAM-3B at 115.3 tok/s where the exact 503 slots gave 106.1 —
    /// the only decode shape that differed between the two runs (`--prompt-multiple 128` padded
    /// the prompt 247 → 256, hence the cache to 512); an aligned key length suits the attention
    /// kernel's tiles. [`DEFAULT_CACHE_MULTIPLE`] pads 503 → 512; the padding alone is to be
    /// measured on the next GPU run (`bench --cache-multiple`).
    pub cache_multiple: usize,
}

/// Default [`SessionOptions::lookahead`] (see there for why it is 1).
pub const DEFAULT_LOOKAHEAD: usize = 1;

/// Default [`SessionOptions::prompt_multiple`]: no padding.
pub const DEFAULT_PROMPT_MULTIPLE: usize = 1;

/// Default [`SessionOptions::cache_multiple`] (see there).
pub const DEFAULT_CACHE_MULTIPLE: usize = 64;

/// State of one generation over a batch.
pub struct Session<'a> {
    model: &'a LlamaModel,
    device: Device,
    cache: KvCache,
    pads: Vec<usize>,
    /// Cache position of the next token to write.
    pos: usize,
    logits: Option<Tensor<2>>,
    samplers: Vec<Option<Sampler>>,
    options: SessionOptions,
    finished: Vec<Option<StopReason>>,
    tokens: Vec<Vec<u32>>,
    step_logits: Vec<Vec<Vec<f32>>>,
    timings: Timings,
    /// Tokens chosen on the device and read back, not yet handed out (lookahead).
    ready: VecDeque<Vec<u32>>,
    /// The recorded decode step (fused decoder on a CUDA device), once captured.
    #[cfg(feature = "cube")]
    graph: crate::decode_graph::GraphState,
}

impl<'a> Session<'a> {
    /// Prefills `prompts` (each `[P_i, D]`, already spliced) and computes the first logits.
    pub fn new(model: &'a LlamaModel, prompts: Vec<Tensor<2>>, options: SessionOptions) -> Result<Self> {
        if prompts.is_empty() {
            return Err(LlmError::EmptyInput);
        }
        crate::generate::check_options(options.max_new_tokens, &options.sampling)?;
        let start = Instant::now();
        let device = model.device();
        let b = prompts.len();
        let lens: Vec<usize> = prompts.iter().map(|p| p.dims()[0]).collect();
        if lens.contains(&0) {
            return Err(LlmError::EmptyInput);
        }
        let d = model.hidden_size();
        if let Some((index, p)) = prompts.iter().enumerate().find(|(_, p)| p.dims()[1] != d) {
            return Err(LlmError::PromptShape {
                index,
                found: p.dims().to_vec(),
                hidden: d,
            });
        }
        let longest = *lens.iter().max().expect("non-empty");
        let max_pos = model.config.max_position_embeddings;
        if longest + options.max_new_tokens > max_pos {
            return Err(LlmError::TooLong {
                prompt: longest,
                new_tokens: options.max_new_tokens,
                max: max_pos,
            });
        }
        // Positions in the batch (and cache slots before the new tokens), padding included.
        let p = match longest.next_multiple_of(options.prompt_multiple.max(1)) {
            padded if padded + options.max_new_tokens <= max_pos => padded,
            _ => longest,
        };
        // Cache slots past `p + max_new_tokens` are never written and always masked.
        let max_len = (p + options.max_new_tokens).next_multiple_of(options.cache_multiple.max(1));
        let pads: Vec<usize> = lens.iter().map(|&l| p - l).collect();
        let embeds: Vec<Tensor<2>> = prompts
            .into_iter()
            .zip(&pads)
            .map(|(e, &pad)| {
                if pad == 0 {
                    e
                } else {
                    let zeros = Tensor::zeros([pad, d], (&device, e.dtype()));
                    Tensor::cat(vec![zeros, e], 0)
                }
            })
            .collect();
        let embeds: Tensor<3> = Tensor::stack(embeds, 0);

        let positions: Vec<i64> = pads
            .iter()
            .flat_map(|&pad| (0..p).map(move |i| i.saturating_sub(pad) as i64))
            .collect();
        let positions = Tensor::<2, Int>::from_data(TensorData::new(positions, [b, p]), &device);
        let mask = if pads.iter().all(|&x| x == 0) {
            None
        } else {
            let mut m = Vec::with_capacity(b * p * p);
            for &pad in &pads {
                for i in 0..p {
                    // Hidden: future keys and padding, except a query's own key.
                    m.extend((0..p).map(|j| j != i && (j > i || j < pad)));
                }
            }
            Some(Tensor::<4, Bool>::from_data(TensorData::new(m, [b, 1, p, p]), &device))
        };
        let mut cache = model.new_cache(b, max_len);
        let hidden = model.forward(embeds, positions, &mut cache, 0, p, mask);
        let last = hidden.narrow(1, p - 1, 1).reshape([b, d]);
        let logits = model.logits(last);

        let samplers = match options.sampling {
            Sampling::Greedy => vec![None; b],
            Sampling::Sample(params) => vec![Some(Sampler::new(params)); b],
        };
        let mut session = Self {
            model,
            device,
            cache,
            pads,
            pos: p,
            logits: Some(logits),
            samplers,
            options,
            finished: vec![None; b],
            tokens: vec![Vec::new(); b],
            step_logits: vec![Vec::new(); b],
            timings: Timings::default(),
            ready: VecDeque::new(),
            #[cfg(feature = "cube")]
            graph: crate::decode_graph::GraphState::new(dam_core::graph::enabled()),
        };
        // GPU backends queue work lazily: wait for the prefill so its time is not counted as
        // the first decode step's.
        session.device.sync().map_err(|e| LlmError::Device(format!("{e:?}")))?;
        session.timings.prefill = start.elapsed();
        Ok(session)
    }

    /// Number of sequences.
    pub fn batch_size(&self) -> usize {
        self.tokens.len()
    }

    /// Key slots per sequence in the KV cache (see [`SessionOptions::cache_multiple`]).
    pub fn cache_len(&self) -> usize {
        self.cache.max_len
    }

    /// Generated ids so far, per sequence.
    pub fn tokens(&self) -> &[Vec<u32>] {
        &self.tokens
    }

    /// Why each sequence stopped (`None` while running).
    pub fn finished(&self) -> &[Option<StopReason>] {
        &self.finished
    }

    /// Marks a running sequence stopped (e.g. a stop string found by the caller). Returns
    /// whether it was running; a sequence index outside the batch stops nothing.
    pub fn stop(&mut self, seq: usize, reason: StopReason) -> bool {
        match self.finished.get_mut(seq) {
            Some(f @ None) => {
                *f = Some(reason);
                true
            }
            _ => false,
        }
    }

    /// Whether every sequence has stopped.
    pub fn is_done(&self) -> bool {
        self.finished.iter().all(Option::is_some)
    }

    /// Per-step logits per sequence (with `record_logits`).
    pub fn step_logits(&self) -> &[Vec<Vec<f32>>] {
        &self.step_logits
    }

    /// Wall-clock time of the prefill and of the decode steps so far.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Whether decode steps replay a recorded step (see `dam_llm::decode_graph`, CUDA builds only).
    pub fn decode_recorded(&self) -> bool {
        #[cfg(feature = "cube")]
        {
            self.graph.is_recorded()
        }
        #[cfg(not(feature = "cube"))]
        {
            false
        }
    }

    /// Chooses the next token of every running sequence and advances the model. Returns the
    /// new token per sequence (`None` for sequences already stopped), or `Ok(None)` when all
    /// are.
    ///
    /// # Errors
    /// [`LlmError::Device`] when the device fails: reading back the chosen ids (or the logits
    /// they come from) is where a GPU backend reports a failed kernel or an allocation it
    /// could not make, e.g. a batch too large for the card's memory. Drop the session then:
    /// its cache and logits are in an unknown state.
    pub fn step(&mut self) -> Result<Option<Vec<Option<u32>>>> {
        if self.is_done() {
            return Ok(None);
        }
        let start = Instant::now();
        let lookahead = self.lookahead();
        let chosen = if lookahead > 1 {
            if self.ready.is_empty() {
                self.fill(lookahead)?;
            }
            self.ready.pop_front().ok_or_else(|| spent("no tokens came back"))?
        } else {
            match self.recorded_choice() {
                Some(ids) => ids,
                None => {
                    let logits = self.take_logits()?;
                    self.choose(logits)?
                }
            }
        };
        let b = self.batch_size();
        let mut out = vec![None; b];
        for (i, &tok) in chosen.iter().enumerate() {
            if self.finished[i].is_some() {
                continue;
            }
            out[i] = Some(tok);
            if self.options.eos.contains(&tok) && !self.options.suppress_eos {
                self.finished[i] = Some(StopReason::Eos);
            } else {
                self.tokens[i].push(tok);
                self.timings.decode_tokens += 1;
                if self.tokens[i].len() >= self.options.max_new_tokens {
                    self.finished[i] = Some(StopReason::MaxTokens);
                }
            }
        }
        if lookahead == 1 && !self.is_done() {
            let t = Instant::now();
            if !self.advance_recorded(&chosen) {
                let ids = self.upload_ids(&chosen);
                self.advance(ids);
            }
            self.timings.decode_enqueue += t.elapsed();
        }
        self.timings.decode += start.elapsed();
        Ok(Some(out))
    }

    /// The logits the next choice reads (absent only after a failed step).
    fn take_logits(&mut self) -> Result<Tensor<2>> {
        self.logits.take().ok_or_else(|| spent("an earlier step failed"))
    }

    /// The next tokens from the last replay of the recorded step (`None` when the step was
    /// not replayed: the logits are on `self.logits` instead).
    fn recorded_choice(&mut self) -> Option<Vec<u32>> {
        #[cfg(feature = "cube")]
        {
            use crate::replay_check::HostOutput;
            match self.graph.take()? {
                HostOutput::Ids(ids) => Some(ids),
                HostOutput::Candidates(candidates) => Some(self.sample_candidates(&candidates)),
            }
        }
        #[cfg(not(feature = "cube"))]
        {
            None
        }
    }

    /// Advances through the recorded decode step when it applies (the fused decoder on a
    /// CUDA device, no recorded logits, lookahead 1 — see [`crate::decode_graph`]);
    /// `false` = the caller runs the ordinary step.
    fn advance_recorded(&mut self, chosen: &[u32]) -> bool {
        #[cfg(feature = "cube")]
        {
            let eligible = self.model.fused() && !self.options.record_logits;
            if !eligible {
                return false;
            }
            let vocab = self.model.config.vocab_size as u32;
            let b = chosen.len();
            let mut inputs: Vec<i64> = chosen.iter().map(|&t| t.min(vocab - 1) as i64).collect();
            inputs.extend(self.pads.iter().map(|&pad| (self.pos - pad) as i64));
            inputs.push(self.pos as i64);
            let choice = match self.options.sampling {
                Sampling::Greedy => crate::decode_graph::Choice::Greedy,
                Sampling::Sample(params) => crate::decode_graph::Choice::TopK(params.top_k),
            };
            let step = crate::decode_graph::Step {
                model: self.model,
                cache: &self.cache,
                pads: &self.pads,
                eos: if self.options.suppress_eos {
                    &self.options.eos
                } else {
                    &[]
                },
                batch: b,
                choice,
            };
            if self.graph.advance(&step, inputs, &self.device) {
                self.logits = None;
                self.pos += 1;
                return true;
            }
            false
        }
        #[cfg(not(feature = "cube"))]
        {
            let _ = chosen;
            false
        }
    }

    /// The effective lookahead: greedy without recorded logits can choose on the device.
    fn lookahead(&self) -> usize {
        match self.options.sampling {
            Sampling::Greedy if !self.options.record_logits => self.options.lookahead.max(1),
            _ => 1,
        }
    }

    /// Greedy lookahead: chooses up to `lookahead` tokens on the device, feeding each into the
    /// next forward without a host round trip, then reads them all back at once into `ready`.
    fn fill(&mut self, lookahead: usize) -> Result<()> {
        // Tokens the longest-running sequence may still need; after the last of them no
        // forward is queued (as in the one-token path).
        let need = (0..self.batch_size())
            .filter(|&i| self.finished[i].is_none())
            .map(|i| self.options.max_new_tokens.saturating_sub(self.tokens[i].len()))
            .max()
            .unwrap_or(1)
            .max(1);
        let n = lookahead.min(need);
        let mut chosen = Vec::with_capacity(n);
        for k in 0..n {
            let logits = self.take_logits()?;
            let ids = self.masked_eos(logits).argmax(1).reshape([self.batch_size()]);
            chosen.push(ids.clone());
            if k + 1 < need {
                let t = Instant::now();
                self.advance(ids);
                self.timings.decode_enqueue += t.elapsed();
            }
        }
        let b = self.batch_size();
        let ids = Tensor::cat(chosen, 0)
            .try_into_vec_as::<i64>()
            .map_err(|e| readback("the chosen ids", e))?;
        for row in ids.chunks_exact(b) {
            self.ready.push_back(row.iter().map(|&i| i as u32).collect());
        }
        Ok(())
    }

    /// Logits with the EOS ids set to −∞ when EOS is suppressed.
    fn masked_eos(&self, mut logits: Tensor<2>) -> Tensor<2> {
        if self.options.suppress_eos {
            let [b, v] = logits.dims();
            for &e in &self.options.eos {
                let e = e as usize;
                if e < v {
                    logits = logits.slice_fill([0..b, e..e + 1], f32::NEG_INFINITY);
                }
            }
        }
        logits
    }

    fn choose(&mut self, logits: Tensor<2>) -> Result<Vec<u32>> {
        let logits = self.masked_eos(logits);
        let record = self.options.record_logits;
        let [b, v] = logits.dims();
        let host: Option<Vec<f32>> = (record
            || self
                .samplers
                .iter()
                .any(|s| s.as_ref().is_some_and(|s| s.params().top_k == 0)))
        .then(|| logits.clone().try_into_vec_as::<f32>())
        .transpose()
        .map_err(|e| readback("the logits", e))?;
        if record && let Some(h) = &host {
            for (i, row) in h.chunks_exact(v).enumerate() {
                if self.finished[i].is_none() {
                    self.step_logits[i].push(row.to_vec());
                }
            }
        }
        match self.options.sampling {
            Sampling::Greedy => {
                // Argmax on the device; only the ids come back.
                let ids = logits.argmax(1).reshape([b]);
                Ok(ids
                    .try_into_vec_as::<i64>()
                    .map_err(|e| readback("the chosen ids", e))?
                    .into_iter()
                    .map(|i| i as u32)
                    .collect())
            }
            Sampling::Sample(params) => {
                let candidates: Vec<Vec<(u32, f32)>> = match &host {
                    Some(h) => h.chunks_exact(v).map(|row| top_k(row, params.top_k)).collect(),
                    None => {
                        let k = params.top_k.min(v);
                        let (vals, idx) = logits.topk_with_indices(k, 1);
                        let vals = vals
                            .try_into_vec_as::<f32>()
                            .map_err(|e| readback("the top-k logits", e))?;
                        let idx = idx.try_into_vec_as::<i64>().map_err(|e| readback("the top-k ids", e))?;
                        (0..b)
                            .map(|i| (0..k).map(|j| (idx[i * k + j] as u32, vals[i * k + j])).collect())
                            .collect()
                    }
                };
                Ok(self.sample_candidates(&candidates))
            }
        }
    }

    /// One token per sequence from its `(id, logit)` candidates, with its sampler.
    fn sample_candidates(&mut self, candidates: &[Vec<(u32, f32)>]) -> Vec<u32> {
        candidates
            .iter()
            .zip(self.samplers.iter_mut())
            .map(|(c, s)| s.as_mut().expect("sampler per sequence").sample(c))
            .collect()
    }

    /// Host-chosen ids as a device tensor (clamped to the vocabulary).
    fn upload_ids(&self, chosen: &[u32]) -> Tensor<1, Int> {
        let vocab = self.model.config.vocab_size as u32;
        let ids: Vec<i64> = chosen.iter().map(|&t| t.min(vocab - 1) as i64).collect();
        let n = ids.len();
        Tensor::from_data(TensorData::new(ids, [n]), &self.device)
    }

    /// Feeds the chosen tokens (`[B]` ids on the device) and computes the next logits,
    /// attending over the whole cache buffer with a mask so the shapes are the same at every
    /// step.
    fn advance(&mut self, ids: Tensor<1, Int>) {
        let b = self.batch_size();
        let d = self.model.hidden_size();
        let embeds = self.model.embed_ids(ids).reshape([b, 1, d]);
        let pos = self.pos;
        let positions: Vec<i64> = self.pads.iter().map(|&pad| (pos - pad) as i64).collect();
        let positions = Tensor::<2, Int>::from_data(TensorData::new(positions, [b, 1]), &self.device);
        let l = self.cache.max_len;
        let mask: Vec<bool> = self
            .pads
            .iter()
            .flat_map(|&pad| (0..l).map(move |j| j > pos || j < pad))
            .collect();
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, 1, l]), &self.device);
        let hidden = self
            .model
            .forward(embeds, positions, &mut self.cache, pos, l, Some(mask));
        self.logits = Some(self.model.logits(hidden.reshape([b, d])));
        self.pos += 1;
    }
}

/// A read-back that failed: where a GPU backend reports what went wrong on the device.
fn readback(what: &str, e: impl std::fmt::Debug) -> LlmError {
    LlmError::Device(format!("reading back {what}: {e:?}"))
}

/// A step asked of a session whose earlier step failed.
fn spent(why: &str) -> LlmError {
    LlmError::Device(format!("the session cannot go on: {why}"))
}
