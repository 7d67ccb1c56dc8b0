//! The ML core shared by the browser app and the native tools: the model, preprocessing,
//! weights, metrics, the model card and the training step.

pub mod card;
pub mod classifier;
pub mod dicom;
pub mod finetune;
pub mod metrics;
pub mod model;
pub mod ood;
pub mod preprocess;
pub mod subset;
pub mod train;
pub mod weights;
