//! The training panels' reactive state and the handles a run keeps outside the reactive graph
//! (the decoded images, the worker, the tuned model), shared through Leptos context.

use std::rc::Rc;

use gloo_file::ObjectUrl;
use leptos::prelude::*;

use super::{
    data::Dataset,
    run::Runner,
    view::{Curves, DataStatus, Evaluation, GridItem, RunView, Status},
};
use crate::{
    ml::{classifier::Classifier, finetune::Mode},
    web::protocol::Control,
};

/// Links to the exported fine-tuned model (revoked when dropped).
#[derive(Clone)]
pub struct Export {
    /// Object URL of the weights (burnpack: f32 after a run; a loaded file as it was).
    pub weights_url: ObjectUrl,
    /// Object URL of its model card.
    pub card_url: ObjectUrl,
    /// Size of the weights.
    pub bytes: usize,
}

/// The fine-tuned (or loaded) model.
pub struct Tuned {
    /// It, ready to classify (fused for inference, so it cannot be saved itself).
    pub classifier: Classifier,
    /// The weights file it was loaded from: what an export gives back.
    pub weights: Vec<u8>,
}

/// What a run keeps outside the reactive graph (large, or browser objects).
#[derive(Default)]
pub struct Handles {
    /// The decoded training images.
    pub data: Option<Rc<Dataset>>,
    /// The fine-tuned (or loaded) model.
    pub tuned: Option<Rc<Tuned>>,
    /// What the visitor last asked of the run.
    pub control: Option<Control>,
    /// The worker of the current run.
    pub runner: Option<Runner>,
    /// The validation pictures' object URLs (revoked when dropped).
    pub urls: Vec<ObjectUrl>,
}

/// What the page shows about training, and the run's handles.
#[derive(Clone, Copy)]
pub struct TrainState {
    /// The data.
    pub data: RwSignal<DataStatus>,
    /// Files of the visitor's that could not be used.
    pub skipped: RwSignal<Vec<String>>,
    /// Setting: mode.
    pub mode: RwSignal<Mode>,
    /// Setting: epochs.
    pub epochs: RwSignal<usize>,
    /// Setting: batch size.
    pub batch: RwSignal<usize>,
    /// Setting: learning rate.
    pub lr: RwSignal<f64>,
    /// Setting: augmentation.
    pub augment: RwSignal<bool>,
    /// Setting: fine-tuning images per class (validation gets half as many).
    pub per_class: RwSignal<usize>,
    /// Progress.
    pub status: RwSignal<Status>,
    /// Curves.
    pub curves: RwSignal<Curves>,
    /// Validation grid.
    pub grid: RwSignal<Vec<GridItem>>,
    /// The starting model on the validation part.
    pub before: RwSignal<Option<Evaluation>>,
    /// The trained model on the validation part.
    pub after: RwSignal<Option<Evaluation>>,
    /// The fine-tuned model in use, described.
    pub tuned: RwSignal<Option<String>>,
    /// Problems with loading weights from a file.
    pub weights_error: RwSignal<Option<String>>,
    /// Exported weights.
    pub export: RwSignal<Option<Export>, LocalStorage>,
    /// The run's handles.
    pub handles: StoredValue<Handles, LocalStorage>,
}

fn set_if_changed<T: PartialEq + Clone + Send + Sync + 'static>(signal: RwSignal<T>, value: &T) {
    if signal.with_untracked(|v| v != value) {
        signal.set(value.clone());
    }
}

impl TrainState {
    /// Fresh state with default settings.
    pub fn new() -> Self {
        Self {
            data: RwSignal::new(DataStatus::Empty),
            skipped: RwSignal::new(Vec::new()),
            mode: RwSignal::new(Mode::Head),
            epochs: RwSignal::new(3),
            batch: RwSignal::new(8),
            lr: RwSignal::new(Mode::Head.default_lr()),
            augment: RwSignal::new(true),
            per_class: RwSignal::new(100),
            status: RwSignal::new(Status::default()),
            curves: RwSignal::new(Curves::default()),
            grid: RwSignal::new(Vec::new()),
            before: RwSignal::new(None),
            after: RwSignal::new(None),
            tuned: RwSignal::new(None),
            weights_error: RwSignal::new(None),
            export: RwSignal::new_local(None),
            handles: StoredValue::new_local(Handles::default()),
        }
    }

    /// Shows a run's view: the one place the reducer's state reaches the signals.
    pub fn show(self, view: &RunView) {
        set_if_changed(self.status, &view.status);
        set_if_changed(self.curves, &view.curves);
        set_if_changed(self.grid, &view.grid);
        set_if_changed(self.before, &view.before);
        set_if_changed(self.after, &view.after);
    }

    /// Ends the run (or its start) with `message`.
    pub fn fail(self, message: String) {
        self.status.update(|s| s.fail(message));
    }
}

impl Default for TrainState {
    fn default() -> Self {
        Self::new()
    }
}
