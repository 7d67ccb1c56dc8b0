//! Running a model on images, in one place for the CLI, the page and the training worker:
//! standardise, batch and forward; the margin (logit PNEUMONIA − logit NORMAL) that every
//! probability, threshold and calibration starts from; and accuracy from logits.
//!
//! Probabilities and log-losses of margins live in [`super::metrics`].

use burn::prelude::*;

use super::{
    model::ResNet,
    preprocess::{self, Normalization},
    weights::{self, WeightsError},
};

/// Images per forward pass of [`margins`].
pub const BATCH: usize = 64;

/// Standardises images in [0, 1] as `norm` says, batches them and runs the model.
///
/// # Shapes
/// - images: `size²` values each
/// - output `[images.len(), 2]` (NORMAL, PNEUMONIA), still on the device
pub fn logits<I: AsRef<[f32]>>(
    model: &ResNet,
    images: &[I],
    norm: Normalization,
    size: usize,
    device: &Device,
) -> Tensor<2> {
    let batch: Vec<Vec<f32>> = images
        .iter()
        .map(|img| {
            let mut x = img.as_ref().to_vec();
            preprocess::normalize(&mut x, norm);
            x
        })
        .collect();
    model.forward(preprocess::batch_tensor(&batch, size, device))
}

/// logit(PNEUMONIA) − logit(NORMAL) of each row of read-back logits.
pub fn margins_of(logits: &[f32]) -> Vec<f32> {
    logits.chunks_exact(2).map(|l| l[1] - l[0]).collect()
}

/// How many rows of read-back logits pick the true class (PNEUMONIA when `true`).
pub fn correct(logits: &[f32], pneumonia: impl IntoIterator<Item = bool>) -> usize {
    logits
        .chunks_exact(2)
        .zip(pneumonia)
        .filter(|(l, y)| (l[1] > l[0]) == *y)
        .count()
}

/// Margins of images in [0, 1], [`BATCH`] at a time, read back synchronously (native
/// backends).
#[cfg(not(target_arch = "wasm32"))]
pub fn margins<I: AsRef<[f32]>>(
    model: &ResNet,
    images: &[I],
    norm: Normalization,
    size: usize,
    device: &Device,
) -> Result<Vec<f32>, WeightsError> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(BATCH) {
        let values = weights::read(logits(model, chunk, norm, size, device))?;
        out.extend(margins_of(&values));
    }
    Ok(out)
}

/// The views test-time augmentation averages, in the order `--tta N` takes the first `N`:
/// `(zoom, horizontal shift as a fraction of the side)`: the image, zoomed in 8 %, zoomed out
/// 8 %, shifted 4 % left, shifted 4 % right (all within what training's augmentation applies).
pub const TTA_VIEWS: [(f32, f32); 5] = [
    (1.0, 0.0),
    (1.08, 0.0),
    (0.92, 0.0),
    (1.0, -0.04),
    (1.0, 0.04),
];

/// A square image zoomed by `zoom` about its centre and shifted by `shift` of its side,
/// resampled bilinearly, the edge pixels carried outwards where it uncovers the border.
///
/// # Shapes
/// - `unit`: `size²` values, row-major; returns the same
pub fn tta_view(unit: &[f32], size: usize, zoom: f32, shift: f32) -> Vec<f32> {
    let n = size.max(1);
    let last = (n - 1) as f32;
    let c = last / 2.0;
    let at = |x: usize, y: usize| unit.get(y * n + x).copied().unwrap_or(0.0);
    let axis = |v: f32| {
        let v = v.clamp(0.0, last);
        let lo = v.floor() as usize;
        (lo, (lo + 1).min(n - 1), v - lo as f32)
    };
    let mut out = Vec::with_capacity(n * n);
    for y in 0..n {
        let (y0, y1, fy) = axis(c + (y as f32 - c) / zoom);
        for x in 0..n {
            let (x0, x1, fx) = axis(c + (x as f32 - c) / zoom - shift * n as f32);
            let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
            let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// [`margins`] averaged over the first `views` of [`TTA_VIEWS`] (1 or 0: no augmentation).
#[cfg(not(target_arch = "wasm32"))]
pub fn margins_tta<I: AsRef<[f32]>>(
    model: &ResNet,
    images: &[I],
    norm: Normalization,
    size: usize,
    device: &Device,
    views: usize,
) -> Result<Vec<f32>, WeightsError> {
    let views = views.clamp(1, TTA_VIEWS.len());
    let mut sum = margins(model, images, norm, size, device)?;
    for &(zoom, shift) in &TTA_VIEWS[1..views] {
        for chunk_start in (0..images.len()).step_by(BATCH) {
            let chunk = &images[chunk_start..(chunk_start + BATCH).min(images.len())];
            let viewed: Vec<Vec<f32>> = chunk
                .iter()
                .map(|i| tta_view(i.as_ref(), size, zoom, shift))
                .collect();
            let m = margins(model, &viewed, norm, size, device)?;
            for (acc, v) in sum[chunk_start..].iter_mut().zip(m) {
                *acc += v;
            }
        }
    }
    Ok(sum.into_iter().map(|m| m / views as f32).collect())
}

/// Margins of images in [0, 1] in one forward pass, read back asynchronously (any backend).
/// In a page or a worker, call it on small slices and yield in between.
pub async fn margins_async<I: AsRef<[f32]>>(
    model: &ResNet,
    images: &[I],
    norm: Normalization,
    size: usize,
    device: &Device,
) -> Result<Vec<f32>, WeightsError> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let values = weights::read_async(logits(model, images, norm, size, device)).await?;
    Ok(margins_of(&values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tta_views_are_the_image_itself_zoomed_and_shifted() {
        let size = 8;
        let img: Vec<f32> = (0..64).map(|i| (i % 8) as f32 / 7.0).collect(); // a ramp left to right
        assert_eq!(tta_view(&img, size, 1.0, 0.0), img);
        let left = tta_view(&img, size, 1.0, -0.25); // 2 px left: the right edge carries on
        assert!((left[0] - img[2]).abs() < 1e-6 && (left[7] - img[7]).abs() < 1e-6);
        let zoomed = tta_view(&img, size, 2.0, 0.0);
        // Zoomed in about the centre: the ramp is half as steep, the centre unchanged.
        let slope = |v: &[f32]| v[5] - v[4];
        assert!((slope(&zoomed) - slope(&img) / 2.0).abs() < 1e-6);
        assert!((zoomed[3] + zoomed[4] - img[3] - img[4]).abs() < 1e-6);
    }

    #[test]
    fn margins_and_correct_count_from_logits() {
        let logits = [0.0, 2.0, 1.0, -1.0, 0.5, 0.5];
        assert_eq!(margins_of(&logits), vec![2.0, -2.0, 0.0]);
        // A tie is not a PNEUMONIA call.
        assert_eq!(correct(&logits, [true, false, false]), 3);
        assert_eq!(correct(&logits, [false, true, true]), 0);
    }
}
