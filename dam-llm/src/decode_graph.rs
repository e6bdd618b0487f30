//! The decode step recorded once and replayed (CUDA graphs), for the fused decoder on CUDA
//! devices (feature `cube`).
//!
//! Why: even with a decoder layer as one op ([`crate::fused`]), a step is ≈ 400 kernel
//! launches, each a round trip through cubecl's device thread — measured on an H100 at 14–19 ms
//! per step, against 8.1 ms for the same step replayed (124 tok/s for DAM-3B at batch 1).
//! burn 0.22 can record a stream's launches into a CUDA graph and replay them as one dispatch. A recorded step replays against the buffers it was
//! recorded with, so everything that changes from step to step lives in one small int buffer
//! on the device, refreshed in place before each replay:
//!
//! `inputs = [ids (B) | RoPE positions (B) | cache slot (1)]`
//!
//! The step reads its token ids, RoPE rows, cache write position and attention mask (key `j`
//! hidden when `j > slot` or `j < pad`) from it; the cache is written in place; the output —
//! read back after each replay — is what the host needs to choose the next tokens: the argmax
//! ids `[B]` for greedy decoding, the top-k logits and their ids `[B, k]` for sampling (the
//! whole logits `[B, V]` with top-k 0), from which the session samples as it does unrecorded.
//! Shapes are static (the whole cache with a mask), so one recording serves the whole
//! generation.
//!
//! Recording runs the step three times to warm up (kernel compilation, autotuning and every
//! allocation happen before the capture window, where allocating is not allowed) and once under
//! capture, then replays it once and checks the replay against the last ordinary run. Each of
//! those runs recomputes the same step from the same inputs, writing the same cache entries, so
//! the repeats change nothing. Where recording is refused (a backend without graphs, a capture
//! that fails, a replay that disagrees), the session falls back to the ordinary step for the
//! rest of the generation. `DAM_CUDA_GRAPH=0` (or
//! [`dam_core::graph::set_enabled`]) turns recording off.
//! Steps that record logits (parity dumps) are not recorded.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use dam_core::graph::{self, Recording};

use crate::kv_cache::KvCache;
use crate::model::LlamaModel;
use crate::replay_check::{HostOutput, same};

/// What the host reads after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Argmax ids.
    Greedy,
    /// The `k` largest logits per sequence and their ids; `0` = all logits.
    TopK(usize),
}

/// What one recorded step reads (borrowed from the session).
pub(crate) struct Step<'a> {
    pub model: &'a LlamaModel,
    pub cache: &'a KvCache,
    pub pads: &'a [usize],
    /// EOS ids to suppress (empty when EOS may be chosen).
    pub eos: &'a [u32],
    pub batch: usize,
    pub choice: Choice,
}

/// A step's output on the device.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one per session, never moved in a loop
enum Output {
    Ids(Tensor<1, Int>),
    /// Values `[B, k]` and ids `[B, k]`.
    TopK(Tensor<2>, Tensor<2, Int>),
    /// All logits `[B, V]`.
    Logits(Tensor<2>),
}

impl Output {
    fn read(&self, batch: usize) -> Option<HostOutput> {
        match self {
            Output::Ids(ids) => {
                let ids = ids.clone().try_into_vec_as::<i64>().ok()?;
                Some(HostOutput::Ids(ids.into_iter().map(|i| i as u32).collect()))
            }
            Output::TopK(values, ids) => {
                let k = values.dims()[1];
                let values = values.clone().try_into_vec_as::<f32>().ok()?;
                let ids = ids.clone().try_into_vec_as::<i64>().ok()?;
                Some(HostOutput::Candidates(
                    (0..batch)
                        .map(|i| (0..k).map(|j| (ids[i * k + j] as u32, values[i * k + j])).collect())
                        .collect(),
                ))
            }
            Output::Logits(logits) => {
                let v = logits.dims()[1];
                let values = logits.clone().try_into_vec_as::<f32>().ok()?;
                Some(HostOutput::Candidates(
                    values
                        .chunks_exact(v)
                        .map(|row| row.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect())
                        .collect(),
                ))
            }
        }
    }
}

/// A recorded step and the buffers it replays against.
struct Recorded {
    graph: Recording,
    /// `[ids | positions | slot]`, refreshed in place before each replay.
    inputs: Tensor<1, Int>,
    /// Written by each replay.
    output: Output,
    batch: usize,
    /// Kept alive for the replays: key indices `[1, 1, 1, L]` and the padding mask
    /// `[B, 1, 1, L]` the recorded step reads.
    _aux: (Tensor<4, Int>, Tensor<4, Bool>),
}

/// The session's recording: none yet, recorded, or refused (then never retried).
#[derive(Default)]
pub(crate) struct GraphState {
    recorded: Option<Recorded>,
    refused: bool,
    /// A replay ran whose output is not read back yet.
    pending: bool,
}

impl GraphState {
    /// `allowed`: whether this session may record (read once, when it starts).
    pub(crate) fn new(allowed: bool) -> Self {
        Self {
            refused: !allowed,
            ..Self::default()
        }
    }

    /// Runs the step for `inputs` (`[ids | positions | slot]`): records it on first use, then
    /// replays. `false` = recording is not available; run the ordinary step.
    pub(crate) fn advance(&mut self, step: &Step<'_>, inputs: Vec<i64>, device: &Device) -> bool {
        if self.refused {
            return false;
        }
        let n = inputs.len();
        let host = Tensor::<1, Int>::from_data(TensorData::new(inputs, [n]), device);
        match &self.recorded {
            Some(rec) => {
                // Hold the write's result until the replay has drained the queue (a lazy
                // backend skips an op whose result is dropped unread).
                let written = graph::write_ints(&rec.inputs, host);
                // Safety: every buffer the recording touched is alive — the weights and the
                // cache (borrowed from the session for its whole life), `inputs`, `output`
                // and the auxiliary tensors (held in `rec`); the refresh above is queued on the
                // same stream as the replay, so it lands before it.
                let replayed = unsafe { graph::replay(device, &rec.graph) };
                drop(written);
                if !replayed {
                    // Keep the generation going on the ordinary path (the cache is intact:
                    // a failed replay enqueues nothing).
                    self.recorded = None;
                    self.refused = true;
                    return false;
                }
            }
            None => match record(step, host, device) {
                Some(rec) => self.recorded = Some(rec),
                None => {
                    self.refused = true;
                    return false;
                }
            },
        }
        self.pending = true;
        true
    }

    /// Whether a recorded step is in use.
    pub(crate) fn is_recorded(&self) -> bool {
        self.recorded.is_some()
    }

    /// The output of the last replay, read back (`None` if none is pending).
    pub(crate) fn take(&mut self) -> Option<HostOutput> {
        if !self.pending {
            return None;
        }
        self.pending = false;
        let rec = self.recorded.as_ref()?;
        rec.output.read(rec.batch)
    }
}

/// Records the step (see [`dam_core::graph::record`]); `None` when the backend refuses.
fn record(step: &Step<'_>, inputs: Tensor<1, Int>, device: &Device) -> Option<Recorded> {
    let (b, l) = (step.batch, step.cache.max_len);
    let key_index = Tensor::<1, Int>::arange(0..l as i64, device).reshape([1, 1, 1, l]);
    let pads: Vec<bool> = step.pads.iter().flat_map(|&pad| (0..l).map(move |j| j < pad)).collect();
    let pad_mask = Tensor::<4, Bool>::from_data(TensorData::new(pads, [b, 1, 1, l]), device);
    let (graph, output) = graph::record(
        device,
        || forward(step, &inputs, &key_index, &pad_mask),
        |out: &Output| out.read(b),
        same,
    )?;
    Some(Recorded {
        graph,
        inputs,
        output,
        batch: b,
        _aux: (key_index, pad_mask),
    })
}

/// One decode step reading everything that varies from `inputs`.
fn forward(step: &Step<'_>, inputs: &Tensor<1, Int>, key_index: &Tensor<4, Int>, pad_mask: &Tensor<4, Bool>) -> Output {
    let model = step.model;
    let (b, d, l) = (step.batch, model.hidden_size(), step.cache.max_len);
    let ids = inputs.clone().narrow(0, 0, b);
    let positions = inputs.clone().narrow(0, b, b).reshape([b, 1]);
    let slot = inputs.clone().narrow(0, 2 * b, 1);
    let embeds = model.embed_ids(ids).reshape([b, 1, d]);
    let future = key_index
        .clone()
        .greater(slot.clone().reshape([1, 1, 1, 1]).expand([1, 1, 1, l]));
    let mask = future.expand([b, 1, 1, l]).bool_or(pad_mask.clone());
    let hidden = model.forward_fused(embeds, positions, slot, step.cache, l, Some(mask));
    let mut logits = model.logits(hidden.reshape([b, d]));
    let v = logits.dims()[1];
    for &e in step.eos {
        let e = e as usize;
        if e < v {
            logits = logits.slice_fill([0..b, e..e + 1], f32::NEG_INFINITY);
        }
    }
    match step.choice {
        Choice::Greedy => Output::Ids(logits.argmax(1).reshape([b])),
        // As the unrecorded step chooses its candidates (`Session::choose`).
        Choice::TopK(k) if k > 0 => {
            let (values, ids) = logits.topk_with_indices(k.min(v), 1);
            Output::TopK(values, ids)
        }
        Choice::TopK(_) => Output::Logits(logits),
    }
}
