//! Where the CPU time of one classification goes in the browser: a measurement, not a test (it
//! asserts nothing about time, and is ignored unless asked for). In headless Chromium, on the
//! CPU backend, the median of 60 runs of:
//! - the shipped model as trained and fused, through the stem and then 1 … 4 stages
//!   (`ResNet::trunk`; each figure includes the ones before it);
//! - each kind of convolution in the model, through Burn's CPU backend and through the crate's
//!   kernels (`ml::cpu_kernels`: direct, and Winograd's for 3×3 at stride 1), with the GFLOP/s
//!   of each (for Winograd's, the direct convolution's FLOPs over its time);
//! - the page's whole analysis of one prepared image (`Classifier::analyse_prepared_async`).
//!
//! ```sh
//! cargo test --profile wasm-release --target wasm32-unknown-unknown --test layer_times \
//!     -- --include-ignored --nocapture 2>&1 | grep '^TIME'
//! ```
//!
//! (`--profile wasm-release` compiles it as the site is compiled; `--release` as the other
//! browser tests are, without LTO.)

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed run

mod support;

use burn::{
    nn::{PaddingConfig2d, conv::Conv2dConfig},
    prelude::*,
    tensor::Distribution,
};
use support::shipped;
use wasm_bindgen_test::*;
use xray_web::ml::{classifier::Classifier, cpu_kernels, preprocess};

wasm_bindgen_test_configure!(run_in_browser);

const RUNS: usize = 60;

fn now() -> f64 {
    web_sys::window().unwrap().performance().unwrap().now()
}

fn report(name: &str, mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    web_sys::console::log_1(&format!("TIME {name}: median {median:.3} ms").into());
    median
}

/// The median time of `f` and reading its result back.
async fn time<const D: usize>(name: &str, mut f: impl FnMut() -> Tensor<D>) -> f64 {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t0 = now();
        f().into_data_async().await.unwrap();
        times.push(now() - t0);
    }
    report(name, times)
}

#[wasm_bindgen_test]
#[ignore = "a measurement: run it with --include-ignored --nocapture"]
async fn where_the_cpu_time_goes() {
    let device = Device::flex();
    let card = shipped::card();
    let size = card.model.input_size;
    let model = shipped::model(&device);
    let fused = model.clone().fuse();
    let image: Vec<f32> = (0..size * size)
        .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
        .collect();
    let input = || preprocess::batch_tensor(std::slice::from_ref(&image), size, &device);
    for (name, m) in [("as trained", &model), ("fused", &fused)] {
        for stages in 0..=4 {
            time(&format!("{name}, stem + {stages} stages"), || {
                m.trunk(input(), stages)
            })
            .await;
        }
    }

    // Each kind of convolution in the model (input channels, output channels, kernel, stride,
    // input side).
    for (cin, cout, k, stride, side) in [
        (4, 16, 4, 1, 67),
        (16, 16, 3, 1, 32),
        (32, 32, 3, 1, 16),
        (64, 64, 3, 1, 8),
        (128, 128, 3, 1, 4),
        (16, 32, 3, 2, 32),
        (64, 128, 3, 2, 8),
        (16, 32, 1, 2, 32),
    ] {
        let pad = k / 2 * usize::from(k != 4);
        let conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .init(&device);
        let x = Tensor::<4>::random(
            [1, cin, side, side],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let name = format!("{k}x{k} stride {stride}, {cin} -> {cout} channels at {side}x{side}");
        let burn = time(&format!("{name}, Burn"), || conv.forward(x.clone())).await;
        let ours = time(&format!("{name}, kernels"), || {
            cpu_kernels::conv2d(&conv, None, x.clone(), false)
        })
        .await;
        let [_, _, ho, wo] = conv.forward(x.clone()).dims();
        let gflop = 2.0 * (cin * cout * k * k * ho * wo) as f64 / 1e9;
        web_sys::console::log_1(
            &format!(
                "TIME   GFLOP/s: Burn {:.1}, kernels {:.1}",
                gflop / burn * 1e3,
                gflop / ours * 1e3
            )
            .into(),
        );
        if let Some(g) = cpu_kernels::winograd(&conv) {
            let winograd = time(&format!("{name}, Winograd"), || {
                cpu_kernels::conv2d(&conv, Some(&g), x.clone(), false)
            })
            .await;
            web_sys::console::log_1(
                &format!(
                    "TIME   direct-equivalent GFLOP/s: Winograd {:.1}",
                    gflop / winograd * 1e3
                )
                .into(),
            );
        }
    }

    // The page's analysis of one image (the figure the page shows as each row's time).
    let classifier = Classifier::load(shipped::card(), shipped::weights(), device.clone()).unwrap();
    let picture = image::GrayImage::from_fn(256, 256, |x, y| {
        image::Luma([((x * 7 + y * 3) % 256) as u8])
    });
    let prepared = classifier
        .prepare(&preprocess::encode_png(picture.into()).unwrap())
        .unwrap();
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t0 = now();
        classifier.analyse_prepared_async(&prepared).await.unwrap();
        times.push(now() - t0);
    }
    report("Classifier::analyse_prepared_async", times);
}
