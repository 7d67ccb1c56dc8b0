//! The ML core shared by the browser app and the native tools: the model, preprocessing,
//! weights, metrics and their intervals, the patient-level splits, the stress test, the
//! uncertain band, the model card and the training step.

pub mod band;
pub mod card;
pub mod class;
pub mod classifier;
pub mod containers;
pub mod cpu_kernels;
pub mod dicom;
pub mod eval;
pub mod explain;
pub mod finetune;
pub mod folder;
pub mod input;
pub mod intervals;
pub mod metrics;
pub mod model;
pub mod ood;
pub mod preprocess;
pub mod split;
pub mod stress;
pub mod subset;
pub mod train;
pub mod weights;
