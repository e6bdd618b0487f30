//! Checkpoint configs (serde mirrors of the Hugging Face `config.json` files) with validation.
//!
//! The spec marks several DAM values as inherited from VILA1.5-3b (`[base]`) or unconfirmed;
//! they are read from the files and checked here, and anything this implementation does not
//! support is an error naming the file, the key, the value found and what is supported.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{CoreError, Result};

fn unsupported(file: &str, key: &str, found: impl std::fmt::Debug, supported: &str) -> CoreError {
    CoreError::UnsupportedConfig {
        file: file.to_string(),
        key: key.to_string(),
        found: format!("{found:?}"),
        supported: supported.to_string(),
    }
}

/// Reads and parses a JSON config file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::ConfigFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| CoreError::ConfigFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Top-level `config.json` (`llava_llama`).
#[derive(Clone, Debug, Deserialize)]
pub struct TopConfig {
    /// Model type of the top-level config (`llava_llama` for DAM); not checked.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Index into the tower's hidden states whose features are used; VILA's -2 (`[base]`).
    #[serde(default = "default_select_layer")]
    pub mm_vision_select_layer: i64,
    /// `cls_patch` keeps all 729 tokens (`[base]`); `patch` would drop one and break the projector.
    #[serde(default = "default_select_feature")]
    pub mm_vision_select_feature: String,
    /// `resize` squashes each view to a square (`[base]`).
    #[serde(default = "default_aspect")]
    pub image_aspect_ratio: String,
    /// Frames per video clip (8 for DAM-3B-Video); absent means 8 (see
    /// [`CheckpointConfig::num_video_frames`]); 0 is rejected.
    #[serde(default)]
    pub num_video_frames: Option<usize>,
    /// Upstream's model dtype, e.g. `torch.bfloat16`; informational (the stored dtype is
    /// read from each safetensors header).
    #[serde(default)]
    pub model_dtype: Option<String>,
    /// Width of the vision features fed to the projector; when present it must equal the
    /// vision tower's `hidden_size` (1152 in DAM-3B).
    #[serde(default)]
    pub mm_hidden_size: Option<usize>,
    /// Hidden size of the LLM; when present it must equal `llm/config.json`'s
    /// `hidden_size` (2560 in DAM-3B).
    #[serde(default)]
    pub hidden_size: Option<usize>,
    /// Must be absent or null: a mask encoder is not part of DAM.
    #[serde(default)]
    pub mask_encoder_cfg: Option<serde_json::Value>,
    /// Whether image start/end marker tokens surround the image embeddings; must be false.
    #[serde(default)]
    pub mm_use_im_start_end: bool,
    /// Whether LLaVA's image patch token (`<im_patch>`) is used; must be false.
    #[serde(default)]
    pub mm_use_im_patch_token: bool,
    /// Whether VILA's S2 multi-scale vision features are enabled; must be false.
    #[serde(default)]
    pub s2: bool,
    /// Nested copies of the sub-configs; the sub-folders' own `config.json` take precedence.
    #[serde(default)]
    pub llm_cfg: Option<serde_json::Value>,
    /// Nested copy of `vision_tower/config.json`, used when that file is absent.
    #[serde(default)]
    pub vision_tower_cfg: Option<serde_json::Value>,
    /// Nested copy of `mm_projector/config.json`, used when that file is absent.
    #[serde(default)]
    pub mm_projector_cfg: Option<serde_json::Value>,
    /// Nested copy of `context_provider/config.json`, used when that file is absent.
    #[serde(default)]
    pub context_provider_cfg: Option<serde_json::Value>,
}

fn default_select_layer() -> i64 {
    -2
}
fn default_select_feature() -> String {
    "cls_patch".into()
}
fn default_aspect() -> String {
    "resize".into()
}
fn default_one() -> usize {
    1
}
fn default_three() -> usize {
    3
}
fn default_ln_eps() -> f64 {
    1e-6
}
fn default_gelu_tanh() -> String {
    "gelu_pytorch_tanh".into()
}

/// `vision_tower/config.json` (`siglip_vision_model`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct VisionConfig {
    /// Model type; must be `siglip_vision_model` when present.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Width of the SigLIP tower's tokens (1152 in DAM-3B).
    pub hidden_size: usize,
    /// Hidden width of each SigLIP layer's MLP (4304 in DAM-3B).
    pub intermediate_size: usize,
    /// Self-attention heads per SigLIP layer (16 in DAM-3B); must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Number of SigLIP encoder layers (27 in DAM-3B).
    pub num_hidden_layers: usize,
    /// Side of the square input view, in pixels (384 in DAM-3B).
    pub image_size: usize,
    /// Side of a square patch, in pixels (14 in DAM-3B: 27 × 27 patches).
    pub patch_size: usize,
    /// Colour channels of the RGB patch embedding; must be 3.
    #[serde(default = "default_three")]
    pub num_channels: usize,
    /// DAM's addition; must be 1 ([code + size]).
    #[serde(default)]
    pub num_mask_channels: Option<usize>,
    /// Activation of the SigLIP MLPs (`gelu_pytorch_tanh` in DAM-3B); must be a GELU.
    #[serde(default = "default_gelu_tanh")]
    pub hidden_act: String,
    /// Epsilon of the SigLIP LayerNorms (1e-6 in DAM-3B).
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
}

/// `context_provider/config.json` (`cross_attn_end_to_all`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ContextProviderConfig {
    /// Adapter type; must be `cross_attn_end_to_all` when present.
    #[serde(default)]
    pub context_provider_type: Option<String>,
    /// Width of the adapters' tokens; must equal the vision tower's `hidden_size` (1152 in DAM-3B).
    pub hidden_size: usize,
    /// Hidden width of each adapter's MLP (4304 in DAM-3B).
    pub intermediate_size: usize,
    /// UNCONFIRMED for DAM-3B (16 assumed); read from the file.
    pub num_attention_heads: usize,
    /// Number of cross-attention adapters, one per SigLIP layer (27 in DAM-3B); at least
    /// the vision tower's `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// Activation of the adapters' MLPs; must be a GELU (tanh GELU by default).
    #[serde(default = "default_gelu_tanh")]
    pub hidden_act: String,
    /// Epsilon of the adapters' LayerNorms (1e-6 by default).
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    /// Must be null: any list silently disables all adapters upstream.
    #[serde(default)]
    pub context_provider_layer_indices: Option<serde_json::Value>,
    /// Whether the adapters attend only to full-image patches that overlap the mask
    /// (spec §4.5.3); default false.
    #[serde(default)]
    pub masked_cross_attn: bool,
    /// Whether the full view gives the adapters' queries and the crop their keys/values
    /// (the two 4-channel views swapped); default false.
    #[serde(default)]
    pub context_image_as_queries: bool,
    /// Whether every view takes the adapter pass, even when its focal crop equals the
    /// full view (spec §4.6); default false.
    #[serde(default)]
    pub treat_image_as_cimage: bool,
    /// Whether upstream's adapters have the learned `attn_factor` / `mlp_factor` gates
    /// (default true). Not read here: a gate missing from the checkpoint counts as 1.0.
    #[serde(default = "default_true")]
    pub zero_init_output: bool,
}

fn default_true() -> bool {
    true
}

/// `mm_projector/config.json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ProjectorConfig {
    /// Projector type; must be `mlp_downsample` (2 × 2 token merge, LayerNorm,
    /// two-layer MLP).
    pub mm_projector_type: String,
}

/// `eos_token_id` may be one id or a list.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(v) => vec![*v],
            TokenIds::Many(v) => v.clone(),
        }
    }
}

/// `llm/config.json` (`llama`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct LlmConfig {
    /// Model type; must be `llama` when present.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Hidden size of the LLM (2560 in DAM-3B).
    pub hidden_size: usize,
    /// Hidden width of the SwiGLU MLP (6912 in DAM-3B).
    pub intermediate_size: usize,
    /// Query heads per attention layer (20 in DAM-3B).
    pub num_attention_heads: usize,
    /// Key/value heads (fewer than the query heads for grouped-query attention); absent
    /// means `num_attention_heads` (20 in DAM-3B: plain multi-head attention). Must divide
    /// `num_attention_heads`.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Number of decoder layers (32 in DAM-3B).
    pub num_hidden_layers: usize,
    /// Width of one attention head; absent means `hidden_size / num_attention_heads`
    /// (128 in DAM-3B). Must be even (rotary embedding).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Vocabulary size: rows of the token embedding and of the LM head (32000 in DAM-3B).
    pub vocab_size: usize,
    /// Longest sequence (prompt plus generated tokens) the rotary table covers (4096 in
    /// DAM-3B).
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Base of the rotary position embedding's frequencies (10000 in DAM-3B).
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RoPE scaling settings; must be absent or null.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// Epsilon of the RMSNorms (1e-5 in DAM-3B).
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// Whether the attention projections have biases; must be false.
    #[serde(default)]
    pub attention_bias: bool,
    /// Whether the MLP projections have biases; must be false.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Whether the LM head shares the token embedding's weights (false in DAM-3B: a
    /// separate `lm_head`).
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Activation of the gated MLP; must be `silu`.
    #[serde(default = "default_silu")]
    pub hidden_act: String,
    /// Tensor-parallel degree of pretraining (Hugging Face's sliced linears); must be 1.
    #[serde(default = "default_one")]
    pub pretraining_tp: usize,
    /// Beginning-of-sequence id (1 in DAM-3B); absent means 1 ([`LlmConfig::bos_id`]).
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id or ids (2 in DAM-3B); absent means 2 ([`LlmConfig::eos_ids`]).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id (0 in DAM-3B); informational.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// Sequence truncation limit for spliced inputs (4096 for DAM).
    #[serde(default)]
    pub tokenizer_model_max_length: Option<usize>,
}

fn default_max_pos() -> usize {
    4096
}
fn default_rope_theta() -> f64 {
    10000.0
}
fn default_rms_eps() -> f64 {
    1e-5
}
fn default_silu() -> String {
    "silu".into()
}

impl LlmConfig {
    /// Width of one attention head: `head_dim`, else `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Number of key/value heads: `num_key_value_heads`, else `num_attention_heads`.
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// The end-of-sequence ids: `eos_token_id` as a list, else `[2]`.
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_else(|| vec![2])
    }

    /// The beginning-of-sequence id: `bos_token_id`, else 1.
    pub fn bos_id(&self) -> u32 {
        self.bos_token_id.unwrap_or(1)
    }
}

/// `{height, width}` of the processor.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
pub struct ProcessorSize {
    /// Output height, in pixels (384 for DAM-3B).
    pub height: u32,
    /// Output width, in pixels (384 for DAM-3B); must equal `height`.
    pub width: u32,
}

/// `vision_tower/preprocessor_config.json` (`SiglipImageProcessor`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct PreprocessorConfig {
    /// Size every view is resized to; must be square and equal the vision tower's
    /// `image_size`.
    pub size: ProcessorSize,
    /// Pillow's resample filter code: 3 (bicubic, the default) or 2 (bilinear).
    #[serde(default = "default_resample")]
    pub resample: u32,
    /// Factor applied to the 8-bit values before normalising (1/255 by default).
    #[serde(default = "default_rescale")]
    pub rescale_factor: f64,
    /// Per-channel mean subtracted after rescaling (0.5 by default, as in SigLIP).
    #[serde(default = "default_half")]
    pub image_mean: [f64; 3],
    /// Per-channel standard deviation divided by after subtracting the mean (0.5 by
    /// default, as in SigLIP); must be non-zero.
    #[serde(default = "default_half")]
    pub image_std: [f64; 3],
    /// Whether views are resized; must be true.
    #[serde(default = "default_true")]
    pub do_resize: bool,
    /// Whether values are rescaled; must be true.
    #[serde(default = "default_true")]
    pub do_rescale: bool,
    /// Whether values are normalised; must be true.
    #[serde(default = "default_true")]
    pub do_normalize: bool,
}

fn default_resample() -> u32 {
    3
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}
fn default_half() -> [f64; 3] {
    [0.5; 3]
}

const PREPROCESSOR_FILE: &str = "vision_tower/preprocessor_config.json";
const VISION_FILE: &str = "vision_tower/config.json";
const CONTEXT_FILE: &str = "context_provider/config.json";
const PROJECTOR_FILE: &str = "mm_projector/config.json";
const LLM_FILE: &str = "llm/config.json";
const TOP_FILE: &str = "config.json";

impl PreprocessorConfig {
    /// Checks the values this implementation supports: a square size, a bicubic or
    /// bilinear filter, resizing, rescaling and normalising all on, and a non-zero std. Returns
    /// [`CoreError::UnsupportedConfig`] naming the first unsupported key.
    pub fn validate(&self) -> Result<()> {
        let f = PREPROCESSOR_FILE;
        if self.size.height != self.size.width {
            return Err(unsupported(f, "size", self.size, "a square size"));
        }
        if crate::resample::Filter::from_pillow_code(self.resample).is_none() {
            return Err(unsupported(f, "resample", self.resample, "2 (bilinear) or 3 (bicubic)"));
        }
        for (key, on) in [
            ("do_resize", self.do_resize),
            ("do_rescale", self.do_rescale),
            ("do_normalize", self.do_normalize),
        ] {
            if !on {
                return Err(unsupported(f, key, on, "true"));
            }
        }
        if self.image_std.contains(&0.0) {
            return Err(unsupported(f, "image_std", self.image_std, "non-zero values"));
        }
        Ok(())
    }
}

impl VisionConfig {
    /// Patches along each side: `image_size / patch_size` (27 in DAM-3B); leftover pixels
    /// are dropped.
    pub fn num_patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Checks `vision_tower/config.json`: a SigLIP model type, one mask channel, three
    /// colour channels, a GELU activation, `image_size` at least `patch_size` and heads dividing
    /// `hidden_size`. Returns [`CoreError::UnsupportedConfig`] naming the first unsupported key.
    pub fn validate(&self) -> Result<()> {
        let f = VISION_FILE;
        if let Some(t) = &self.model_type
            && t != "siglip_vision_model"
        {
            return Err(unsupported(f, "model_type", t, "\"siglip_vision_model\""));
        }
        if self.num_mask_channels != Some(1) {
            return Err(unsupported(
                f,
                "num_mask_channels",
                self.num_mask_channels,
                "1 (DAM's mask patch embedding)",
            ));
        }
        if self.num_channels != 3 {
            return Err(unsupported(f, "num_channels", self.num_channels, "3"));
        }
        check_gelu(f, &self.hidden_act)?;
        // 384 px with 14 px patches: the valid convolution drops the last 6 rows/columns.
        if self.patch_size == 0 || self.image_size < self.patch_size {
            return Err(unsupported(f, "image_size", self.image_size, "at least patch_size"));
        }
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(unsupported(
                f,
                "num_attention_heads",
                self.num_attention_heads,
                "a divisor of hidden_size",
            ));
        }
        Ok(())
    }
}

fn check_gelu(file: &str, act: &str) -> Result<()> {
    match act {
        "gelu_pytorch_tanh" | "gelu_new" | "gelu" => Ok(()),
        other => Err(unsupported(
            file,
            "hidden_act",
            other,
            "\"gelu_pytorch_tanh\", \"gelu_new\" or \"gelu\"",
        )),
    }
}

/// Whether a `hidden_act` value names the tanh approximation of GELU.
pub fn is_tanh_gelu(act: &str) -> bool {
    matches!(act, "gelu_pytorch_tanh" | "gelu_new")
}

impl ContextProviderConfig {
    /// Checks `context_provider/config.json` against the vision tower's config `vision`:
    /// type `cross_attn_end_to_all`, null layer indices, a GELU activation, the tower's
    /// `hidden_size`, at least its number of layers, and heads dividing `hidden_size`. Returns
    /// [`CoreError::UnsupportedConfig`] naming the first unsupported key.
    pub fn validate(&self, vision: &VisionConfig) -> Result<()> {
        let f = CONTEXT_FILE;
        if let Some(t) = &self.context_provider_type
            && t != "cross_attn_end_to_all"
        {
            return Err(unsupported(f, "context_provider_type", t, "\"cross_attn_end_to_all\""));
        }
        if let Some(v) = &self.context_provider_layer_indices
            && !v.is_null()
        {
            return Err(unsupported(
                f,
                "context_provider_layer_indices",
                v,
                "null (one adapter after every layer)",
            ));
        }
        check_gelu(f, &self.hidden_act)?;
        if self.hidden_size != vision.hidden_size {
            return Err(unsupported(
                f,
                "hidden_size",
                self.hidden_size,
                &format!("the vision tower's {}", vision.hidden_size),
            ));
        }
        if self.num_hidden_layers < vision.num_hidden_layers {
            return Err(unsupported(
                f,
                "num_hidden_layers",
                self.num_hidden_layers,
                &format!("at least the vision tower's {}", vision.num_hidden_layers),
            ));
        }
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(unsupported(
                f,
                "num_attention_heads",
                self.num_attention_heads,
                "a divisor of hidden_size",
            ));
        }
        Ok(())
    }
}

impl ProjectorConfig {
    /// Checks that the projector type is `mlp_downsample`; otherwise returns
    /// [`CoreError::UnsupportedConfig`].
    pub fn validate(&self) -> Result<()> {
        if self.mm_projector_type != "mlp_downsample" {
            return Err(unsupported(
                PROJECTOR_FILE,
                "mm_projector_type",
                &self.mm_projector_type,
                "\"mlp_downsample\"",
            ));
        }
        Ok(())
    }
}

impl LlmConfig {
    /// Checks `llm/config.json`: a LLaMA model with SiLU, no RoPE scaling, no biases,
    /// `pretraining_tp` 1, an even head width and key/value heads dividing the query heads. Returns
    /// [`CoreError::UnsupportedConfig`] naming the first unsupported key.
    pub fn validate(&self) -> Result<()> {
        let f = LLM_FILE;
        if let Some(t) = &self.model_type
            && t != "llama"
        {
            return Err(unsupported(f, "model_type", t, "\"llama\""));
        }
        if self.hidden_act != "silu" {
            return Err(unsupported(f, "hidden_act", &self.hidden_act, "\"silu\""));
        }
        if let Some(v) = &self.rope_scaling
            && !v.is_null()
        {
            return Err(unsupported(f, "rope_scaling", v, "null"));
        }
        if self.attention_bias {
            return Err(unsupported(f, "attention_bias", true, "false"));
        }
        if self.mlp_bias {
            return Err(unsupported(f, "mlp_bias", true, "false"));
        }
        if self.pretraining_tp != 1 {
            return Err(unsupported(f, "pretraining_tp", self.pretraining_tp, "1"));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(unsupported(
                f,
                "head_dim",
                self.head_dim(),
                "an even number (rotary embedding)",
            ));
        }
        let kv = self.num_kv_heads();
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return Err(unsupported(
                f,
                "num_key_value_heads",
                kv,
                "a divisor of num_attention_heads",
            ));
        }
        Ok(())
    }
}

/// Every config of a DAM checkpoint folder.
#[derive(Clone, Debug)]
pub struct CheckpointConfig {
    /// The top-level `config.json`.
    pub top: TopConfig,
    /// `vision_tower/config.json`.
    pub vision: VisionConfig,
    /// `context_provider/config.json`.
    pub context_provider: ContextProviderConfig,
    /// `mm_projector/config.json`.
    pub projector: ProjectorConfig,
    /// `llm/config.json`.
    pub llm: LlmConfig,
    /// `vision_tower/preprocessor_config.json`, or SigLIP's defaults at the tower's
    /// `image_size` when the file is absent.
    pub preprocessor: PreprocessorConfig,
}

impl CheckpointConfig {
    /// Reads `config.json` and the sub-folders' configs of a checkpoint folder, then validates.
    /// A sub-folder without its `config.json` falls back to the nested copy in the top-level
    /// file (`llm_cfg`, `vision_tower_cfg`, …).
    pub fn load(dir: &Path) -> Result<Self> {
        let top_path = dir.join(TOP_FILE);
        if !top_path.is_file() {
            return Err(CoreError::MissingCheckpointFile {
                dir: dir.to_path_buf(),
                file: TOP_FILE.into(),
            });
        }
        let top: TopConfig = read_json(&top_path)?;
        let vision: VisionConfig = sub_config(dir, VISION_FILE, top.vision_tower_cfg.as_ref())?;
        let context_provider = sub_config(dir, CONTEXT_FILE, top.context_provider_cfg.as_ref())?;
        let projector = sub_config(dir, PROJECTOR_FILE, top.mm_projector_cfg.as_ref())?;
        let llm = sub_config(dir, LLM_FILE, top.llm_cfg.as_ref())?;
        let pre_path = dir.join(PREPROCESSOR_FILE);
        let preprocessor = if pre_path.is_file() {
            read_json(&pre_path)?
        } else {
            PreprocessorConfig::siglip(vision.image_size as u32)
        };
        let config = Self {
            top,
            vision,
            context_provider,
            projector,
            llm,
            preprocessor,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value this implementation depends on.
    pub fn validate(&self) -> Result<()> {
        let f = TOP_FILE;
        let t = &self.top;
        if let Some(m) = &t.mask_encoder_cfg
            && !m.is_null()
        {
            return Err(unsupported(f, "mask_encoder_cfg", m, "null"));
        }
        if t.mm_vision_select_feature != "cls_patch" {
            return Err(unsupported(
                f,
                "mm_vision_select_feature",
                &t.mm_vision_select_feature,
                "\"cls_patch\"",
            ));
        }
        if t.image_aspect_ratio != "resize" {
            return Err(unsupported(
                f,
                "image_aspect_ratio",
                &t.image_aspect_ratio,
                "\"resize\"",
            ));
        }
        for (key, on) in [
            ("mm_use_im_start_end", t.mm_use_im_start_end),
            ("mm_use_im_patch_token", t.mm_use_im_patch_token),
            ("s2", t.s2),
        ] {
            if on {
                return Err(unsupported(f, key, on, "false"));
            }
        }
        self.vision.validate()?;
        self.vision_layers_to_run()?;
        self.context_provider.validate(&self.vision)?;
        self.projector.validate()?;
        self.llm.validate()?;
        self.preprocessor.validate()?;
        if self.preprocessor.size.height as usize != self.vision.image_size {
            return Err(unsupported(
                PREPROCESSOR_FILE,
                "size",
                self.preprocessor.size,
                &format!("the vision tower's image_size {}", self.vision.image_size),
            ));
        }
        if let Some(m) = t.mm_hidden_size
            && m != self.vision.hidden_size
        {
            return Err(unsupported(
                f,
                "mm_hidden_size",
                m,
                &format!("the vision tower's hidden_size {}", self.vision.hidden_size),
            ));
        }
        if let Some(h) = t.hidden_size
            && h != self.llm.hidden_size
        {
            return Err(unsupported(
                f,
                "hidden_size",
                h,
                &format!("the LLM's hidden_size {}", self.llm.hidden_size),
            ));
        }
        if let Some(n) = t.num_video_frames
            && n == 0
        {
            return Err(unsupported(f, "num_video_frames", n, "at least 1"));
        }
        Ok(())
    }

    /// How many SigLIP layers (and adapters) influence the selected features:
    /// `hidden_states[mm_vision_select_layer]` is the state after that many layers.
    pub fn vision_layers_to_run(&self) -> Result<usize> {
        let states = self.vision.num_hidden_layers as i64 + 1;
        let sel = self.top.mm_vision_select_layer;
        let idx = if sel < 0 { states + sel } else { sel };
        if !(1..states).contains(&idx) {
            return Err(unsupported(
                TOP_FILE,
                "mm_vision_select_layer",
                sel,
                &format!("an index of one of the {states} hidden states after the embeddings"),
            ));
        }
        Ok(idx as usize)
    }

    /// Frames per clip for video checkpoints (8 for DAM-3B-Video).
    pub fn num_video_frames(&self) -> usize {
        self.top.num_video_frames.unwrap_or(8)
    }

    /// DAM-3B's configuration (spec §4.1, §4.5, §5, §6.1), for building a random-weight model
    /// of the real size without a checkpoint.
    pub fn dam_3b() -> Self {
        let vision = VisionConfig {
            model_type: Some("siglip_vision_model".into()),
            hidden_size: 1152,
            intermediate_size: 4304,
            num_attention_heads: 16,
            num_hidden_layers: 27,
            image_size: 384,
            patch_size: 14,
            num_channels: 3,
            num_mask_channels: Some(1),
            hidden_act: default_gelu_tanh(),
            layer_norm_eps: 1e-6,
        };
        let context_provider = ContextProviderConfig {
            context_provider_type: Some("cross_attn_end_to_all".into()),
            hidden_size: 1152,
            intermediate_size: 4304,
            num_attention_heads: 16,
            num_hidden_layers: 27,
            hidden_act: default_gelu_tanh(),
            layer_norm_eps: 1e-6,
            context_provider_layer_indices: None,
            masked_cross_attn: false,
            context_image_as_queries: false,
            treat_image_as_cimage: false,
            zero_init_output: true,
        };
        let llm = LlmConfig {
            model_type: Some("llama".into()),
            hidden_size: 2560,
            intermediate_size: 6912,
            num_attention_heads: 20,
            num_key_value_heads: Some(20),
            num_hidden_layers: 32,
            head_dim: None,
            vocab_size: 32000,
            max_position_embeddings: 4096,
            rope_theta: 10000.0,
            rope_scaling: None,
            rms_norm_eps: 1e-5,
            attention_bias: false,
            mlp_bias: false,
            tie_word_embeddings: false,
            hidden_act: default_silu(),
            pretraining_tp: 1,
            bos_token_id: Some(1),
            eos_token_id: Some(TokenIds::One(2)),
            pad_token_id: Some(0),
            tokenizer_model_max_length: Some(4096),
        };
        let top = TopConfig {
            model_type: Some("llava_llama".into()),
            mm_vision_select_layer: -2,
            mm_vision_select_feature: default_select_feature(),
            image_aspect_ratio: default_aspect(),
            num_video_frames: Some(8),
            model_dtype: Some("torch.bfloat16".into()),
            mm_hidden_size: Some(1152),
            hidden_size: Some(2560),
            mask_encoder_cfg: None,
            mm_use_im_start_end: false,
            mm_use_im_patch_token: false,
            s2: false,
            llm_cfg: None,
            vision_tower_cfg: None,
            mm_projector_cfg: None,
            context_provider_cfg: None,
        };
        Self {
            top,
            vision,
            context_provider,
            projector: ProjectorConfig {
                mm_projector_type: "mlp_downsample".into(),
            },
            llm,
            preprocessor: PreprocessorConfig::siglip(384),
        }
    }
}

impl PreprocessorConfig {
    /// SigLIP's processor at side `size`: bicubic, 1/255, mean = std = 0.5.
    pub fn siglip(size: u32) -> Self {
        Self {
            size: ProcessorSize {
                height: size,
                width: size,
            },
            resample: 3,
            rescale_factor: 1.0 / 255.0,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            do_resize: true,
            do_rescale: true,
            do_normalize: true,
        }
    }
}

fn sub_config<T: DeserializeOwned>(dir: &Path, file: &str, nested: Option<&serde_json::Value>) -> Result<T> {
    let path: PathBuf = dir.join(file);
    if path.is_file() {
        return read_json(&path);
    }
    match nested {
        Some(v) if v.is_object() => serde_json::from_value(v.clone()).map_err(|e| CoreError::ConfigFile {
            path: dir.join(TOP_FILE),
            reason: format!("nested config for {file}: {e}"),
        }),
        _ => Err(CoreError::MissingCheckpointFile {
            dir: dir.to_path_buf(),
            file: file.into(),
        }),
    }
}
