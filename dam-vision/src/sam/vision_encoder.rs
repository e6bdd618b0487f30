//! The SAM ViT image encoder (`SamVisionEncoder`): patch embedding + absolute position
//! embedding, pre-norm blocks with windowed or global attention and decomposed relative
//! positions, and the conv/LayerNorm neck.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{FloatDType, Int, Tensor, TensorData, activation};
use dam_core::nn::LayerNorm;
use dam_core::{Init, Loader, WeightError};

use super::config::SamVisionConfig;
use super::layers::{Activation, Conv2d, LayerNorm2d, MlpBlock};

/// Table rows `q - k + size - 1` for every (q, k): the `get_rel_pos` lookup without
/// interpolation (the tables always have length `2 * size - 1` here).
fn rel_pos_lookup(table: Tensor<2>, size: usize) -> Tensor<3> {
    let d = table.dims()[1];
    let idx: Vec<i64> = (0..size)
        .flat_map(|q| (0..size).map(move |k| (q + size - 1 - k) as i64))
        .collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [size * size]), &table.device());
    table.select(0, idx).reshape([size, size, d])
}

/// `SamVisionAttention`: fused QKV, (q·scale)@kᵀ plus decomposed relative positions computed
/// from the unscaled q, softmax, @v, output projection.
#[derive(Module, Debug)]
pub struct SamVisionAttention {
    /// `qkv`: the fused query/key/value projection, D → 3D.
    pub qkv: Linear,
    /// `proj`: the output projection, D → D.
    pub proj: Linear,
    /// `[2 * size - 1, head_dim]`, size = window size or grid size.
    pub rel_pos_h: Option<Param<Tensor<2>>>,
    /// `rel_pos_w`: the width-axis table, shaped like `rel_pos_h`.
    pub rel_pos_w: Option<Param<Tensor<2>>>,
    /// Number of attention heads.
    pub num_heads: usize,
    /// `head_dim^-0.5`, applied to q before q@kᵀ.
    pub scale: f64,
}

impl SamVisionAttention {
    /// Loads the attention of a layer whose attended size is `input_size` (the window size, or
    /// the grid size for a global layer).
    pub fn load(loader: &Loader, config: &SamVisionConfig, input_size: usize) -> Result<Self, WeightError> {
        let dim = config.hidden_size;
        let head_dim = config.head_dim();
        let (rel_pos_h, rel_pos_w) = if config.use_rel_pos {
            let n = 2 * input_size - 1;
            (
                Some(Param::from_tensor(loader.tensor(
                    "rel_pos_h",
                    [n, head_dim],
                    Init::Zeros,
                )?)),
                Some(Param::from_tensor(loader.tensor(
                    "rel_pos_w",
                    [n, head_dim],
                    Init::Zeros,
                )?)),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            qkv: loader.linear("qkv", dim, 3 * dim, config.qkv_bias)?,
            proj: loader.linear("proj", dim, dim, true)?,
            rel_pos_h,
            rel_pos_w,
            num_heads: config.num_attention_heads,
            scale: (head_dim as f64).powf(-0.5),
        })
    }

    /// `[N, h, w, C]` → `[N, h, w, C]`, attending within each of the N windows.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, h, w, c] = x.dims();
        let heads = self.num_heads;
        let d = c / heads;
        let l = h * w;
        let qkv = self
            .qkv
            .forward(x.reshape([n, l, c]))
            .reshape([n, l, 3, heads, d])
            .permute([2, 0, 3, 1, 4])
            .reshape([3, n * heads, l, d]);
        let part = |i: usize| qkv.clone().narrow(0, i, 1).reshape([n * heads, l, d]);
        let (q, k, v) = (part(0), part(1), part(2));
        let mut attn = q.clone().mul_scalar(self.scale).matmul(k.swap_dims(1, 2));
        if let (Some(rh), Some(rw)) = (&self.rel_pos_h, &self.rel_pos_w) {
            attn = add_decomposed_rel_pos(attn, q, rh.val(), rw.val(), h, w);
        }
        // transformers: softmax(..., dtype=torch.float32).to(query.dtype).
        let dtype = attn.dtype();
        let attn = activation::softmax(attn.cast(FloatDType::F32), 2).cast(dtype);
        let out = attn
            .matmul(v)
            .reshape([n, heads, h, w, d])
            .permute([0, 2, 3, 1, 4])
            .reshape([n, h, w, c]);
        self.proj.forward(out)
    }
}

/// `attn + q·R_h[qh − kh + h − 1] (over kh) + q·R_w[qw − kw + w − 1] (over kw)`, with the
/// unscaled q; `attn` is `[BH, h·w, h·w]`, `q` is `[BH, h·w, d]`.
fn add_decomposed_rel_pos(
    attn: Tensor<3>,
    q: Tensor<3>,
    rel_pos_h: Tensor<2>,
    rel_pos_w: Tensor<2>,
    h: usize,
    w: usize,
) -> Tensor<3> {
    let [bh, _, d] = q.dims();
    let rh = rel_pos_lookup(rel_pos_h, h); // [qh, kh, d]
    let rw = rel_pos_lookup(rel_pos_w, w); // [qw, kw, d]
    let q = q.reshape([bh, h, w, d]);
    // rel_h[b, qh, qw, kh] = Σ_c q[b, qh, qw, c] · rh[qh, kh, c]: a matmul batched over qh.
    let rel_h = q
        .clone()
        .permute([1, 0, 2, 3])
        .reshape([h, bh * w, d])
        .matmul(rh.swap_dims(1, 2))
        .reshape([h, bh, w, h])
        .permute([1, 0, 2, 3]);
    // rel_w[b, qh, qw, kw] = Σ_c q[b, qh, qw, c] · rw[qw, kw, c]: batched over qw.
    let rel_w = q
        .permute([2, 0, 1, 3])
        .reshape([w, bh * h, d])
        .matmul(rw.swap_dims(1, 2))
        .reshape([w, bh, h, w])
        .permute([1, 2, 0, 3]);
    let attn = attn.reshape([bh, h, w, h, w]) + rel_h.unsqueeze_dim::<5>(4) + rel_w.unsqueeze_dim::<5>(3);
    attn.reshape([bh, h * w, h * w])
}

/// `SamVisionLayer`: `x + attn(LN1(x))` (windowed when `window_size > 0`), then
/// `x + MLP(LN2(x))`.
#[derive(Module, Debug)]
pub struct SamVisionLayer {
    /// `layer_norm1`: before the attention.
    pub layer_norm1: LayerNorm,
    /// `attn`: the (windowed or global) attention.
    pub attn: SamVisionAttention,
    /// `layer_norm2`: before the MLP.
    pub layer_norm2: LayerNorm,
    /// `mlp`: the MLP block (`mlp_dim`, `hidden_act`).
    pub mlp: MlpBlock,
    /// 0 for a global layer.
    pub window_size: usize,
}

impl SamVisionLayer {
    /// Loads layer `index`, windowed or global according to `global_attn_indexes`.
    pub fn load(loader: &Loader, config: &SamVisionConfig, index: usize) -> Result<Self, WeightError> {
        let window_size = config.layer_window_size(index);
        let input_size = if window_size == 0 {
            config.grid_size()
        } else {
            window_size
        };
        let dim = config.hidden_size;
        let act = Activation::from_name(&config.hidden_act).unwrap_or(Activation::Gelu);
        Ok(Self {
            layer_norm1: LayerNorm::load(loader, "layer_norm1", dim, config.layer_norm_eps)?,
            attn: SamVisionAttention::load(&loader.at("attn"), config, input_size)?,
            layer_norm2: LayerNorm::load(loader, "layer_norm2", dim, config.layer_norm_eps)?,
            mlp: MlpBlock::load(&loader.at("mlp"), dim, config.mlp_dim(), act)?,
            window_size,
        })
    }

    /// `[B, g, g, D]` → `[B, g, g, D]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let residual = x.clone();
        let h = self.layer_norm1.forward(x);
        let h = if self.window_size > 0 {
            let [_, height, width, _] = h.dims();
            let (windows, padded) = window_partition(h, self.window_size);
            let out = self.attn.forward(windows);
            window_unpartition(out, self.window_size, padded, (height, width))
        } else {
            self.attn.forward(h)
        };
        let x = residual + h;
        let mlp = self.mlp.forward(self.layer_norm2.forward(x.clone()));
        x + mlp
    }
}

/// Zero-pads `[B, H, W, C]` at the bottom and right to multiples of `ws` and cuts it into
/// `[B · nH · nW, ws, ws, C]` windows; returns the padded size too.
fn window_partition(x: Tensor<4>, ws: usize) -> (Tensor<4>, (usize, usize)) {
    let [b, h, w, c] = x.dims();
    let pad_h = (ws - h % ws) % ws;
    let pad_w = (ws - w % ws) % ws;
    let x = if pad_h > 0 || pad_w > 0 {
        x.pad(
            [(0, pad_h), (0, pad_w), (0, 0)],
            burn::tensor::ops::PadMode::Constant(0.0),
        )
    } else {
        x
    };
    let (hp, wp) = (h + pad_h, w + pad_w);
    let windows = x
        .reshape([b, hp / ws, ws, wp / ws, ws, c])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b * (hp / ws) * (wp / ws), ws, ws, c]);
    (windows, (hp, wp))
}

/// The inverse of [`window_partition`], cropping the padding away.
fn window_unpartition(windows: Tensor<4>, ws: usize, padded: (usize, usize), size: (usize, usize)) -> Tensor<4> {
    let (hp, wp) = padded;
    let (h, w) = size;
    let [n, _, _, c] = windows.dims();
    let b = n / ((hp / ws) * (wp / ws));
    let x = windows
        .reshape([b, hp / ws, wp / ws, ws, ws, c])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b, hp, wp, c]);
    if hp > h || wp > w {
        x.slice([0..b, 0..h, 0..w, 0..c])
    } else {
        x
    }
}

/// `SamVisionNeck`: 1×1 conv, channels-first LN, 3×3 conv (padding 1), channels-first LN.
#[derive(Module, Debug)]
pub struct SamVisionNeck {
    /// `conv1`: 1×1 conv D → C, no bias.
    pub conv1: Conv2d,
    /// `layer_norm1`: channels-first LayerNorm over C (eps 1e-6).
    pub layer_norm1: LayerNorm2d,
    /// `conv2`: 3×3 conv C → C with padding 1, no bias.
    pub conv2: Conv2d,
    /// `layer_norm2`: channels-first LayerNorm over C (eps 1e-6).
    pub layer_norm2: LayerNorm2d,
}

impl SamVisionNeck {
    /// Loads the neck; fails with a `WeightError` for a missing or mis-shaped tensor.
    pub fn load(loader: &Loader, config: &SamVisionConfig) -> Result<Self, WeightError> {
        let (d, c) = (config.hidden_size, config.output_channels);
        Ok(Self {
            conv1: Conv2d::load(loader, "conv1", d, c, 1, 1, 0, false)?,
            layer_norm1: LayerNorm2d::load(loader, "layer_norm1", c, 1e-6)?,
            conv2: Conv2d::load(loader, "conv2", c, c, 3, 1, 1, false)?,
            layer_norm2: LayerNorm2d::load(loader, "layer_norm2", c, 1e-6)?,
        })
    }

    /// Channels-last `[B, g, g, D]` → `[B, C, g, g]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv1.forward(x.permute([0, 3, 1, 2]));
        let x = self.conv2.forward(self.layer_norm1.forward(x));
        self.layer_norm2.forward(x)
    }
}

/// `SamVisionEncoder` (`vision_encoder.*`).
#[derive(Module, Debug)]
pub struct SamVisionEncoder {
    /// `patch_embed.projection`: conv with kernel = stride = patch size.
    pub patch_embed: Conv2d,
    /// `[1, g, g, D]`, added after the patch embedding.
    pub pos_embed: Option<Param<Tensor<4>>>,
    /// `layers.i`: the `num_hidden_layers` ViT blocks.
    pub layers: Vec<SamVisionLayer>,
    /// `neck`: the conv/LayerNorm neck, D → C channels.
    pub neck: SamVisionNeck,
}

impl SamVisionEncoder {
    /// Loads the encoder; fails with a `WeightError` for a missing or mis-shaped tensor.
    pub fn load(loader: &Loader, config: &SamVisionConfig) -> Result<Self, WeightError> {
        let (d, p, g) = (config.hidden_size, config.patch_size, config.grid_size());
        let patch_embed = Conv2d::load(
            &loader.at("patch_embed"),
            "projection",
            config.num_channels,
            d,
            p,
            p,
            0,
            true,
        )?;
        let pos_embed = if config.use_abs_pos {
            Some(Param::from_tensor(loader.tensor(
                "pos_embed",
                [1, g, g, d],
                Init::Zeros,
            )?))
        } else {
            None
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| SamVisionLayer::load(&loader.at("layers").at(i), config, i))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            patch_embed,
            pos_embed,
            layers,
            neck: SamVisionNeck::load(&loader.at("neck"), config)?,
        })
    }

    /// Patch embedding + `pos_embed`, channels-last `[B, g, g, D]`.
    pub fn embed_patches(&self, pixel_values: Tensor<4>) -> Tensor<4> {
        let x = self.patch_embed.forward(pixel_values).permute([0, 2, 3, 1]);
        match &self.pos_embed {
            Some(pos) => x + pos.val(),
            None => x,
        }
    }

    /// `[B, 3, S, S]` → image embeddings `[B, C, g, g]`.
    pub fn forward(&self, pixel_values: Tensor<4>) -> Tensor<4> {
        let mut x = self.embed_patches(pixel_values);
        for layer in &self.layers {
            x = layer.forward(x);
        }
        self.neck.forward(x)
    }

    /// Like [`Self::forward`], also returning the hidden states (transformers'
    /// `output_hidden_states`): the patch embeddings + `pos_embed`, then each layer's output,
    /// all channels-last `[B, g, g, D]`.
    pub fn forward_with_hidden_states(&self, pixel_values: Tensor<4>) -> (Tensor<4>, Vec<Tensor<4>>) {
        let mut x = self.embed_patches(pixel_values);
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        states.push(x.clone());
        for layer in &self.layers {
            x = layer.forward(x);
            states.push(x.clone());
        }
        (self.neck.forward(x), states)
    }
}
