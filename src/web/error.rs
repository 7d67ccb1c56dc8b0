//! The web layer's errors. Each is shown to the visitor with `Display`, as it is, after what was
//! being done ("Training stopped: …", "the model could not be loaded: …").

use crate::ml::{finetune::FineTuneError, weights::WeightsError};

/// Why something in the page or the training worker could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebError {
    /// A request for one of the site's own files failed.
    #[error("{url}: {detail}")]
    Fetch {
        /// What was asked for.
        url: String,
        /// Why it failed.
        detail: String,
    },
    /// The server answered with an error.
    #[error("{url}: HTTP {status}")]
    Http {
        /// What was asked for.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A JSON file of the site's or the visitor's that does not parse.
    #[error("{what} is not valid: {detail}")]
    Json {
        /// Which file.
        what: String,
        /// The parser's message.
        detail: String,
    },
    /// A file the visitor chose could not be read.
    #[error("could not be read: {0}")]
    FileRead(String),
    /// A browser API refused (no window, a worker that cannot start, a message that cannot be
    /// posted).
    #[error("{0}")]
    Browser(String),
    /// The browser has no `navigator.gpu`.
    #[error("this browser does not offer WebGPU")]
    NoWebGpu,
    /// WebGPU asked of the page's own module, which is built without it (only the WebGPU
    /// workers' module has it).
    #[error("the page's module has no WebGPU backend (only its workers' WebGPU module does)")]
    NotInThisModule,
    /// `navigator.gpu` exists but gave no usable adapter or device.
    #[error("WebGPU is not available: {0}")]
    WebGpuUnavailable(String),
    /// Asked for before the model was downloaded.
    #[error("the model is not loaded yet")]
    ModelNotLoaded,
    /// Weights that do not load, or a model that could not run.
    #[error("{0}")]
    Model(String),
    /// A device read failed: how a lost GPU, a reset one or one out of memory shows. The one
    /// variant for it, wherever it happens (a step, a validation pass, the final weights).
    #[error(
        "the GPU stopped answering (it was lost, reset or out of memory), so the run ended; the page and the shipped model still work. Train again, with a smaller batch, or on the CPU (?backend=cpu). Detail: {0}"
    )]
    DeviceLost(String),
    /// The same, while classifying: the page has moved to the CPU.
    #[error(
        "the GPU stopped answering (it was lost, reset or out of memory); the page switched to the CPU and classified again what it was working on. Reload the page to use WebGPU again. Detail: {0}"
    )]
    GpuLostWhileClassifying(String),
    /// The inference worker stopped (its runtime panicked, or its script did not load); the
    /// next image starts another.
    #[error("the inference worker stopped ({0}); the next image starts another")]
    InferenceWorker(String),
    /// Training could not start or go on (settings, classes, a diverging loss).
    #[error("{0}")]
    Training(String),
    /// A message between the page and the worker that is not what the protocol says.
    #[error("{0}")]
    Protocol(String),
    /// The visitor asked for something the page cannot do now.
    #[error("{0}")]
    Refused(String),
}

impl From<WeightsError> for WebError {
    fn from(e: WeightsError) -> Self {
        match e {
            WeightsError::Read(detail) => WebError::DeviceLost(first_line(&detail)),
            e => WebError::Model(e.to_string()),
        }
    }
}

impl From<crate::ml::classifier::AnalyseError> for WebError {
    /// A model that fails on an image as [`WeightsError`] does; an image it refuses (which the
    /// page's own warm-up image never is) as a browser error with its reason.
    fn from(e: crate::ml::classifier::AnalyseError) -> Self {
        match e {
            crate::ml::classifier::AnalyseError::Model(w) => w.into(),
            crate::ml::classifier::AnalyseError::Input(i) => WebError::Browser(i.to_string()),
        }
    }
}

impl From<FineTuneError> for WebError {
    fn from(e: FineTuneError) -> Self {
        match e {
            FineTuneError::Read(detail) => WebError::DeviceLost(first_line(&detail)),
            FineTuneError::Weights(e) => e.into(),
            e => WebError::Training(e.to_string()),
        }
    }
}

fn first_line(detail: &str) -> String {
    detail.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failed_device_read_is_a_lost_gpu_and_nothing_else_is() {
        let lost = [
            WebError::from(FineTuneError::Read("Device was destroyed\nstack".into())),
            WebError::from(FineTuneError::from(WeightsError::Read("gone".into()))),
            WebError::from(WeightsError::Read("gone".into())),
        ];
        for e in lost {
            assert!(matches!(e, WebError::DeviceLost(_)), "{e:?}");
            assert!(e.to_string().contains("the GPU stopped answering"), "{e}");
            assert!(!e.to_string().contains("stack"), "{e}");
        }
        let not_lost = [
            WebError::from(WeightsError::Values("F16".into())),
            WebError::from(FineTuneError::Diverged(f32::NAN)),
            WebError::from(FineTuneError::from(WeightsError::Format("bad".into()))),
        ];
        for e in not_lost {
            assert!(!matches!(e, WebError::DeviceLost(_)), "{e:?}");
        }
    }
}
