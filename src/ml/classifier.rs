//! Inference: a loaded model with its card on one device.

use burn::prelude::*;

use super::{
    card::{CardError, ModelCard},
    dicom::DicomInfo,
    explain::{CAM_AFTER_STAGES, Explainer, Heatmap},
    input::InputError,
    model::ResNet,
    ood, preprocess,
    weights::{self, WeightsError},
};

/// Why a file could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyseError {
    /// The file is not a usable image.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The model failed.
    #[error("the model failed: {0}")]
    Model(#[from] WeightsError),
}

/// Why a model a visitor brings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Its card.
    #[error(transparent)]
    Card(#[from] CardError),
    /// Its weights.
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

/// Everything the page and the CLI say about one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The prediction.
    pub prediction: Prediction,
    /// Why it does not look like a chest X-ray, if it does not.
    pub ood: Option<ood::OodReason>,
    /// What a DICOM file says about the image.
    pub dicom: Option<DicomInfo>,
    /// The format read.
    pub format: &'static str,
    /// Where the model looked, when it was asked ([`Classifier::explain`]).
    pub heatmap: Option<Heatmap>,
}

/// An analysed image's activations after stage 3, still on the device, for its heatmap.
pub struct Activations(Tensor<4>);

/// A file decoded and prepared for the model.
pub struct Prepared {
    /// Standardised input.
    pub input: Vec<f32>,
    colour: f32,
    unit: Vec<f32>,
    /// Width and height of the decoded image (orientation applied).
    shape: (u32, u32),
    dicom: Option<DicomInfo>,
    format: &'static str,
}

impl Prepared {
    /// The image resized to the model's square, intensities in [0, 1], before standardisation.
    ///
    /// # Shapes
    /// - `size · size` values, row-major
    pub fn unit(&self) -> &[f32] {
        &self.unit
    }

    /// A small gray picture of the image at its own aspect ratio, longest side `max_side`, for
    /// the page's result rows (encoded with [`preprocess::encode_png`], with or without its
    /// heatmap over it): a browser then keeps a few kilobytes per row, whatever the file was
    /// (a 30-megapixel PNG, or a DICOM, which browsers cannot show at all).
    pub fn thumbnail(&self, max_side: u32) -> Result<image::GrayImage, image::ImageError> {
        let side = (self.unit.len() as f64).sqrt() as usize;
        preprocess::thumbnail(&self.unit, side, self.shape, max_side)
    }
}

/// One classified image.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prediction {
    /// The class at the card's threshold.
    pub label: super::class::Class,
    /// Calibrated probability of pneumonia.
    pub p_pneumonia: f32,
}

/// A model ready to classify, with the card that says how to read its outputs.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// The network, in inference mode and fused for it ([`ResNet::fuse`]).
    pub model: ResNet,
    /// Its card.
    pub card: ModelCard,
    /// Where it runs.
    pub device: Device,
    /// The autodiff copy that heatmaps are computed with.
    explainer: Explainer,
}

impl Classifier {
    /// Loads weights described by `card` onto `device`.
    pub fn load(card: ModelCard, weights: Vec<u8>, device: Device) -> Result<Self, WeightsError> {
        let model = weights::from_bytes(weights, &card.model, &device)?
            .valid()
            .fuse();
        Ok(Self {
            explainer: Explainer::new(&model, &device),
            model,
            card,
            device,
        })
    }

    /// Loads a model the visitor brings, as the page's "Load weights" takes it: a weights
    /// file and, optionally, the bytes of its `card.json` (parsed and validated). Without a
    /// card the weights must fit `shipped`'s architecture and are read uncalibrated.
    pub fn load_user(
        card: Option<&[u8]>,
        weights: Vec<u8>,
        shipped: &ModelCard,
        device: Device,
    ) -> Result<Self, LoadError> {
        let card = match card {
            Some(json) => ModelCard::from_json(json)?,
            None => shipped.uncalibrated(),
        };
        Ok(Self::load(card, weights, device)?)
    }

    /// Standardised model input from file bytes.
    pub fn preprocess(&self, bytes: &[u8]) -> Result<Vec<f32>, InputError> {
        preprocess::preprocess(bytes, self.card.model.input_size, self.card.normalization)
    }

    /// Decodes and prepares a file.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, InputError> {
        Ok(self.prepare_decoded(&preprocess::decode(bytes)?))
    }

    /// Prepares an already decoded file (its full-resolution image is then the caller's).
    pub fn prepare_decoded(&self, decoded: &preprocess::Decoded) -> Prepared {
        let unit = preprocess::to_square_unit(&decoded.gray, self.card.model.input_size);
        self.standardised(Prepared {
            input: Vec::new(),
            colour: decoded.colour,
            unit,
            shape: decoded.gray.dimensions(),
            dicom: decoded.dicom.clone(),
            format: decoded.format,
        })
    }

    /// The same file with its model-sized image replaced by `unit` (for example with part of it
    /// masked), standardised again.
    ///
    /// # Shapes
    /// - `unit`: `size · size` values in [0, 1], row-major
    pub fn with_unit(&self, p: &Prepared, unit: Vec<f32>) -> Prepared {
        self.standardised(Prepared {
            input: Vec::new(),
            unit,
            dicom: p.dicom.clone(),
            ..*p
        })
    }

    /// `p` with its model input standardised from its `unit` image by the card's normalisation.
    fn standardised(&self, mut p: Prepared) -> Prepared {
        p.input = p.unit.clone();
        preprocess::normalize(&mut p.input, self.card.normalization);
        p
    }

    /// Logits and pooled features of one prepared image, side by side in one tensor still on
    /// the device, so that one read brings both back (on WebGPU each read is a round trip), and
    /// the activations after stage 3 that its heatmap starts from (kept on the device).
    ///
    /// # Shapes
    /// - output `[1, 2 + features]`
    fn outputs(&self, p: &Prepared) -> (Tensor<2>, Activations) {
        let x = preprocess::batch_tensor(
            std::slice::from_ref(&p.input),
            self.card.model.input_size,
            &self.device,
        );
        let a = self.model.trunk(x, CAM_AFTER_STAGES);
        let features = self.model.features_from(a.clone(), CAM_AFTER_STAGES);
        let out = Tensor::cat(vec![self.model.head(features.clone()), features], 1);
        (out, Activations(a))
    }

    /// Splits read-back [`outputs`](Self::outputs) and finishes the analysis.
    fn finish_outputs(&self, p: &Prepared, outputs: &[f32]) -> Analysis {
        let (logits, features) = outputs.split_at(outputs.len().min(2));
        let prediction = self
            .predictions(logits)
            .into_iter()
            .next()
            .unwrap_or(Prediction {
                label: super::class::Class::Normal,
                p_pneumonia: f32::NAN,
            });
        Analysis {
            prediction,
            ood: ood::check(self.card.ood.as_ref(), p.colour, &p.unit, features),
            dicom: p.dicom.clone(),
            format: p.format,
            heatmap: None,
        }
    }

    /// Prediction, out-of-distribution check and metadata for a prepared image (any backend),
    /// with what [`heatmap_async`](Self::heatmap_async) needs to explain it afterwards.
    pub async fn analyse_prepared_async(
        &self,
        p: &Prepared,
    ) -> Result<(Analysis, Activations), AnalyseError> {
        let (out, a) = self.outputs(p);
        let outputs = weights::read_async(out).await?;
        Ok((self.finish_outputs(p, &outputs), a))
    }

    /// The heatmap of an image analysed by [`analyse_prepared_async`](Self::analyse_prepared_async)
    /// (any backend): stage 4 and the head again, on the autodiff copy, and one backward pass.
    pub async fn heatmap_async(&self, a: Activations) -> Result<Heatmap, AnalyseError> {
        let (cells, side) = self.heatmap_cells(a);
        Ok(Heatmap::from_raw(
            side,
            side,
            &weights::read_async(cells).await?,
        ))
    }

    fn heatmap_cells(&self, a: Activations) -> (Tensor<2>, usize) {
        let [_, _, h, _] = a.0.dims();
        (self.explainer.cells(a.0), h)
    }

    /// Prediction, out-of-distribution check and metadata for a file (native backends).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn analyse(&self, bytes: &[u8]) -> Result<Analysis, AnalyseError> {
        self.analyse_prepared(&self.prepare(bytes)?)
    }

    /// [`analyse`](Self::analyse) with the heatmap (native backends).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn explain(&self, bytes: &[u8]) -> Result<Analysis, AnalyseError> {
        self.explain_prepared(&self.prepare(bytes)?)
    }

    /// [`analyse`](Self::analyse) for an already prepared image (native backends).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn analyse_prepared(&self, p: &Prepared) -> Result<Analysis, AnalyseError> {
        let (out, _) = self.outputs(p);
        Ok(self.finish_outputs(p, &weights::read(out)?))
    }

    /// [`explain`](Self::explain) for an already prepared image (native backends).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn explain_prepared(&self, p: &Prepared) -> Result<Analysis, AnalyseError> {
        let (out, a) = self.outputs(p);
        let analysis = self.finish_outputs(p, &weights::read(out)?);
        let (cells, side) = self.heatmap_cells(a);
        let heatmap = Heatmap::from_raw(side, side, &weights::read(cells)?);
        Ok(Analysis {
            heatmap: Some(heatmap),
            ..analysis
        })
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
        Ok(self.predictions(&weights::read_async(self.logits(images)).await?))
    }

    /// Classifies standardised images with a synchronous read (native backends only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn classify(&self, images: &[Vec<f32>]) -> Result<Vec<Prediction>, WeightsError> {
        Ok(self.predictions(&weights::read(self.logits(images))?))
    }
}
