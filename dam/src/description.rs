//! What a description call returns.

use std::time::Duration;

use dam_core::Mask;
use dam_llm::session::StopReason;

/// A region's description.
#[derive(Clone, Debug)]
pub struct Description {
    /// The text (upstream: decoded without special tokens, stripped).
    pub text: String,
    /// Generated token ids (EOS not included).
    pub token_ids: Vec<u32>,
    /// Why generation stopped: end of sequence, a stop string, or the token limit.
    pub stop_reason: StopReason,
    /// Time per phase (shared by all regions of a batched call).
    pub timings: PhaseTimings,
    /// The mask of each image or frame the model saw (from a segmenter for points/boxes).
    pub masks: Vec<Mask>,
    /// Intermediate tensors, when asked for (`DescribeOptions::trace`, CLI `--dump`).
    pub trace: Option<Trace>,
}

/// Wall-clock time per phase of one call (batched calls share their timings).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimings {
    /// Regions to masks (segmenter), focal prompts, resampling, normalisation.
    pub preprocess: Duration,
    /// Both vision passes and the projector.
    pub vision: Duration,
    /// Tokenisation, splicing and the LLM prompt pass.
    pub prefill: Duration,
    /// All decode steps.
    pub decode: Duration,
    /// Tokens generated in the decode phase (all sequences of the call).
    pub decode_tokens: usize,
}

impl PhaseTimings {
    /// Sum of the four phases.
    pub fn total(&self) -> Duration {
        self.preprocess + self.vision + self.prefill + self.decode
    }

    /// `decode_tokens` per second of `decode` (0 when nothing was decoded).
    pub fn decode_tokens_per_second(&self) -> f64 {
        let s = self.decode.as_secs_f64();
        if s > 0.0 { self.decode_tokens as f64 / s } else { 0.0 }
    }
}

/// An f32 tensor copied to the host, with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values in row-major order.
    pub data: Vec<f32>,
}

/// Intermediate tensors, named as in the reference fixtures.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// `[N, 8, S, S]` model input of the N images/frames.
    pub pixel_values: HostTensor,
    /// `[N, T', H]` visual tokens.
    pub projector_output: HostTensor,
    /// `[1, P, H]` the LLM input after splicing.
    pub llm_inputs_embeds: HostTensor,
    /// `[n, V]` logits of every generation step.
    pub step_logits: HostTensor,
}
