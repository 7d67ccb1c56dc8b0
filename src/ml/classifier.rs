//! Inference: a loaded model with its card on one device.

use burn::prelude::*;

use super::{
    card::ModelCard,
    model::ResNet,
    preprocess::{self, InputError},
    weights::{self, WeightsError},
};

/// One classified image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// `NORMAL` or `PNEUMONIA`.
    pub label: &'static str,
    /// Calibrated probability of pneumonia.
    pub p_pneumonia: f32,
}

/// A model ready to classify, with the card that says how to read its outputs.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// The network, in inference mode.
    pub model: ResNet,
    /// Its card.
    pub card: ModelCard,
    /// Where it runs.
    pub device: Device,
}

impl Classifier {
    /// Loads weights described by `card` onto `device`.
    pub fn load(card: ModelCard, weights: Vec<u8>, device: Device) -> Result<Self, WeightsError> {
        let model = weights::from_bytes(weights, &card.model, &device)?.valid();
        Ok(Self {
            model,
            card,
            device,
        })
    }

    /// Standardised model input from file bytes.
    pub fn preprocess(&self, bytes: &[u8]) -> Result<Vec<f32>, InputError> {
        preprocess::preprocess(bytes, self.card.model.input_size, self.card.normalization)
    }

    /// Logits of a batch of standardised images, still on the device.
    ///
    /// # Shapes
    /// - output `[images.len(), 2]`
    pub fn logits(&self, images: &[Vec<f32>]) -> Tensor<2> {
        let x = preprocess::batch_tensor(images, self.card.model.input_size, &self.device);
        self.model.forward(x)
    }

    /// Turns read-back logits into predictions.
    pub fn predictions(&self, logits: &[f32]) -> Vec<Prediction> {
        logits
            .chunks_exact(2)
            .map(|l| {
                let p = self.card.p_pneumonia([l[0], l[1]]);
                Prediction {
                    label: self.card.label(p),
                    p_pneumonia: p,
                }
            })
            .collect()
    }

    /// Classifies standardised images, reading the result back asynchronously (any backend).
    pub async fn classify_async(
        &self,
        images: &[Vec<f32>],
    ) -> Result<Vec<Prediction>, WeightsError> {
        let data = self
            .logits(images)
            .into_data_async()
            .await
            .map_err(|e| WeightsError::Read(format!("{e:?}")))?;
        Ok(self.predictions(&weights::f32_values(data)?))
    }

    /// Classifies standardised images with a synchronous read (native backends only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn classify(&self, images: &[Vec<f32>]) -> Result<Vec<Prediction>, WeightsError> {
        Ok(self.predictions(&weights::f32_values(self.logits(images).into_data())?))
    }
}
