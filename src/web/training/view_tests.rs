//! The reducer, message by message.

use super::*;

fn val() -> Vec<ValMeta> {
    [false, true, true]
        .into_iter()
        .enumerate()
        .map(|(i, pneumonia)| ValMeta {
            name: format!("v{i}"),
            thumb: format!("blob:{i}"),
            pneumonia,
        })
        .collect()
}

fn step(step: usize, epoch: usize, loss: f32, correct: usize, seen: usize) -> FromWorker {
    FromWorker::Step {
        step,
        epoch,
        loss,
        correct,
        seen,
        epoch_finished: false,
        ms: 100.0,
        wasm_mb: 10.0,
        gpu_mb: None,
    }
}

fn started(view: &mut RunView) {
    let started = FromWorker::Started {
        backend: Backend::Cpu,
        fallback: Some("no WebGPU in workers".into()),
        steps_per_epoch: 2,
        total_steps: 4,
        wasm_mb: 8.0,
    };
    assert_eq!(view.apply(started, vec![]), Effect::None);
}

#[test]
fn ready_asks_for_the_start_and_started_says_the_backend_and_fallback() {
    let mut view = RunView::new(Mode::Head, 2, 6, val());
    assert_eq!(view.apply(FromWorker::Ready, vec![]), Effect::SendStart);
    started(&mut view);
    assert_eq!(view.status.backend, Some(Backend::Cpu));
    assert_eq!(view.status.total_steps, 4);
    assert_eq!(view.status.epochs, 2);
    assert!(
        view.status
            .message
            .starts_with("no WebGPU in workers; evaluating")
    );
}

#[test]
fn steps_give_the_curve_in_epochs_the_throughput_and_the_eta() {
    let mut view = RunView::new(Mode::Whole, 2, 6, val());
    started(&mut view);
    view.apply(step(1, 0, 0.8, 2, 4), vec![]);
    view.apply(step(2, 1, 0.6, 3, 2), vec![]);
    assert_eq!(
        view.curves.step_loss,
        vec![(0.5, 0.8f32 as f64), (1.0, 0.6f32 as f64)]
    );
    // 6 images in 200 ms; 2 steps left at 100 ms each.
    assert!((view.status.images_per_sec - 30.0).abs() < 1e-9);
    assert_eq!(view.status.eta_s, Some(0.2));
    assert_eq!(view.status.message, "epoch 2 of 2, step 2 of 4");
}

#[test]
fn an_epoch_pass_records_the_epoch_means_and_starts_new_ones() {
    let mut view = RunView::new(Mode::Whole, 2, 6, val());
    started(&mut view);
    let before = FromWorker::Probabilities {
        pass: Pass::Before,
        step: 0,
        epoch: 0,
        probs: vec![0.6, 0.4, 0.9],
    };
    view.apply(before, vec![]);
    assert_eq!(view.before.as_ref().map(|e| e.n), Some(3));
    assert_eq!(view.curves.val_accuracy, vec![(0.0, 1.0 / 3.0)]);
    view.apply(step(1, 0, 1.0, 1, 4), vec![]);
    view.apply(step(2, 1, 0.5, 2, 2), vec![]);
    let epoch = FromWorker::Probabilities {
        pass: Pass::Epoch,
        step: 2,
        epoch: 1,
        probs: vec![0.1, 0.8, 0.9],
    };
    view.apply(epoch, vec![]);
    // Image-weighted mean loss (4 × 1.0 + 2 × 0.5) / 6, and 3 of 6 right.
    assert_eq!(view.curves.train_loss, vec![(1.0, 5.0 / 6.0)]);
    assert_eq!(view.curves.train_accuracy, vec![(1.0, 0.5)]);
    assert_eq!(view.curves.val_accuracy.last(), Some(&(1.0, 1.0)));
    assert_eq!(view.status.val_accuracy, Some(1.0));
    let wrong: Vec<bool> = view.grid.iter().map(|g| g.truth != g.predicted).collect();
    assert_eq!(wrong, vec![false, false, false]);
    // The next epoch's means start from zero.
    view.apply(step(3, 1, 0.2, 4, 4), vec![]);
    let epoch = FromWorker::Probabilities {
        pass: Pass::Epoch,
        step: 3,
        epoch: 2,
        probs: vec![0.1, 0.8, 0.9],
    };
    view.apply(epoch, vec![]);
    assert_eq!(view.curves.train_loss[1], (2.0, 0.2f32 as f64));
    assert_eq!(view.curves.train_accuracy[1], (2.0, 1.0));
}

#[test]
fn done_loads_the_weights_then_finish_ends_the_run() {
    let mut view = RunView::new(Mode::Head, 1, 6, val());
    started(&mut view);
    let last = FromWorker::Probabilities {
        pass: Pass::Final,
        step: 1,
        epoch: 0,
        probs: vec![0.1, 0.8, 0.9],
    };
    view.apply(last, vec![]);
    let done = FromWorker::Done {
        stopped: true,
        step: 1,
        epoch: 0,
        wasm_mb: 12.0,
    };
    match view.apply(done, vec![vec![1, 2, 3]]) {
        Effect::Load {
            weights,
            description,
            stopped,
        } => {
            assert_eq!(weights, vec![1, 2, 3]);
            assert!(stopped);
            assert_eq!(
                description,
                "head fine-tuned on 6 images for 1 step (0 epochs, stopped early) on CPU (wasm)"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(view.after.as_ref().map(|e| e.step), Some(1));
    view.finish(true);
    assert_eq!(view.status.phase, Phase::Done);
    assert_eq!(view.status.eta_s, Some(0.0));
}

#[test]
fn a_failure_or_missing_weights_end_the_run_with_the_message() {
    let mut view = RunView::new(Mode::Head, 1, 6, val());
    let failed = FromWorker::Failed {
        kind: crate::web::protocol::Failure::DeviceLost,
        message: "the GPU stopped answering".into(),
    };
    assert_eq!(view.apply(failed, vec![]), Effect::Release);
    assert_eq!(view.status.phase, Phase::Error);
    assert_eq!(view.status.message, "the GPU stopped answering");
    let mut view = RunView::new(Mode::Head, 1, 6, val());
    let done = FromWorker::Done {
        stopped: false,
        step: 1,
        epoch: 1,
        wasm_mb: 1.0,
    };
    assert_eq!(view.apply(done, vec![]), Effect::Release);
    assert_eq!(view.status.phase, Phase::Error);
}

#[test]
fn pause_and_resume_change_the_phase() {
    let mut view = RunView::new(Mode::Head, 1, 6, val());
    view.apply(FromWorker::Paused, vec![]);
    assert_eq!(view.status.phase, Phase::Paused);
    assert!(view.status.phase.active());
    view.apply(FromWorker::Resumed, vec![]);
    assert_eq!(view.status.phase, Phase::Running);
    assert_eq!(Phase::Done.id(), "done");
}
