//! The inference worker's models: the shipped model (card and weights, as the page sent them),
//! the device of each backend, and a warmed-up classifier per backend. Everything here is async
//! and never reads a tensor synchronously. (The page itself uses [`device`] for a fine-tuned
//! model only, on [`page_backend`].)

use std::{cell::RefCell, rc::Rc};

use burn::prelude::*;

use super::{backend::Backend, browser, error::WebError};
use crate::ml::{card::ModelCard, classifier::Classifier};

#[derive(Default)]
struct Loaded {
    card: Option<ModelCard>,
    weights: Option<Rc<Vec<u8>>>,
    models: Vec<(Backend, Rc<Classifier>)>,
}

/// The model and its classifiers: a cheap handle.
#[derive(Clone, Default)]
pub struct Engine {
    loaded: Rc<RefCell<Loaded>>,
}

impl Engine {
    /// Nothing loaded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The model to run from now on; classifiers of another model are dropped.
    pub fn set_model(&self, card: ModelCard, weights: Vec<u8>) {
        let mut loaded = self.loaded.borrow_mut();
        let same =
            loaded.card.as_ref() == Some(&card) && loaded.weights.as_deref() == Some(&weights);
        if !same {
            *loaded = Loaded {
                card: Some(card),
                weights: Some(Rc::new(weights)),
                models: Vec::new(),
            };
        }
    }

    /// The classifier on `backend`, built (and warmed up) on first use.
    pub async fn classifier(&self, backend: Backend) -> Result<Rc<Classifier>, WebError> {
        let cached = self
            .loaded
            .borrow()
            .models
            .iter()
            .find(|(b, _)| *b == backend)
            .map(|(_, c)| c.clone());
        if let Some(c) = cached {
            return Ok(c);
        }
        let (card, weights) = {
            let loaded = self.loaded.borrow();
            loaded
                .card
                .clone()
                .zip(loaded.weights.clone())
                .ok_or(WebError::ModelNotLoaded)?
        };
        let device = device(backend).await?;
        let size = card.model.input_size;
        let classifier = Classifier::load(card, weights.as_ref().clone(), device)?;
        // One image through the whole path (the prediction, its out-of-distribution check and
        // the heatmap) compiles the GPU pipelines and sizes the buffers, so that the first real
        // image is timed fairly and does not stall the page while a batch runs.
        let side = size as u32;
        let blank = crate::ml::preprocess::Decoded {
            gray: image::ImageBuffer::new(side, side),
            colour: 0.0,
            format: "PNG",
            dimensions: (side, side),
            dicom: None,
        };
        let (_, activations) = classifier
            .analyse_prepared_async(&classifier.prepare_decoded(&blank))
            .await?;
        classifier.heatmap_async(activations).await?;
        let classifier = Rc::new(classifier);
        self.loaded
            .borrow_mut()
            .models
            .push((backend, classifier.clone()));
        Ok(classifier)
    }

    /// Drops the classifier on `backend` (its device is gone).
    pub fn forget(&self, backend: Backend) {
        self.loaded
            .borrow_mut()
            .models
            .retain(|(b, _)| *b != backend);
    }
}

thread_local! {
    /// The WebGPU device, or why there is none: asked for once per instance of the module,
    /// because Burn registers a device's runtime for the whole instance and the adapter
    /// request is slow. The only module-level state of the web layer.
    static WEBGPU: RefCell<Option<Result<Device, WebError>>> = const { RefCell::new(None) };
}

/// The WebGPU device, initialised once; an error when the browser offers no adapter.
pub async fn webgpu_device() -> Result<Device, WebError> {
    crate::run_constructors();
    if let Some(result) = WEBGPU.with_borrow(Clone::clone) {
        return result;
    }
    let result = if !browser::has_navigator_gpu() {
        Err(WebError::NoWebGpu)
    } else {
        init_webgpu().await
    };
    WEBGPU.with_borrow_mut(|w| *w = Some(result.clone()));
    result
}

/// Burn's WebGPU device (this module is the WebGPU workers' one, `xray-web-gpu`).
#[cfg(feature = "webgpu")]
async fn init_webgpu() -> Result<Device, WebError> {
    Device::wgpu_options()
        .graphics_api(burn::tensor::wgpu::WgpuBackend::WebGpu)
        .init_async()
        .await
        .map_err(|e| WebError::WebGpuUnavailable(e.to_string()))
}

/// No WebGPU in this module (the page's, `xray-web`): only the WebGPU workers' module has it.
#[cfg(not(feature = "webgpu"))]
async fn init_webgpu() -> Result<Device, WebError> {
    Err(WebError::NotInThisModule)
}

/// Where the page itself runs a model (the fine-tuned one) when `wanted` is the page's backend:
/// there, since this module has WebGPU (the workers' module); on the CPU in the page's module,
/// which has none (a model of this size takes a few milliseconds an image there).
pub fn page_backend(wanted: Backend) -> Backend {
    match cfg!(feature = "webgpu") {
        true => wanted,
        false => Backend::Cpu,
    }
}

/// Records that the WebGPU device was lost: asking for it again gives `why` instead of a dead
/// device (a page reload starts afresh).
pub fn webgpu_lost(why: WebError) {
    WEBGPU.with_borrow_mut(|w| *w = Some(Err(why)));
}

/// The device for `backend` (WebGPU initialised once).
pub async fn device(backend: Backend) -> Result<Device, WebError> {
    match backend {
        Backend::WebGpu => webgpu_device().await,
        Backend::Cpu => Ok(Device::flex()),
    }
}
