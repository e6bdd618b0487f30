//! The mask decoder (`SamMaskDecoder`) and its two-way transformer (`SamTwoWayTransformer`).
//!
//! Token tensors are `[P, N, C]` with P the point batch (one prompt per row, all on the same
//! image); transformers' extra batch axis of size 1 is dropped.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Tensor, activation};
use dam_core::nn::LayerNorm;
use dam_core::{Loader, WeightError};

use super::config::SamMaskDecoderConfig;
use super::layers::{Activation, ConvTranspose2d, EmbeddingTable, FeedForward, LayerNorm2d, MlpBlock};

/// `SamAttention`: projections to an internal width C / downsample, multi-head attention
/// with the logits divided by √head_dim after q@kᵀ, output projection back to C.
#[derive(Module, Debug)]
pub struct SamAttention {
    /// `q_proj`: C → internal width.
    pub q_proj: Linear,
    /// `k_proj`: C → internal width.
    pub k_proj: Linear,
    /// `v_proj`: C → internal width.
    pub v_proj: Linear,
    /// `out_proj`: internal width → C.
    pub out_proj: Linear,
    /// Number of attention heads.
    pub num_heads: usize,
}

impl SamAttention {
    /// Loads the four projections for an internal width `hidden / downsample`.
    pub fn load(loader: &Loader, hidden: usize, downsample: usize, num_heads: usize) -> Result<Self, WeightError> {
        let internal = hidden / downsample;
        Ok(Self {
            q_proj: loader.linear("q_proj", hidden, internal, true)?,
            k_proj: loader.linear("k_proj", hidden, internal, true)?,
            v_proj: loader.linear("v_proj", hidden, internal, true)?,
            out_proj: loader.linear("out_proj", internal, hidden, true)?,
            num_heads,
        })
    }

    fn separate_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [p, n, c] = x.dims();
        x.reshape([p, n, self.num_heads, c / self.num_heads]).swap_dims(1, 2)
    }

    /// `query` `[P, Nq, C]`, `key`/`value` `[P, Nk, C]` → `[P, Nq, C]`.
    pub fn forward(&self, query: Tensor<3>, key: Tensor<3>, value: Tensor<3>) -> Tensor<3> {
        let q = self.separate_heads(self.q_proj.forward(query));
        let k = self.separate_heads(self.k_proj.forward(key));
        let v = self.separate_heads(self.v_proj.forward(value));
        let [p, h, nq, d] = q.dims();
        let attn = q.matmul(k.swap_dims(2, 3)).div_scalar((d as f64).sqrt());
        let attn = activation::softmax(attn, 3);
        let out = attn.matmul(v).swap_dims(1, 2).reshape([p, nq, h * d]);
        self.out_proj.forward(out)
    }
}

/// `SamTwoWayAttentionBlock`.
#[derive(Module, Debug)]
pub struct SamTwoWayAttentionBlock {
    /// `self_attn`: self-attention of the tokens (no downsampling).
    pub self_attn: SamAttention,
    /// `layer_norm1`: after the self-attention.
    pub layer_norm1: LayerNorm,
    /// `cross_attn_token_to_image`: the tokens attend to the image (downsample 2).
    pub cross_attn_token_to_image: SamAttention,
    /// `layer_norm2`: after the token-to-image attention.
    pub layer_norm2: LayerNorm,
    /// `mlp`: the tokens' MLP (`mlp_dim`, `hidden_act`).
    pub mlp: MlpBlock,
    /// `layer_norm3`: after the MLP.
    pub layer_norm3: LayerNorm,
    /// `layer_norm4`: after the image-to-token attention, on the image tokens.
    pub layer_norm4: LayerNorm,
    /// `cross_attn_image_to_token`: the image attends to the tokens (downsample 2).
    pub cross_attn_image_to_token: SamAttention,
    /// Block 0: self-attention without the point embedding and without a residual.
    pub skip_first_layer_pe: bool,
}

impl SamTwoWayAttentionBlock {
    /// Loads one block; `skip_first_layer_pe` is set for block 0.
    pub fn load(
        loader: &Loader,
        config: &SamMaskDecoderConfig,
        skip_first_layer_pe: bool,
    ) -> Result<Self, WeightError> {
        let c = config.hidden_size;
        let heads = config.num_attention_heads;
        let eps = config.layer_norm_eps;
        let act = Activation::from_name(&config.hidden_act).unwrap_or(Activation::Relu);
        // transformers builds the blocks' cross attentions with the block's own default
        // downsample rate 2, not the config value (which only the final attention reads).
        Ok(Self {
            self_attn: SamAttention::load(&loader.at("self_attn"), c, 1, heads)?,
            layer_norm1: LayerNorm::load(loader, "layer_norm1", c, eps)?,
            cross_attn_token_to_image: SamAttention::load(&loader.at("cross_attn_token_to_image"), c, 2, heads)?,
            layer_norm2: LayerNorm::load(loader, "layer_norm2", c, eps)?,
            mlp: MlpBlock::load(&loader.at("mlp"), c, config.mlp_dim, act)?,
            layer_norm3: LayerNorm::load(loader, "layer_norm3", c, eps)?,
            layer_norm4: LayerNorm::load(loader, "layer_norm4", c, eps)?,
            cross_attn_image_to_token: SamAttention::load(&loader.at("cross_attn_image_to_token"), c, 2, heads)?,
            skip_first_layer_pe,
        })
    }

    /// One block; returns the new (queries, keys).
    pub fn forward(
        &self,
        queries: Tensor<3>,
        keys: Tensor<3>,
        query_pe: Tensor<3>,
        key_pe: Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward(queries.clone(), queries.clone(), queries)
        } else {
            let q = queries.clone() + query_pe.clone();
            queries.clone() + self.self_attn.forward(q.clone(), q, queries)
        };
        let queries = self.layer_norm1.forward(queries);

        let q = queries.clone() + query_pe.clone();
        let k = keys.clone() + key_pe.clone();
        let queries = queries + self.cross_attn_token_to_image.forward(q, k, keys.clone());
        let queries = self.layer_norm2.forward(queries);

        let queries = queries.clone() + self.mlp.forward(queries);
        let queries = self.layer_norm3.forward(queries);

        let q = queries.clone() + query_pe;
        let k = keys.clone() + key_pe;
        let keys = keys + self.cross_attn_image_to_token.forward(k, q, queries.clone());
        let keys = self.layer_norm4.forward(keys);
        (queries, keys)
    }
}

/// `SamTwoWayTransformer` (`mask_decoder.transformer.*`).
#[derive(Module, Debug)]
pub struct SamTwoWayTransformer {
    /// `layers.i`: the `num_hidden_layers` two-way blocks.
    pub layers: Vec<SamTwoWayAttentionBlock>,
    /// `final_attn_token_to_image`: the last token-to-image attention (config downsample rate).
    pub final_attn_token_to_image: SamAttention,
    /// eps 1e-5 (`nn.LayerNorm`'s default), unlike the blocks.
    pub layer_norm_final_attn: LayerNorm,
}

impl SamTwoWayTransformer {
    /// Loads the blocks, the final attention and its LayerNorm.
    pub fn load(loader: &Loader, config: &SamMaskDecoderConfig) -> Result<Self, WeightError> {
        let c = config.hidden_size;
        let layers = (0..config.num_hidden_layers)
            .map(|i| SamTwoWayAttentionBlock::load(&loader.at("layers").at(i), config, i == 0))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            layers,
            final_attn_token_to_image: SamAttention::load(
                &loader.at("final_attn_token_to_image"),
                c,
                config.attention_downsample_rate,
                config.num_attention_heads,
            )?,
            layer_norm_final_attn: LayerNorm::load(loader, "layer_norm_final_attn", c, 1e-5)?,
        })
    }

    /// `point_embeddings` `[P, Nq, C]`; `image_embeddings` and `image_pe` `[P, C, g, g]`.
    /// Returns (queries `[P, Nq, C]`, keys `[P, g·g, C]`).
    pub fn forward(
        &self,
        point_embeddings: Tensor<3>,
        image_embeddings: Tensor<4>,
        image_pe: Tensor<4>,
    ) -> (Tensor<3>, Tensor<3>) {
        let flat = |t: Tensor<4>| {
            let [p, c, h, w] = t.dims();
            t.reshape([p, c, h * w]).swap_dims(1, 2)
        };
        let keys_pe = flat(image_pe);
        let mut keys = flat(image_embeddings);
        let mut queries = point_embeddings.clone();
        for layer in &self.layers {
            (queries, keys) = layer.forward(queries, keys, point_embeddings.clone(), keys_pe.clone());
        }
        let q = queries.clone() + point_embeddings;
        let k = keys.clone() + keys_pe;
        let queries = queries + self.final_attn_token_to_image.forward(q, k, keys.clone());
        (self.layer_norm_final_attn.forward(queries), keys)
    }
}

/// What the mask decoder returns.
#[derive(Debug, Clone)]
pub struct MaskDecoderOutput {
    /// Low-resolution mask logits `[P, K, 4g, 4g]`; K = 3 (tokens 1–3) with multimask
    /// output, else 1 (token 0).
    pub masks: Tensor<4>,
    /// Predicted IoU `[P, K]`.
    pub iou_scores: Tensor<2>,
    /// Two-way transformer token output `[P, 1 + M + T, C]` (iou token, mask tokens, prompt).
    pub queries: Tensor<3>,
    /// Two-way transformer image-token output `[P, g·g, C]`.
    pub keys: Tensor<3>,
}

/// `SamMaskDecoder` (`mask_decoder.*`).
#[derive(Module, Debug)]
pub struct SamMaskDecoder {
    /// `iou_token` `[1, C]`: the output token the IoU head reads.
    pub iou_token: EmbeddingTable,
    /// `[num_multimask_outputs + 1, C]`.
    pub mask_tokens: EmbeddingTable,
    /// `transformer`: the two-way transformer.
    pub transformer: SamTwoWayTransformer,
    /// `upscale_conv1`: transposed conv C → C/4, stride 2.
    pub upscale_conv1: ConvTranspose2d,
    /// `upscale_conv2`: transposed conv C/4 → C/8, stride 2.
    pub upscale_conv2: ConvTranspose2d,
    /// `upscale_layer_norm`: channels-first LayerNorm over C/4 after `upscale_conv1`.
    pub upscale_layer_norm: LayerNorm2d,
    /// `output_hypernetworks_mlps.i`: per mask token, a 3-layer MLP C → C/8 whose output is
    /// dotted with the upscaled embedding to give that token's mask.
    pub output_hypernetworks_mlps: Vec<FeedForward>,
    /// `iou_prediction_head`: maps the IoU token to one IoU score per mask token.
    pub iou_prediction_head: FeedForward,
    /// Candidate masks in multimask mode; there are `num_multimask_outputs + 1` mask tokens.
    pub num_multimask_outputs: usize,
}

impl SamMaskDecoder {
    /// Loads the decoder; fails with a `WeightError` for a missing or mis-shaped tensor.
    pub fn load(loader: &Loader, config: &SamMaskDecoderConfig) -> Result<Self, WeightError> {
        let c = config.hidden_size;
        let num_mask_tokens = config.num_multimask_outputs + 1;
        let output_hypernetworks_mlps = (0..num_mask_tokens)
            .map(|i| FeedForward::load(&loader.at("output_hypernetworks_mlps").at(i), c, c, c / 8, 3))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            iou_token: EmbeddingTable::load(loader, "iou_token", 1, c)?,
            mask_tokens: EmbeddingTable::load(loader, "mask_tokens", num_mask_tokens, c)?,
            transformer: SamTwoWayTransformer::load(&loader.at("transformer"), config)?,
            upscale_conv1: ConvTranspose2d::load(loader, "upscale_conv1", c, c / 4, 2)?,
            upscale_conv2: ConvTranspose2d::load(loader, "upscale_conv2", c / 4, c / 8, 2)?,
            upscale_layer_norm: LayerNorm2d::load(loader, "upscale_layer_norm", c / 4, 1e-6)?,
            output_hypernetworks_mlps,
            iou_prediction_head: FeedForward::load(
                &loader.at("iou_prediction_head"),
                c,
                config.iou_head_hidden_dim,
                num_mask_tokens,
                config.iou_head_depth,
            )?,
            num_multimask_outputs: config.num_multimask_outputs,
        })
    }

    /// `image_embeddings`, `image_pe` and `dense` are `[1, C, g, g]` (one image), `sparse` is
    /// `[P, T, C]`. With `sparse_is_zero` (transformers tests `sparse.sum() != 0`) the prompt
    /// tokens are left out.
    pub fn forward(
        &self,
        image_embeddings: Tensor<4>,
        image_pe: Tensor<4>,
        sparse: Tensor<3>,
        dense: Tensor<4>,
        sparse_is_zero: bool,
        multimask_output: bool,
    ) -> MaskDecoderOutput {
        let [p, _, c] = sparse.dims();
        let [_, _, g, _] = image_embeddings.dims();
        let num_mask_tokens = self.num_multimask_outputs + 1;
        let output_tokens = Tensor::cat(vec![self.iou_token.weight.val(), self.mask_tokens.weight.val()], 0)
            .unsqueeze_dim::<3>(0)
            .repeat_dim(0, p);
        let tokens = if sparse_is_zero {
            output_tokens
        } else {
            Tensor::cat(vec![output_tokens, sparse], 1)
        };
        let image = (image_embeddings + dense).repeat_dim(0, p);
        let image_pe = image_pe.repeat_dim(0, p);
        let (queries, keys) = self.transformer.forward(tokens, image, image_pe);

        let iou_token_out = queries.clone().narrow(1, 0, 1).reshape([p, c]);
        let upscaled = keys.clone().swap_dims(1, 2).reshape([p, c, g, g]);
        let upscaled = self.upscale_conv1.forward(upscaled);
        let upscaled = gelu(self.upscale_layer_norm.forward(upscaled));
        let upscaled = gelu(self.upscale_conv2.forward(upscaled)); // [P, C/8, 4g, 4g]
        let [_, c8, hu, wu] = upscaled.dims();

        let hyper_in: Vec<Tensor<2>> = self
            .output_hypernetworks_mlps
            .iter()
            .enumerate()
            .map(|(i, mlp)| mlp.forward(queries.clone().narrow(1, 1 + i, 1).reshape([p, c])))
            .collect();
        let hyper_in = Tensor::stack::<3>(hyper_in, 1); // [P, M, C/8]
        let masks = hyper_in
            .matmul(upscaled.reshape([p, c8, hu * wu]))
            .reshape([p, num_mask_tokens, hu, wu]);
        let iou = self.iou_prediction_head.forward(iou_token_out); // [P, M]

        let (start, len) = if multimask_output {
            (1, num_mask_tokens - 1)
        } else {
            (0, 1)
        };
        MaskDecoderOutput {
            masks: masks.narrow(1, start, len),
            iou_scores: iou.narrow(1, start, len),
            queries,
            keys,
        }
    }
}

fn gelu(x: Tensor<4>) -> Tensor<4> {
    Activation::Gelu.forward(x)
}
