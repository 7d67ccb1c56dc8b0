//! Fuzzes the training worker's messages on both sides. One input is a list of messages cut
//! at `\0MSG\0`; each message is its JSON text and its binary parts, cut at `\0PART\0`. The
//! first is decoded as the page's start message (page → worker), unpacked and checked as the
//! worker does ([`StartRun::inputs`]); the others as the worker's reports (worker → page),
//! followed by the page's reducer ([`RunView::apply`]). Nothing may panic or allocate more
//! than the message holds.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use xray_web::{
    ml::finetune::Mode,
    web::{
        protocol::{FromWorker, ToWorker, decode_text},
        training::view::RunView,
    },
};

fuzz_target!(|data: &[u8]| {
    let messages = common::split(data, common::MESSAGE);
    let mut messages = messages.into_iter();
    let Some(first) = messages.next() else { return };
    let parts = common::split(first, common::PART);
    if let Ok(json) = std::str::from_utf8(parts[0])
        && let Ok(ToWorker::Start(start)) = decode_text::<ToWorker>(json)
    {
        let owned = parts[1..].iter().map(|p| p.to_vec()).collect();
        if let Ok(inputs) = start.inputs(owned) {
            let pixels = inputs.card.model.input_size.pow(2);
            assert!(inputs.tune.iter().all(|e| e.pixels.len() == pixels));
            assert!(inputs.val.iter().all(|v| v.len() == pixels));
        }
    }
    let mut view = RunView::new(Mode::Head, 2, 8, common::val_meta());
    for message in messages {
        let parts = common::split(message, common::PART);
        let Ok(json) = std::str::from_utf8(parts[0]) else { continue };
        let Ok(msg) = decode_text::<FromWorker>(json) else { continue };
        let _ = view.apply(msg, parts[1..].iter().map(|p| p.to_vec()).collect());
    }
});
