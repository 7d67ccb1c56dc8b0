//! Where the model looked: Grad-CAM for the PNEUMONIA score, computed right after the
//! prediction from its pass, on whatever backend the classifier runs on.
//!
//! The last stage of the ResNet is 1/32 of the input (4×4 cells at 128 px), too coarse to point
//! at a lobe, so the map is taken one stage earlier, at 1/16 (8×8 at 128 px): the gradient of
//! the PNEUMONIA log-odds (logit PNEUMONIA − logit NORMAL, which orders images as P(pneumonia)
//! does) with respect to stage 3's activations, averaged over each channel, weights those
//! activations; their positive sum is the map (Selvaraju et al. 2017). The input square covers
//! the whole image, squashed, so cell (row, col) of the map covers the same fraction of the
//! image.
//!
//! The prediction's own pass keeps its activations after stage 3 on the device; right after it,
//! an autodiff copy of the model (frozen: no parameter gradients, batch norm on its running
//! statistics) runs stage 4 and the head again from them, so the backward pass goes through
//! stage 4 and the head only, and the prediction is the plain model's.

use burn::prelude::*;

use super::model::ResNet;

/// Opacity of a heatmap's colour where the map is 1, in `xray explain --out`'s PNGs and the
/// page's thumbnails.
pub const OVERLAY_OPACITY: f32 = 0.6;

/// Stages run before the map is taken (of 4).
pub const CAM_AFTER_STAGES: usize = 3;

/// A class-activation map over the model's input square (and so over the whole image).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Heatmap {
    /// Cells across.
    pub width: usize,
    /// Cells down.
    pub height: usize,
    /// Row-major, `width · height` values in [0, 1]: each image's map divided by its largest
    /// cell (all zeros when nothing in the image speaks for PNEUMONIA).
    pub values: Vec<f32>,
}

impl Heatmap {
    /// Normalises a raw map to [0, 1]: its lowest cell becomes 0 and its highest 1 (all zeros
    /// for a flat map). Relative, not absolute: this model mostly argues by the absence of
    /// NORMAL evidence, so the raw Grad-CAM of the PNEUMONIA log-odds is often negative
    /// everywhere, and its positive part (as in Grad-CAM proper) would then be empty; the
    /// relative map still ranks where the PNEUMONIA evidence is strongest.
    pub fn from_raw(width: usize, height: usize, raw: &[f32]) -> Self {
        let finite = || raw.iter().copied().filter(|v| v.is_finite());
        let max = finite().fold(f32::MIN, f32::max);
        let min = finite().fold(f32::MAX, f32::min);
        let span = max - min;
        let values = raw
            .iter()
            .map(|&v| {
                if span > 0.0 && v.is_finite() {
                    ((v - min) / span).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect();
        Self {
            width,
            height,
            values,
        }
    }

    /// The cell with the largest value: (row, col), the first one on ties.
    pub fn peak(&self) -> (usize, usize) {
        let i = self
            .values
            .iter()
            .enumerate()
            .fold(
                (0, f32::MIN),
                |best, (i, &v)| if v > best.1 { (i, v) } else { best },
            )
            .0;
        (i / self.width.max(1), i % self.width.max(1))
    }

    /// The map bilinearly resampled to `w`×`h` pixels, cell centres at pixel
    /// `((col + 0.5) · w / width, …)`, row-major.
    pub fn upsample(&self, w: usize, h: usize) -> Vec<f32> {
        (0..h).flat_map(|y| self.upsample_row(y, w, h)).collect()
    }

    /// Row `y` of [`upsample`](Self::upsample)`(w, h)`.
    pub fn upsample_row(&self, y: usize, w: usize, h: usize) -> Vec<f32> {
        let (gw, gh) = (self.width.max(1), self.height.max(1));
        let at = |r: usize, c: usize| self.values.get(r * gw + c).copied().unwrap_or(0.0);
        let axis = |p: usize, n: usize, g: usize| {
            let f =
                ((p as f32 + 0.5) * g as f32 / n.max(1) as f32 - 0.5).clamp(0.0, (g - 1) as f32);
            let lo = f.floor() as usize;
            (lo, (lo + 1).min(g - 1), f - lo as f32)
        };
        let (r0, r1, fy) = axis(y, h, gh);
        (0..w)
            .map(|x| {
                let (c0, c1, fx) = axis(x, w, gw);
                let top = at(r0, c0) * (1.0 - fx) + at(r0, c1) * fx;
                let bottom = at(r1, c0) * (1.0 - fx) + at(r1, c1) * fx;
                top * (1.0 - fy) + bottom * fy
            })
            .collect()
    }
}

/// The autodiff copy of a model that Grad-CAM runs its last stage and head on.
#[derive(Debug, Clone)]
pub struct Explainer {
    tail: ResNet,
}

impl Explainer {
    /// A frozen autodiff copy of `model` (a validation-mode model) on `device`.
    pub fn new(model: &ResNet, device: &Device) -> Self {
        Self {
            tail: model.clone().fork(&device.clone().autodiff()).no_grad(),
        }
    }

    /// The raw Grad-CAM map of a batch from its activations after [`CAM_AFTER_STAGES`]
    /// stages: stage 4 and the head on the autodiff copy, one backward pass of the summed
    /// PNEUMONIA log-odds, the gradient averaged per channel weighting the activations.
    ///
    /// # Shapes
    /// - input `[batch, channels, h, w]` (`trunk(x, CAM_AFTER_STAGES)`)
    /// - output `[batch, h · w]`, row-major, unnormalised (see [`Heatmap::from_raw`])
    pub fn cells(&self, a: Tensor<4>) -> Tensor<2> {
        let [batch, _, h, w] = a.dims();
        let device = a.device();
        let leaf = a.clone().autodiff().require_grad();
        let logits = self
            .tail
            .head(self.tail.features_from(leaf.clone(), CAM_AFTER_STAGES));
        let log_odds = logits.clone().slice(s![.., 1]) - logits.slice(s![.., 0]);
        let grads = log_odds.sum().backward();
        match leaf.grad(&grads) {
            Some(g) => {
                let alpha = g.mean_dim(3).mean_dim(2);
                (a * alpha).sum_dim(1).reshape([batch, h * w])
            }
            None => Tensor::zeros([batch, h * w], &device),
        }
    }
}

/// How much hiding what the heatmap points at lowers P(pneumonia), against hiding a region of
/// the same shape elsewhere ([`faithfulness`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faithfulness {
    /// Images measured.
    pub images: usize,
    /// Fraction of the model's input square hidden.
    pub fraction: f64,
    /// Mean drop in P(pneumonia) when the heatmap's highest-ranked pixels are replaced by the
    /// image's mean.
    pub top_drop: f64,
    /// Mean drop when the same mask, moved to a random place (wrapping round the edges), is.
    pub random_drop: f64,
    /// Random placements per image.
    pub draws: usize,
}

/// The heatmap's mask over the model's `size`×`size` input: its `fraction` highest-ranked
/// pixels (the map bilinearly upsampled), row-major.
pub fn top_mask(heatmap: &Heatmap, size: usize, fraction: f64) -> Vec<bool> {
    let up = heatmap.upsample(size, size);
    let mut order: Vec<usize> = (0..up.len()).collect();
    order.sort_by(|&a, &b| up[b].total_cmp(&up[a]).then(a.cmp(&b)));
    let keep = ((up.len() as f64) * fraction).round() as usize;
    let mut mask = vec![false; up.len()];
    for &i in order.iter().take(keep) {
        mask[i] = true;
    }
    mask
}

/// `mask` moved by (`dx`, `dy`) pixels, wrapping round the edges (so its area is unchanged).
pub fn shifted(mask: &[bool], size: usize, dx: usize, dy: usize) -> Vec<bool> {
    let mut out = vec![false; mask.len()];
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        let (y, x) = (i / size, i % size);
        out[((y + dy) % size) * size + (x + dx) % size] = true;
    }
    out
}

/// `unit` with the masked pixels replaced by the image's mean.
pub fn occlude(unit: &[f32], mask: &[bool]) -> Vec<f32> {
    let mean = unit.iter().sum::<f32>() / unit.len().max(1) as f32;
    unit.iter()
        .zip(mask)
        .map(|(&v, &m)| if m { mean } else { v })
        .collect()
}

/// The deletion test of a heatmap's faithfulness over `files`: for each, P(pneumonia) of the
/// image, of the image with its heatmap's top `fraction` hidden, and of `draws` images with the
/// same mask at random places (seeded).
#[cfg(not(target_arch = "wasm32"))]
pub fn faithfulness(
    classifier: &super::classifier::Classifier,
    files: &[Vec<u8>],
    fraction: f64,
    draws: usize,
    seed: u64,
) -> Result<Faithfulness, super::classifier::AnalyseError> {
    let size = classifier.card.model.input_size;
    let mut rng = super::train::Rng::new(seed);
    let (mut top, mut random) = (0.0f64, 0.0f64);
    for bytes in files {
        let p = classifier.prepare(bytes)?;
        let unit = p.unit().to_vec();
        let masked = |mask: &[bool]| classifier.with_unit(&p, occlude(&unit, mask));
        let explained = classifier.explain_prepared(&p)?;
        let base = f64::from(explained.prediction.p_pneumonia);
        let Some(heatmap) = explained.heatmap else {
            continue;
        };
        let mask = top_mask(&heatmap, size, fraction);
        let hidden = classifier.analyse_prepared(&masked(&mask))?;
        top += base - f64::from(hidden.prediction.p_pneumonia);
        for _ in 0..draws {
            let moved = shifted(&mask, size, rng.below(size), rng.below(size));
            let hidden = classifier.analyse_prepared(&masked(&moved))?;
            random += (base - f64::from(hidden.prediction.p_pneumonia)) / draws as f64;
        }
    }
    let n = files.len().max(1) as f64;
    Ok(Faithfulness {
        images: files.len(),
        fraction,
        top_drop: top / n,
        random_drop: random / n,
        draws,
    })
}

/// The colour of heatmap value `v` in [0, 1]: blue, cyan, yellow, red (the page's legend uses
/// the same stops).
pub fn colour(v: f32) -> [u8; 3] {
    const STOPS: [(f32, [f32; 3]); 4] = [
        (0.0, [0.0, 0.0, 255.0]),
        (1.0 / 3.0, [0.0, 255.0, 255.0]),
        (2.0 / 3.0, [255.0, 255.0, 0.0]),
        (1.0, [255.0, 0.0, 0.0]),
    ];
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let i = STOPS
        .iter()
        .rposition(|s| s.0 <= v)
        .unwrap_or(0)
        .min(STOPS.len() - 2);
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let t = (v - a.0) / (b.0 - a.0);
    std::array::from_fn(|k| (a.1[k] + (b.1[k] - a.1[k]) * t).round() as u8)
}

/// `heatmap` blended over `gray` at the image's own resolution, as an RGB PNG: each pixel's
/// colour weighs `opacity · v` (so where the map is low the X-ray shows through), the map
/// bilinearly upsampled row by row (no full-size copy of it is made).
pub fn overlay_png(
    gray: &super::input::Gray16,
    heatmap: &Heatmap,
    opacity: f32,
) -> Result<Vec<u8>, image::ImageError> {
    let rgb = blend(
        gray.as_raw(),
        gray.width(),
        |v| (v >> 8) as u8,
        heatmap,
        opacity,
    );
    super::preprocess::encode_png(rgb.into())
}

/// [`overlay_png`] over an 8-bit gray image (the page's thumbnails).
pub fn overlay_png8(
    gray: &image::GrayImage,
    heatmap: &Heatmap,
    opacity: f32,
) -> Result<Vec<u8>, image::ImageError> {
    let rgb = blend(gray.as_raw(), gray.width(), |v| v, heatmap, opacity);
    super::preprocess::encode_png(rgb.into())
}

/// One pixel of an overlay: gray level `g` under the heatmap's colour for value `v`, the colour
/// weighing `opacity · v` (so where the map is low the X-ray shows through). The page's viewer
/// and the CLI's overlays both blend with it.
pub fn blend_pixel(g: u8, v: f32, opacity: f32) -> [u8; 3] {
    let g = f32::from(g);
    let a = opacity * v;
    let c = colour(v);
    std::array::from_fn(|k| (g * (1.0 - a) + f32::from(c[k]) * a).round() as u8)
}

fn blend<P: Copy>(
    pixels: &[P],
    width: u32,
    to8: impl Fn(P) -> u8,
    heatmap: &Heatmap,
    opacity: f32,
) -> image::RgbImage {
    let w = width.max(1) as usize;
    let h = pixels.len() / w;
    let mut rgb = image::RgbImage::new(w as u32, h as u32);
    let opacity = opacity.clamp(0.0, 1.0);
    for (y, (src, dst)) in pixels
        .chunks_exact(w)
        .zip(rgb.chunks_exact_mut(3 * w))
        .enumerate()
    {
        let row = heatmap.upsample_row(y, w, h);
        for ((&px, out), v) in src.iter().zip(dst.chunks_exact_mut(3)).zip(row) {
            out.copy_from_slice(&blend_pixel(to8(px), v, opacity));
        }
    }
    rgb
}
