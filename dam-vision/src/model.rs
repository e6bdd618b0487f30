//! The localized vision backbone and projector together (spec §4.4, §4.6): a context pass
//! over the full view, a focal pass over the crop with the context provider, the degenerate
//! branch per view, and the projector — for a batch of N views in one forward.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use dam_core::config::CheckpointConfig;
use dam_core::{Loader, Weights};

use crate::context_provider::ContextProvider;
use crate::error::{Result, VisionError};
use crate::projector::Projector;
use crate::tower::{Context, VisionTower};

/// SigLIP tower + context provider + projector of a DAM checkpoint.
#[derive(Module, Debug)]
pub struct VisionModel {
    /// `vision_tower/`: SigLIP with the mask patch embedding.
    pub vision_tower: VisionTower,
    /// `context_provider/`: the gated cross-attention adapters of the focal pass.
    pub context_provider: ContextProvider,
    /// `mm_projector/`: 2×2 merge and MLP into the LLM's width.
    pub mm_projector: Projector,
    /// `masked_cross_attn`: crop queries may only attend to full-image patches that overlap
    /// the region (off for DAM-3B).
    pub masked_cross_attn: bool,
    /// `context_image_as_queries`: swap the two 4-channel halves first (off for DAM-3B).
    pub context_image_as_queries: bool,
    /// `treat_image_as_cimage`: every view takes the adapter path, even when the crop equals
    /// the full view (off for DAM-3B).
    pub treat_image_as_cimage: bool,
    /// Side of a patch in pixels (14 in DAM-3B).
    pub patch_size: usize,
    /// Number of layers before the selected hidden state (`mm_vision_select_layer`, −2 → 26).
    pub select_layer: usize,
}

/// Everything one forward produces; the intermediate tensors serve tests and `--dump`.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// Context pass features z (hidden state −2, all tokens), `[N, T, C]`.
    pub full_features: Tensor<3>,
    /// Focal pass features of the views whose crop differs from the full view, `[Nc, T, C]`.
    pub crop_features: Option<Tensor<3>>,
    /// What enters the projector, `[N, T, C]`.
    pub projector_input: Tensor<3>,
    /// Visual tokens for the LLM, `[N, T', H]`.
    pub projector_output: Tensor<3>,
    /// Per-layer states of the context pass (with `keep_states`).
    pub full_hidden_states: Vec<Tensor<3>>,
    /// Per-layer states of the focal pass (with `keep_states`).
    pub crop_hidden_states: Vec<Tensor<3>>,
}

impl VisionModel {
    /// Parameters held on the device (the layers that are loaded, adapters, projector).
    pub fn num_params(&self) -> usize {
        self.vision_tower.num_params() + self.context_provider.num_params() + self.mm_projector.num_params()
    }

    /// Loads `vision_tower/`, `context_provider/` and `mm_projector/` of a checkpoint folder,
    /// running (and loading) only the layers that influence the selected features.
    pub fn load(dir: &Path, config: &CheckpointConfig, device: &Device) -> Result<Self> {
        Self::load_layers(dir, config, device, config.vision_layers_to_run()?)
    }

    /// Like [`VisionModel::load`] with an explicit number of layers (up to all of them, to
    /// inspect every hidden state).
    pub fn load_layers(dir: &Path, config: &CheckpointConfig, device: &Device, n_layers: usize) -> Result<Self> {
        let vision = Weights::open_dir(&dir.join("vision_tower"))?;
        let context = Weights::open_dir(&dir.join("context_provider"))?;
        let projector = Weights::open_dir(&dir.join("mm_projector"))?;
        Self::from_weights([&vision, &context, &projector], config, device, n_layers)
    }

    /// DAM-3B-size (or any config's size) model with random weights, for benchmarks.
    pub fn random(config: &CheckpointConfig, device: &Device) -> Result<Self> {
        let w = Weights::Random;
        Self::from_weights([&w, &w, &w], config, device, config.vision_layers_to_run()?)
    }

    /// Builds the model from the three weight sources (vision tower, context provider,
    /// projector).
    pub fn from_weights(
        [vision, context, projector]: [&Weights; 3],
        config: &CheckpointConfig,
        device: &Device,
        n_layers: usize,
    ) -> Result<Self> {
        config.validate()?;
        let vc = &config.vision;
        let cc = &config.context_provider;
        let select = config.vision_layers_to_run()?;
        if n_layers > vc.num_hidden_layers || n_layers < select {
            return Err(VisionError::Shape {
                what: "requested vision layers",
                found: vec![n_layers],
                expected: format!("between {select} and {}", vc.num_hidden_layers),
            });
        }
        Ok(Self {
            vision_tower: VisionTower::load(&Loader::new(vision, device).at("vision_model"), vc, n_layers)?,
            context_provider: ContextProvider::load(
                &Loader::new(context, device).at("context_provider_module"),
                cc,
                n_layers,
            )?,
            mm_projector: Projector::load(&Loader::new(projector, device), vc.hidden_size, config.llm.hidden_size)?,
            masked_cross_attn: cc.masked_cross_attn,
            context_image_as_queries: cc.context_image_as_queries,
            treat_image_as_cimage: cc.treat_image_as_cimage,
            patch_size: vc.patch_size,
            select_layer: select,
        })
    }

    /// Visual tokens `[N, T', H]` for `pixel_values` `[N, 8, S, S]`; `crop_differs[i]` is view
    /// i's `cimage_mask`.
    pub fn encode(&self, pixel_values: Tensor<4>, crop_differs: &[bool]) -> Result<Tensor<3>> {
        Ok(self.forward(pixel_values, crop_differs, false)?.projector_output)
    }

    /// The full forward with intermediates.
    pub fn forward(&self, pixel_values: Tensor<4>, crop_differs: &[bool], keep_states: bool) -> Result<VisionOutput> {
        let [n, ch, s, s2] = pixel_values.dims();
        if ch != 8 || s != s2 || crop_differs.len() != n {
            return Err(VisionError::Shape {
                what: "pixel_values",
                found: vec![n, ch, s, s2],
                expected: format!("[{}, 8, S, S] with one crop flag per view", crop_differs.len()),
            });
        }
        let device = pixel_values.device();
        let (mut full, mut crop) = (pixel_values.clone().narrow(1, 0, 4), pixel_values.narrow(1, 4, 4));
        if self.context_image_as_queries {
            std::mem::swap(&mut full, &mut crop);
        }

        // 1. Context pass: full image + full mask, no adapters.
        let (z, full_states) = self
            .vision_tower
            .forward(full.clone(), None, self.select_layer, keep_states);

        // 2. Focal pass for the views whose crop differs (all of them with
        //    treat_image_as_cimage); the others keep z (upstream's `cimage_mask`).
        let adapter_views: Vec<usize> = (0..n)
            .filter(|&i| crop_differs[i] || self.treat_image_as_cimage)
            .collect();
        let (crop_features, crop_states) = if adapter_views.is_empty() {
            (None, Vec::new())
        } else {
            let all = adapter_views.len() == n;
            let idx = || {
                Tensor::<1, Int>::from_data(
                    TensorData::new(
                        adapter_views.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                        [adapter_views.len()],
                    ),
                    &device,
                )
            };
            let (crop_in, z_in, full_in) = if all {
                (crop, z.clone(), full)
            } else {
                (crop.select(0, idx()), z.clone().select(0, idx()), full.select(0, idx()))
            };
            let key_mask = if self.masked_cross_attn {
                Some(self.key_mask(full_in, &adapter_views)?)
            } else {
                None
            };
            let ctx = Context {
                provider: &self.context_provider,
                features: z_in,
                key_mask,
            };
            let (h, states) = self
                .vision_tower
                .forward(crop_in, Some(&ctx), self.select_layer, keep_states);
            (Some(h), states)
        };

        let projector_input = match &crop_features {
            None => z.clone(),
            Some(c) if adapter_views.len() == n => c.clone(),
            Some(c) => {
                let mut next = 0;
                let parts = (0..n)
                    .map(|i| {
                        if adapter_views.get(next) == Some(&i) {
                            next += 1;
                            c.clone().narrow(0, next - 1, 1)
                        } else {
                            z.clone().narrow(0, i, 1)
                        }
                    })
                    .collect();
                Tensor::cat(parts, 0)
            }
        };
        let projector_output = self.mm_projector.forward(projector_input.clone());
        Ok(VisionOutput {
            full_features: z,
            crop_features,
            projector_input,
            projector_output,
            full_hidden_states: full_states,
            crop_hidden_states: crop_states,
        })
    }

    /// `masked_cross_attn` key mask `[Nc, T]` (`true` = masked) from the full view's mask
    /// channel: mapped back to [0, 1], summed over each patch; patches summing below 1e-5 are
    /// masked (upstream `get_token_mask_bias`).
    fn key_mask(&self, full: Tensor<4>, views: &[usize]) -> Result<Tensor<2, Bool>> {
        let [nc, _, s, _] = full.dims();
        let p = self.patch_size;
        let g = s / p;
        let m = full.narrow(1, 3, 1).narrow(2, 0, g * p).narrow(3, 0, g * p);
        let m = (m + 1.0) / 2.0;
        let sums = m.reshape([nc, g, p, g, p]).sum_dim(4).sum_dim(2).reshape([nc, g * g]);
        let masked = sums.lower_elem(1e-5);
        let any_open = masked
            .clone()
            .bool_not()
            .any_dim(1)
            .try_into_data()
            .map_err(|e| VisionError::Device(format!("reading back the key mask: {e:?}")))?;
        for (k, open) in any_open.iter::<bool>().enumerate() {
            if !open {
                return Err(VisionError::EmptyKeyMask { view: views[k] });
            }
        }
        Ok(masked)
    }
}

/// Stacks focal prompts into the model input `[N, 8, S, S]` and their crop flags.
pub fn stack_focal_prompts(prompts: &[&dam_core::FocalPrompt], device: &Device) -> Result<(Tensor<4>, Vec<bool>)> {
    let Some(first) = prompts.first() else {
        return Err(VisionError::Shape {
            what: "focal prompts",
            found: vec![0],
            expected: "at least one view".into(),
        });
    };
    let s = first.size as usize;
    if let Some(p) = prompts.iter().find(|p| p.size != first.size) {
        return Err(VisionError::Shape {
            what: "focal prompt views",
            found: vec![p.size as usize],
            expected: format!("all views of side {s}"),
        });
    }
    let mut values = Vec::with_capacity(prompts.len() * 8 * s * s);
    for p in prompts {
        values.extend_from_slice(&p.pixel_values);
    }
    let pixels = Tensor::from_data(TensorData::new(values, [prompts.len(), 8, s, s]), device);
    Ok((pixels, prompts.iter().map(|p| p.crop_differs).collect()))
}

/// Splits `[N, T', H]` visual tokens into one `[T', H]` block per view.
pub fn split_views(tokens: Tensor<3>) -> Vec<Tensor<2>> {
    let [n, t, h] = tokens.dims();
    (0..n).map(|i| tokens.clone().narrow(0, i, 1).reshape([t, h])).collect()
}
