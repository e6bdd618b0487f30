//! Recorded vision encodes: on CUDA (feature `cube`), a view batch seen a second time with
//! the same shape and crop flags is recorded as one graph and replayed from then on (see
//! `dam_core::graph` for why: the encode is ≈ 3 000 burn ops, and their launches — not the
//! device — set its time). Elsewhere, and for inputs a recording cannot serve, it is exactly
//! [`VisionModel::encode`].
//!
//! A recording replays against fixed buffers: the pixels are copied into the recorded input
//! buffer in place, and the projector output is copied out of the recorded output buffer, so a
//! caller can hold the result across later encodes.

use std::collections::HashMap;
use std::sync::Mutex;

use burn::tensor::Tensor;

use crate::error::Result;
use crate::model::VisionModel;

/// Records repeated encodes of a [`VisionModel`]. Keep it beside the model it serves and drop
/// it first (recordings replay against the model's weights); share it freely.
#[derive(Default)]
pub struct VisionRecorder {
    #[cfg_attr(not(feature = "cube"), allow(dead_code))]
    entries: Mutex<HashMap<Key, Entry>>,
}

impl std::fmt::Debug for VisionRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("VisionRecorder").field("shapes", &n).finish()
    }
}

/// The model (by address: a recording replays against one model's weights), input dims and
/// crop flags.
type Key = (usize, [usize; 4], Vec<bool>);

#[cfg_attr(not(feature = "cube"), allow(dead_code))]
enum Entry {
    /// Encoded once, not recorded.
    Seen,
    #[cfg(feature = "cube")]
    Recorded(Box<Recorded>),
    /// The backend refused; never retried.
    Refused,
}

/// A recorded encode and the buffers it replays against.
#[cfg(feature = "cube")]
struct Recorded {
    graph: dam_core::graph::Recording,
    input: Tensor<4>,
    output: Tensor<3>,
}

impl VisionRecorder {
    /// A recorder that has seen no encode yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`VisionModel::encode`], replayed from a recording where one applies.
    pub fn encode(&self, model: &VisionModel, pixel_values: Tensor<4>, crop_differs: &[bool]) -> Result<Tensor<3>> {
        #[cfg(feature = "cube")]
        if let Some(out) = self.encode_recorded(model, &pixel_values, crop_differs) {
            return Ok(out);
        }
        model.encode(pixel_values, crop_differs)
    }

    /// Whether any view batch is being replayed from a recording.
    pub fn has_recordings(&self) -> bool {
        #[cfg(feature = "cube")]
        {
            self.entries
                .lock()
                .map(|e| e.values().any(|v| matches!(v, Entry::Recorded(_))))
                .unwrap_or(false)
        }
        #[cfg(not(feature = "cube"))]
        {
            false
        }
    }

    /// `None` = run the ordinary encode (first sight of a shape, a refused recording, or an
    /// input the recording cannot serve).
    #[cfg(feature = "cube")]
    fn encode_recorded(&self, model: &VisionModel, pixels: &Tensor<4>, flags: &[bool]) -> Option<Tensor<3>> {
        use dam_core::graph;
        let device = pixels.device();
        // Recordable: no host reads inside the encode (the masked cross-attention key mask
        // checks for empty masks on the host) and no per-call index upload (a batch with some
        // crops equal to their full view selects the others by index).
        let uniform = flags.iter().all(|&f| f) || flags.iter().all(|&f| !f) || model.treat_image_as_cimage;
        if model.masked_cross_attn || !uniform || !graph::enabled() || !graph::supported(&device) {
            return None;
        }
        let key: Key = (model as *const VisionModel as usize, pixels.dims(), flags.to_vec());
        let mut entries = self.entries.lock().ok()?;
        match entries.get(&key) {
            None => {
                entries.insert(key, Entry::Seen);
                None
            }
            Some(Entry::Refused) => None,
            Some(Entry::Seen) => {
                // The second encode of this shape: record it. Its pixels become the recorded
                // input buffer.
                let input = pixels.clone();
                let read = |out: &Option<Tensor<3>>| out.as_ref()?.clone().try_into_vec_as::<f32>().ok();
                // The same kernels on the same input: a correct replay agrees to rounding.
                let same = |a: &Vec<f32>, b: &Vec<f32>| {
                    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-3 + 1e-2 * x.abs())
                };
                let recorded = graph::record(&device, || model.encode(input.clone(), flags).ok(), read, same);
                match recorded {
                    Some((graph, Some(output))) => {
                        let copy = output.clone() * 1.0;
                        entries.insert(key, Entry::Recorded(Box::new(Recorded { graph, input, output })));
                        Some(copy)
                    }
                    _ => {
                        entries.insert(key, Entry::Refused);
                        None
                    }
                }
            }
            Some(Entry::Recorded(rec)) => {
                let Recorded {
                    graph: rec,
                    input,
                    output,
                } = rec.as_ref();
                let written = graph::write_floats(input, pixels.clone());
                // Safety: the recorded buffers are the model's weights (borrowed for the
                // recorder's use) and `input` / `output` (held in the entry); the write is
                // queued on this thread's stream, before the replay.
                let replayed = unsafe { graph::replay(&device, rec) };
                drop(written);
                if replayed {
                    // Copy out: the next replay overwrites `output`.
                    Some(output.clone() * 1.0)
                } else {
                    entries.insert(key, Entry::Refused);
                    None
                }
            }
        }
    }
}
