//! Turning points, boxes and scribbles into masks: the [`Segmenter`] trait and its Segment
//! Anything implementation ([`SamSegmenter`]), which computes an image's embedding once and
//! reuses it for every prompt on that image.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use burn::tensor::Device;
use dam_core::{BoxRegion, Mask, Points};
use dam_vision::sam::{Sam, SamImageEmbedding, SamPrompt};
use image::RgbImage;

use crate::error::Result;

/// What a segmenter is asked to segment.
#[derive(Clone, Copy, Debug)]
pub enum SegmentPrompt<'a> {
    /// Positive and negative clicks.
    Points(&'a Points),
    /// A box around the object.
    Box(&'a BoxRegion),
    /// A stroke; SAM samples up to 8 of its pixels as positive points (seeded, as the
    /// original demo).
    Scribble(&'a Mask),
}

/// Anything that turns a prompt on an image into a mask of the image's size.
pub trait Segmenter: Send + Sync {
    /// The mask (same size as `image`) of what `prompt` selects.
    fn segment(&self, image: &RgbImage, prompt: SegmentPrompt<'_>) -> Result<Mask>;
}

/// A shared segmenter (keep a handle to it while a `Describer` uses it).
impl<T: Segmenter + ?Sized> Segmenter for Arc<T> {
    fn segment(&self, image: &RgbImage, prompt: SegmentPrompt<'_>) -> Result<Mask> {
        (**self).segment(image, prompt)
    }
}

/// How scribbles become masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScribbleMode {
    /// The stroke itself is the mask (the original demo's "skip SAM"). No segmenter needed.
    #[default]
    AsMask,
    /// Up to 8 stroke pixels are sampled (numpy `seed(0)`, as the original demo) and given to
    /// the segmenter as positive points.
    SamplePoints,
}

/// Segment Anything v1 as a [`Segmenter`], caching the last image's embedding.
pub struct SamSegmenter {
    sam: Sam,
    cache: Mutex<Option<(u64, SamImageEmbedding)>>,
    embedded: AtomicUsize,
    /// numpy seed for scribble sampling (0 in the original demo).
    pub scribble_seed: u32,
}

impl std::fmt::Debug for SamSegmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamSegmenter").finish_non_exhaustive()
    }
}

fn image_key(image: &RgbImage) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    image.dimensions().hash(&mut h);
    image.as_raw().hash(&mut h);
    h.finish()
}

impl SamSegmenter {
    /// Loads a transformers SAM checkpoint folder (`config.json`, `model.safetensors`,
    /// `preprocessor_config.json`) — `facebook/sam-vit-huge` in the original.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Ok(Self::new(Sam::load(dir, device)?))
    }

    /// Wraps an already loaded SAM model.
    pub fn new(sam: Sam) -> Self {
        Self {
            sam,
            cache: Mutex::new(None),
            embedded: AtomicUsize::new(0),
            scribble_seed: 0,
        }
    }

    /// How many image embeddings were computed so far (one per distinct image in a row).
    pub fn images_embedded(&self) -> usize {
        self.embedded.load(Ordering::Relaxed)
    }

    /// The embedding of `image`, computed once per distinct image.
    fn with_embedding<T>(&self, image: &RgbImage, f: impl FnOnce(&Sam, &SamImageEmbedding) -> Result<T>) -> Result<T> {
        let key = image_key(image);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.as_ref().is_none_or(|(k, _)| *k != key) {
            *cache = Some((key, self.sam.embed_image(image)?));
            self.embedded.fetch_add(1, Ordering::Relaxed);
        }
        let (_, emb) = cache.as_ref().expect("filled above");
        f(&self.sam, emb)
    }
}

impl Segmenter for SamSegmenter {
    fn segment(&self, image: &RgbImage, prompt: SegmentPrompt<'_>) -> Result<Mask> {
        self.with_embedding(image, |sam, emb| {
            let out = match prompt {
                SegmentPrompt::Points(p) => sam.segment(emb, &SamPrompt::from_points(p))?,
                SegmentPrompt::Box(b) => sam.segment(emb, &SamPrompt::from_box(b))?,
                SegmentPrompt::Scribble(s) => sam.segment_scribble(emb, s, self.scribble_seed)?,
            };
            Ok(out.mask)
        })
    }
}
