//! `SamProcessor` / `SamImageProcessor` preprocessing on the host, bit-exact: Pillow resize of
//! the uint8 image to the longest side, rescale in f64, normalise in f32, zero padding after
//! normalisation; and the f64 rescaling of point and box coordinates.

use burn::tensor::{Device, Tensor, TensorData};
use dam_core::error::check_image_size;
use dam_core::resample::{Filter, PassOrder, resize_rgb};
use image::RgbImage;

use super::config::{PREPROCESSOR_FILE, SamProcessorConfig};
use super::error::{Result, SamError};

/// The processor's output for one image.
#[derive(Clone, Debug, PartialEq)]
pub struct SamPixelValues {
    /// `[3, pad_h, pad_w]` row-major, f32.
    pub data: Vec<f32>,
    /// (height, width) of the padded input.
    pub pad_size: (usize, usize),
    /// `original_sizes`: (H, W) of the input image.
    pub original_size: (usize, usize),
    /// `reshaped_input_sizes`: (h', w') after the resize.
    pub reshaped_size: (usize, usize),
}

impl SamPixelValues {
    /// The pixel values as a `[1, 3, pad_h, pad_w]` tensor.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        let (h, w) = self.pad_size;
        Tensor::from_data(TensorData::new(self.data.clone(), [1, 3, h, w]), device)
    }
}

/// The SAM processor (image side and prompt coordinates).
#[derive(Clone, Debug)]
pub struct SamProcessor {
    config: SamProcessorConfig,
    filter: Filter,
}

impl SamProcessor {
    /// Checks the config: the resize and the padding must be on (the model needs a fixed
    /// square input), the filter must be Pillow bilinear or bicubic, mean/std need 3 values.
    pub fn new(config: SamProcessorConfig) -> Result<Self> {
        let f = PREPROCESSOR_FILE;
        let filter = Filter::from_pillow_code(config.resample).ok_or_else(|| {
            SamError::config(
                f,
                "resample",
                format!("{} is not supported; use 2 (bilinear) or 3 (bicubic)", config.resample),
            )
        })?;
        if !config.do_resize {
            return Err(SamError::config(f, "do_resize", "must be true"));
        }
        if !config.do_pad {
            return Err(SamError::config(f, "do_pad", "must be true"));
        }
        if config.size.longest_edge == 0 {
            return Err(SamError::config(f, "size.longest_edge", "must be at least 1"));
        }
        if config.pad_size.height < config.size.longest_edge || config.pad_size.width < config.size.longest_edge {
            return Err(SamError::config(
                f,
                "pad_size",
                format!(
                    "{}x{} is smaller than longest_edge {}",
                    config.pad_size.height, config.pad_size.width, config.size.longest_edge
                ),
            ));
        }
        if config.image_mean.len() != 3 || config.image_std.len() != 3 {
            return Err(SamError::config(
                f,
                "image_mean",
                "image_mean and image_std need 3 values",
            ));
        }
        if config.do_normalize && config.image_std.contains(&0.0) {
            return Err(SamError::config(f, "image_std", "contains 0"));
        }
        Ok(Self { config, filter })
    }

    /// The config this processor was built with.
    pub fn config(&self) -> &SamProcessorConfig {
        &self.config
    }

    /// `(pad_h, pad_w)`.
    pub fn pad_size(&self) -> (usize, usize) {
        (self.config.pad_size.height, self.config.pad_size.width)
    }

    /// `_get_preprocess_shape`: s = L / max(H, W) in f64, h' = int(H·s + 0.5),
    /// w' = int(W·s + 0.5) (halves round up).
    pub fn target_size(&self, height: usize, width: usize) -> (usize, usize) {
        let longest = self.config.size.longest_edge as f64;
        let scale = longest / height.max(width) as f64;
        let round = |v: usize| (v as f64 * scale + 0.5) as usize;
        (round(height), round(width))
    }

    /// Resizes, rescales, normalises and pads an image.
    pub fn preprocess(&self, image: &RgbImage) -> Result<SamPixelValues> {
        let (w, h) = image.dimensions();
        check_image_size(w, h)?;
        let (th, tw) = self.target_size(h as usize, w as usize);
        if th == 0 || tw == 0 {
            return Err(SamError::BadInput(format!(
                "a {w}x{h} image resizes to {tw}x{th} for a longest edge of {}; it is too elongated",
                self.config.size.longest_edge
            )));
        }
        let resized = if (th, tw) == (h as usize, w as usize) {
            image.clone()
        } else {
            resize_rgb(image, tw as u32, th as u32, self.filter, PassOrder::HorizontalFirst)
        };
        let (ph, pw) = self.pad_size();
        let c = &self.config;
        let mean: Vec<f32> = c.image_mean.iter().map(|&v| v as f32).collect();
        let std: Vec<f32> = c.image_std.iter().map(|&v| v as f32).collect();
        // One table per channel: the 256 possible values, computed as numpy does.
        let tables: Vec<[f32; 256]> = (0..3)
            .map(|ch| {
                let mut t = [0f32; 256];
                for (u, slot) in t.iter_mut().enumerate() {
                    let mut v = if c.do_rescale {
                        (u as f64 * c.rescale_factor) as f32
                    } else {
                        u as f32
                    };
                    if c.do_normalize {
                        v = (v - mean[ch]) / std[ch];
                    }
                    *slot = v;
                }
                t
            })
            .collect();
        let mut data = vec![0f32; 3 * ph * pw];
        let raw = resized.as_raw();
        for y in 0..th {
            for x in 0..tw {
                let px = &raw[(y * tw + x) * 3..(y * tw + x) * 3 + 3];
                for ch in 0..3 {
                    data[ch * ph * pw + y * pw + x] = tables[ch][px[ch] as usize];
                }
            }
        }
        Ok(SamPixelValues {
            data,
            pad_size: (ph, pw),
            original_size: (h as usize, w as usize),
            reshaped_size: (th, tw),
        })
    }

    /// `_normalize_coordinates` for points (x, y) of an image of `original_size` (H, W):
    /// `x · (w'/W)`, `y · (h'/H)` in f64.
    pub fn normalize_points(&self, points: &[(f64, f64)], original_size: (usize, usize)) -> Vec<[f64; 2]> {
        let (h, w) = original_size;
        let (th, tw) = self.target_size(h, w);
        let (sx, sy) = (tw as f64 / w as f64, th as f64 / h as f64);
        points.iter().map(|&(x, y)| [x * sx, y * sy]).collect()
    }

    /// `_normalize_coordinates` for a box `[x1, y1, x2, y2]`; the processor casts boxes to f32
    /// first.
    pub fn normalize_box(&self, bbox: [f64; 4], original_size: (usize, usize)) -> [f64; 4] {
        let (h, w) = original_size;
        let (th, tw) = self.target_size(h, w);
        let (sx, sy) = (tw as f64 / w as f64, th as f64 / h as f64);
        let b = bbox.map(|v| v as f32 as f64);
        [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy]
    }
}
