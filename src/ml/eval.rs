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
    fn margins_and_correct_count_from_logits() {
        let logits = [0.0, 2.0, 1.0, -1.0, 0.5, 0.5];
        assert_eq!(margins_of(&logits), vec![2.0, -2.0, 0.0]);
        // A tie is not a PNEUMONIA call.
        assert_eq!(correct(&logits, [true, false, false]), 3);
        assert_eq!(correct(&logits, [false, true, true]), 0);
    }
}
