//! [`Describer`]: load a checkpoint once, then describe regions of images and videos.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use dam_core::config::CheckpointConfig;
use dam_core::prompt::{self, JOINT_IMAGE_QUESTION};
use dam_core::{FocalPrompt, Granularity, ImageProcessor, Mask, Region, focal_prompt};
use dam_llm::generate::{Generation, GenerationOptions, TextStream, generate};
use dam_llm::splice::splice;
use dam_llm::{DamTokenizer, LlamaModel, Sampling};
use dam_video::{Clip, ClipOptions};
use dam_vision::{VisionModel, VisionRecorder, split_views, stack_focal_prompts};
use image::RgbImage;

use crate::backend::{Backend, FloatType, configure};
use crate::checkpoint;
use crate::description::{Description, HostTensor, PhaseTimings, Trace};
use crate::error::{DamError, Result};
use crate::segmenter::{ScribbleMode, SegmentPrompt, Segmenter};

/// Which single-image query form the checkpoint expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryStyle {
    /// DAM-3B: `<image>\n{instruction}`.
    Image,
    /// DAM-3B-Video (the joint image/video checkpoint): `Image: <image>\n{question}`.
    Joint,
}

/// Per-call options.
#[derive(Clone, Debug, Default)]
pub struct DescribeOptions {
    /// A query with one `<image>` per image or frame; `None` uses the describer's.
    pub query: Option<String>,
    /// Generation settings; `None` uses the describer's.
    pub generation: Option<GenerationOptions>,
    /// Keep intermediate tensors in [`Description::trace`] (not recorded by the streaming calls).
    pub trace: bool,
}

/// Describes regions of images and videos with a DAM checkpoint.
///
/// ```no_run
/// # fn main() -> Result<(), dam::DamError> {
/// use dam::{Describer, Mask, Region};
/// let describer = Describer::builder().checkpoint("path/to/DAM-3B").build()?;
/// let image = dam::open_rgb("photo.jpg")?;
/// let mask = Mask::open("mask.png")?;
/// let d = describer.describe(&image, &Region::Mask(mask))?;
/// println!("{}", d.text);
/// # Ok(()) }
/// ```
pub struct Describer {
    device: Device,
    config: CheckpointConfig,
    processor: ImageProcessor,
    /// Replays repeated encodes (CUDA graphs) where the backend can; declared before `vision`
    /// so it is dropped first (its recordings point at the model's weights).
    recorder: VisionRecorder,
    vision: VisionModel,
    llm: LlamaModel,
    tokenizer: DamTokenizer,
    generation: GenerationOptions,
    query: Option<String>,
    granularity: Granularity,
    style: QueryStyle,
    segmenter: Option<Box<dyn Segmenter>>,
    scribble_mode: ScribbleMode,
    clip: ClipOptions,
    checkpoint: PathBuf,
}

impl std::fmt::Debug for Describer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Describer")
            .field("checkpoint", &self.checkpoint)
            .field("style", &self.style)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Builder of a [`Describer`].
pub struct DescriberBuilder {
    checkpoint: Option<String>,
    backend: Backend,
    device: Option<Device>,
    dtype: FloatType,
    generation: GenerationOptions,
    query: Option<String>,
    granularity: Granularity,
    style: Option<QueryStyle>,
    segmenter: Option<Box<dyn Segmenter>>,
    scribble_mode: ScribbleMode,
    clip: Option<ClipOptions>,
    #[cfg(feature = "kernel-cache")]
    kernel_cache: Option<crate::KernelCache>,
}

impl Default for DescriberBuilder {
    fn default() -> Self {
        Self {
            checkpoint: None,
            backend: Backend::available().last().copied().unwrap_or(Backend::Cpu),
            device: None,
            dtype: FloatType::F32,
            generation: GenerationOptions::default(),
            query: None,
            granularity: Granularity::default(),
            style: None,
            segmenter: None,
            scribble_mode: ScribbleMode::default(),
            clip: None,
            #[cfg(feature = "kernel-cache")]
            kernel_cache: None,
        }
    }
}

impl DescriberBuilder {
    /// A checkpoint folder (works offline), or a Hugging Face id such as `nvidia/DAM-3B`
    /// (with the `hub` feature).
    pub fn checkpoint(mut self, spec: impl Into<String>) -> Self {
        self.checkpoint = Some(spec.into());
        self
    }

    /// The backend (default: the CPU backend).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// An explicit burn device (overrides [`DescriberBuilder::backend`]).
    pub fn device(mut self, device: Device) -> Self {
        self.device = Some(device);
        self
    }

    /// Where the GPU backends keep compiled kernels and autotune decisions between processes
    /// (feature `kernel-cache`, on with `wgpu` and `cuda`). Default: `DAM_KERNEL_CACHE` if set,
    /// else [`KernelCache::Default`](crate::KernelCache::Default). It is process-wide and fixed
    /// when the first GPU device starts, so it has no effect after one has (a warning says so).
    #[cfg(feature = "kernel-cache")]
    pub fn kernel_cache(mut self, cache: crate::KernelCache) -> Self {
        self.kernel_cache = Some(cache);
        self
    }

    /// Float type of weights and activations: f32 on the CPU; f16/bf16 on GPU backends.
    pub fn dtype(mut self, dtype: FloatType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Token selection (default: temperature 0.2, top-k 50, top-p 0.5 as the original).
    pub fn sampling(mut self, sampling: Sampling) -> Self {
        self.generation.sampling = sampling;
        self
    }

    /// Greedy decoding (deterministic; what the parity tests use).
    pub fn greedy(self) -> Self {
        self.sampling(Sampling::Greedy)
    }

    /// Maximum number of generated tokens (default 512; at least 1, else `build` fails with
    /// `LlmError::BadOptions`, as transformers' `generate` refuses 0).
    pub fn max_new_tokens(mut self, n: usize) -> Self {
        self.generation.max_new_tokens = n;
        self
    }

    /// All generation settings at once.
    pub fn generation(mut self, options: GenerationOptions) -> Self {
        self.generation = options;
        self
    }

    /// A custom query with one `<image>` per image (per frame for videos).
    pub fn query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// How detailed the description should be (ignored when a query is set).
    pub fn granularity(mut self, granularity: Granularity) -> Self {
        self.granularity = granularity;
        self
    }

    /// The single-image query form; by default `Joint` when the checkpoint's name contains
    /// "video" or "joint" (DAM-3B-Video), else `Image`.
    pub fn query_style(mut self, style: QueryStyle) -> Self {
        self.style = Some(style);
        self
    }

    /// A segmenter for points, boxes and sampled scribbles (e.g. [`crate::SamSegmenter`]).
    pub fn segmenter(mut self, segmenter: Box<dyn Segmenter>) -> Self {
        self.segmenter = Some(segmenter);
        self
    }

    /// How scribbles become masks (default: the stroke itself).
    pub fn scribble_mode(mut self, mode: ScribbleMode) -> Self {
        self.scribble_mode = mode;
        self
    }

    /// Frames per clip and empty-mask handling for videos (default: the checkpoint's
    /// `num_video_frames`, 8; empty masks are errors).
    pub fn clip_options(mut self, options: ClipOptions) -> Self {
        self.clip = Some(options);
        self
    }

    /// Loads the checkpoint.
    pub fn build(self) -> Result<Describer> {
        let spec = self.checkpoint.ok_or(DamError::NoCheckpoint)?;
        // Before any download or load.
        self.generation.validate()?;
        let dir = checkpoint::resolve(&spec)?;
        #[cfg(feature = "kernel-cache")]
        if self.kernel_cache.is_some() {
            crate::backend::install_kernel_cache(self.kernel_cache.as_ref());
        }
        let device = match self.device {
            Some(mut d) => {
                configure(&mut d, self.dtype, "device")?;
                d
            }
            None => self.backend.configured_device(self.dtype)?,
        };
        let config = CheckpointConfig::load(&dir)?;
        let processor = ImageProcessor::from_config(&config.preprocessor)?;
        let vision = VisionModel::load(&dir, &config, &device)?;
        let llm_dir = dir.join("llm");
        let llm = LlamaModel::load(&llm_dir, &config.llm, &device)?;
        let tokenizer = DamTokenizer::from_dir(&llm_dir)?;
        let name = format!("{spec} {}", dir.display()).to_lowercase();
        let style = self
            .style
            .unwrap_or(if name.contains("video") || name.contains("joint") {
                QueryStyle::Joint
            } else {
                QueryStyle::Image
            });
        if let Some(q) = &self.query {
            prompt::check_query(q, prompt::count_placeholders(q).max(1))?;
        }
        let clip = self.clip.unwrap_or(ClipOptions {
            num_frames: config.num_video_frames(),
            skip_empty: false,
        });
        Ok(Describer {
            device,
            config,
            processor,
            recorder: VisionRecorder::new(),
            vision,
            llm,
            tokenizer,
            generation: self.generation,
            query: self.query,
            granularity: self.granularity,
            style,
            segmenter: self.segmenter,
            scribble_mode: self.scribble_mode,
            clip,
            checkpoint: dir,
        })
    }
}

/// One sequence to generate: its views (one per image or frame) and its query.
struct Job {
    prompts: Vec<FocalPrompt>,
    masks: Vec<Mask>,
    query: String,
}

/// Jobs encoded up to the LLM input.
struct Encoded {
    prompts: Vec<Tensor<2>>,
    timings: PhaseTimings,
    traces: Vec<Option<Trace>>,
}

impl Describer {
    /// A builder: checkpoint (path or hub id), backend, dtype, generation options, segmenter.
    pub fn builder() -> DescriberBuilder {
        DescriberBuilder::default()
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The checkpoint's configuration (`config.json` and the nested component configs).
    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    /// The checkpoint's tokenizer (from `llm/tokenizer.model`).
    pub fn tokenizer(&self) -> &DamTokenizer {
        &self.tokenizer
    }

    /// The checkpoint folder in use.
    pub fn checkpoint_dir(&self) -> &Path {
        &self.checkpoint
    }

    /// Describes one region of an image.
    pub fn describe(&self, image: &RgbImage, region: &Region) -> Result<Description> {
        self.describe_with(image, region, &DescribeOptions::default())
    }

    /// [`Describer::describe`] with per-call options.
    pub fn describe_with(&self, image: &RgbImage, region: &Region, options: &DescribeOptions) -> Result<Description> {
        let start = Instant::now();
        let job = self.image_job(image, region, options.query.as_deref())?;
        let mut out = self.run(vec![job], options, start.elapsed())?;
        Ok(out.remove(0))
    }

    /// Describes several regions of one image in one batched forward (vision and decoding);
    /// results come back in the order of `regions`.
    pub fn describe_many(&self, image: &RgbImage, regions: &[Region]) -> Result<Vec<Description>> {
        self.describe_many_with(image, regions, &DescribeOptions::default())
    }

    /// [`Describer::describe_many`] with per-call options.
    pub fn describe_many_with(
        &self,
        image: &RgbImage,
        regions: &[Region],
        options: &DescribeOptions,
    ) -> Result<Vec<Description>> {
        if regions.is_empty() {
            return Err(DamError::Empty("no regions given"));
        }
        let start = Instant::now();
        let query = self.image_query(options.query.as_deref())?;
        // Masks one by one (a segmenter reuses the image's embedding), focal prompts in parallel.
        let masks = regions
            .iter()
            .map(|r| self.region_mask(image, r))
            .collect::<Result<Vec<_>>>()?;
        let prompts = dam_core::focal_prompts(image, &masks, &self.processor)?;
        let jobs = prompts
            .into_iter()
            .zip(masks)
            .map(|(prompt, mask)| Job {
                prompts: vec![prompt],
                masks: vec![mask],
                query: query.clone(),
            })
            .collect();
        self.run(jobs, options, start.elapsed())
    }

    /// Describes one region as a stream of text deltas; call
    /// [`DescriptionStream::finish`] for the full [`Description`].
    pub fn describe_stream(&self, image: &RgbImage, region: &Region) -> Result<DescriptionStream<'_>> {
        self.describe_stream_with(image, region, &DescribeOptions::default())
    }

    /// [`Describer::describe_stream`] with per-call options.
    pub fn describe_stream_with(
        &self,
        image: &RgbImage,
        region: &Region,
        options: &DescribeOptions,
    ) -> Result<DescriptionStream<'_>> {
        let start = Instant::now();
        let job = self.image_job(image, region, options.query.as_deref())?;
        let masks = job.masks.clone();
        let generation = options.generation.as_ref().unwrap_or(&self.generation);
        // Checked before the vision work, not after it (the session checks again).
        generation.validate()?;
        let mut encoded = self.encode(&[job], false, start.elapsed())?;
        let t = Instant::now();
        let prompt = encoded.prompts.remove(0);
        let stream = TextStream::new(&self.llm, &self.tokenizer, prompt, generation)?;
        encoded.timings.prefill += t.elapsed();
        Ok(DescriptionStream {
            stream,
            timings: encoded.timings,
            masks,
        })
    }

    /// Describes a region through a video: `frames` with one mask per frame (or one per
    /// selected frame). With more frames than the clip length (8 for DAM-3B-Video), frames
    /// are selected as the original (`linspace`); fewer are used as they are.
    pub fn describe_video(&self, frames: &[RgbImage], masks: &[Mask]) -> Result<Description> {
        self.describe_video_with(frames, masks, &DescribeOptions::default())
    }

    /// [`Describer::describe_video`] with per-call options.
    pub fn describe_video_with(
        &self,
        frames: &[RgbImage],
        masks: &[Mask],
        options: &DescribeOptions,
    ) -> Result<Description> {
        let clip = Clip::new(frames.to_vec(), masks.to_vec(), self.clip)?;
        self.describe_clip(&clip, options)
    }

    /// Describes a prepared [`Clip`].
    pub fn describe_clip(&self, clip: &Clip, options: &DescribeOptions) -> Result<Description> {
        let start = Instant::now();
        let prompts = dam_video::encode::focal_prompts(clip, &self.processor)?;
        let query = match options.query.as_ref().or(self.query.as_ref()) {
            Some(q) => q.clone(),
            None if clip.len() == 1 => self.default_image_query(),
            None => dam_video::encode::video_query(clip.len()),
        };
        prompt::check_query(&query, clip.len())?;
        let job = Job {
            prompts,
            masks: clip.masks.clone(),
            query,
        };
        Ok(self.run(vec![job], options, start.elapsed())?.remove(0))
    }

    /// The mask a region stands for on `image`.
    pub fn region_mask(&self, image: &RgbImage, region: &Region) -> Result<Mask> {
        let (w, h) = image.dimensions();
        dam_core::error::check_image_size(w, h)?;
        let seg = |prompt: SegmentPrompt, what: &'static str| match &self.segmenter {
            Some(s) => s.segment(image, prompt),
            None => Err(DamError::SegmenterRequired(what)),
        };
        match region {
            Region::Mask(m) => Ok(m.clone()),
            Region::Box(b) => match &self.segmenter {
                Some(s) => {
                    b.validate(w, h)?;
                    s.segment(image, SegmentPrompt::Box(b))
                }
                // Fallback without a segmenter: the box itself, as a filled rectangle.
                None => Ok(b.to_mask(w, h)?),
            },
            Region::Points(p) => {
                p.validate(w, h)?;
                seg(SegmentPrompt::Points(p), "point")
            }
            Region::Scribble(s) => match self.scribble_mode {
                ScribbleMode::AsMask => Ok(s.clone()),
                ScribbleMode::SamplePoints => seg(SegmentPrompt::Scribble(s), "sampled-scribble"),
            },
        }
    }

    fn default_image_query(&self) -> String {
        match self.style {
            QueryStyle::Image => self.granularity.image_query(),
            QueryStyle::Joint => prompt::joint_image_query(match self.granularity {
                Granularity::Detailed => JOINT_IMAGE_QUESTION,
                g => g.instruction(),
            }),
        }
    }

    /// The query for one image: the call's, else the describer's, else the checkpoint's default.
    fn image_query(&self, query: Option<&str>) -> Result<String> {
        let query = query
            .map(String::from)
            .or_else(|| self.query.clone())
            .unwrap_or_else(|| self.default_image_query());
        prompt::check_query(&query, 1)?;
        Ok(query)
    }

    fn image_job(&self, image: &RgbImage, region: &Region, query: Option<&str>) -> Result<Job> {
        let query = self.image_query(query)?;
        let mask = self.region_mask(image, region)?;
        let prompt = focal_prompt(image, &mask, &self.processor)?;
        Ok(Job {
            prompts: vec![prompt],
            masks: vec![mask],
            query,
        })
    }

    fn sync(&self) -> Result<()> {
        self.device.sync().map_err(|e| DamError::Device(format!("{e:?}")))
    }

    /// Vision for every view of every job in one batch, then splicing per job.
    fn encode(&self, jobs: &[Job], trace: bool, preprocess: std::time::Duration) -> Result<Encoded> {
        let mut timings = PhaseTimings {
            preprocess,
            ..Default::default()
        };
        let t = Instant::now();
        let views: Vec<&FocalPrompt> = jobs.iter().flat_map(|j| j.prompts.iter()).collect();
        let (pixels, flags) = stack_focal_prompts(&views, &self.device)?;
        let tokens = self.recorder.encode(&self.vision, pixels, &flags)?;
        self.sync()?;
        timings.vision = t.elapsed();

        let t = Instant::now();
        let mut blocks = split_views(tokens.clone()).into_iter();
        let mut prompts = Vec::with_capacity(jobs.len());
        let mut traces = Vec::with_capacity(jobs.len());
        let mut first_view = 0;
        for job in jobs {
            let n = job.prompts.len();
            let images: Vec<Tensor<2>> = blocks.by_ref().take(n).collect();
            let ids = self.tokenizer.tokenize_prompt(&prompt::render_v1(&job.query))?;
            let embeds = splice(&self.llm, &ids, &images)?;
            traces.push(if trace {
                Some(self.trace_of(job, &tokens, first_view, &embeds)?)
            } else {
                None
            });
            first_view += n;
            prompts.push(embeds);
        }
        timings.prefill = t.elapsed();
        Ok(Encoded {
            prompts,
            timings,
            traces,
        })
    }

    fn trace_of(&self, job: &Job, tokens: &Tensor<3>, first_view: usize, embeds: &Tensor<2>) -> Result<Trace> {
        let n = job.prompts.len();
        let s = job.prompts[0].size as usize;
        let host = |t: Tensor<3>| -> Result<HostTensor> {
            let shape = t.dims().to_vec();
            let data = t
                .try_into_vec_as::<f32>()
                .map_err(|e| DamError::Device(format!("{e:?}")))?;
            Ok(HostTensor { shape, data })
        };
        let [p, h] = embeds.dims();
        Ok(Trace {
            pixel_values: HostTensor {
                shape: vec![n, 8, s, s],
                data: job
                    .prompts
                    .iter()
                    .flat_map(|p| p.pixel_values.iter().copied())
                    .collect(),
            },
            projector_output: host(tokens.clone().narrow(0, first_view, n))?,
            llm_inputs_embeds: host(embeds.clone().reshape([1, p, h]))?,
            step_logits: HostTensor {
                shape: vec![0, self.config.llm.vocab_size],
                data: Vec::new(),
            },
        })
    }

    fn run(
        &self,
        jobs: Vec<Job>,
        options: &DescribeOptions,
        preprocess: std::time::Duration,
    ) -> Result<Vec<Description>> {
        let mut generation = options.generation.clone().unwrap_or_else(|| self.generation.clone());
        generation.record_logits |= options.trace;
        generation.validate()?;
        let encoded = self.encode(&jobs, options.trace, preprocess)?;
        let mut timings = encoded.timings;
        let results: Vec<Generation> = generate(&self.llm, &self.tokenizer, encoded.prompts, &generation)?;
        if let Some(g) = results.first() {
            timings.prefill += g.timings.prefill;
            timings.decode = g.timings.decode;
            timings.decode_tokens = g.timings.decode_tokens;
        }
        Ok(results
            .into_iter()
            .zip(jobs)
            .zip(encoded.traces)
            .map(|((g, job), trace)| {
                let trace = trace.map(|mut t| {
                    let v = self.config.llm.vocab_size;
                    t.step_logits = HostTensor {
                        shape: vec![g.step_logits.len(), v],
                        data: g.step_logits.concat(),
                    };
                    t
                });
                Description {
                    text: g.text,
                    token_ids: g.token_ids,
                    stop_reason: g.stop_reason,
                    timings,
                    masks: job.masks,
                    trace,
                }
            })
            .collect())
    }
}

/// A description arriving as text deltas (see [`Describer::describe_stream`]).
pub struct DescriptionStream<'a> {
    stream: TextStream<'a>,
    timings: PhaseTimings,
    masks: Vec<Mask>,
}

impl Iterator for DescriptionStream<'_> {
    /// A text delta, or once the device's failure (then the stream ends).
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        self.stream.next().map(|delta| delta.map_err(DamError::from))
    }
}

impl DescriptionStream<'_> {
    /// Consumes the rest of the stream and returns the whole description; its text equals
    /// the concatenated deltas.
    ///
    /// # Errors
    /// The device's failure while generating ([`dam_llm::Session::step`]).
    pub fn finish(self) -> Result<Description> {
        let g = self.stream.finish()?;
        let mut timings = self.timings;
        timings.prefill += g.timings.prefill;
        timings.decode = g.timings.decode;
        timings.decode_tokens = g.timings.decode_tokens;
        Ok(Description {
            text: g.text,
            token_ids: g.token_ids,
            stop_reason: g.stop_reason,
            timings,
            masks: self.masks,
            trace: None,
        })
    }
}
