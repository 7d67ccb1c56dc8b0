//! The model: shapes for each depth, weights round trip (f32 exact, f16 close, both kinds of
//! block under torchvision names, the shipped file), a training step
//! that lowers the loss on real X-rays, the model fused for inference computing what the
//! unfused one does, and wgpu agreeing with the CPU.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use burn::{optim::AdamWConfig, prelude::*};
use support::shipped;
use xray_web::ml::{
    class::CLASSES,
    model::{Depth, ResNet, ResNetConfig},
    preprocess::{self, Normalization},
    train,
    weights::{self, Precision},
};

fn random_batch(n: usize, size: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = train::Rng::new(seed);
    (0..n)
        .map(|_| (0..size * size).map(|_| rng.normal()).collect())
        .collect()
}

/// A tensor's values, read back.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn logits(
    model: &xray_web::ml::model::ResNet,
    x: &[Vec<f32>],
    size: usize,
    device: &Device,
) -> Vec<f32> {
    values(model.forward(preprocess::batch_tensor(x, size, device)))
}

#[test]
fn every_depth_has_the_right_shapes() {
    let device = Device::flex();
    for (depth, features) in [
        (Depth::Resnet18, 64),
        (Depth::Resnet34, 64),
        (Depth::Resnet50, 256),
    ] {
        let config = ResNetConfig::new(depth, 8, 64);
        let model = config.init(&device).valid();
        let x = preprocess::batch_tensor(&random_batch(3, 64, 1), 64, &device);
        assert_eq!(model.features(x.clone()).dims(), [3, features], "{depth:?}");
        assert_eq!(model.forward(x).dims(), [3, 2], "{depth:?}");
    }
    // torchvision's ResNet-18 has 11,689,512 learnable parameters (RGB input, 1000 classes).
    // Grayscale input removes 2·64·7·7 stem weights; two classes remove 998·512 + 998 head
    // weights. Burn also counts BatchNorm's running mean and variance: 2 × 4,800 channels.
    let r18 = ResNetConfig::new(Depth::Resnet18, 64, 224).init(&device);
    let learnable = 11_689_512 - 2 * 64 * 7 * 7 - (998 * 512 + 998);
    assert_eq!(r18.num_params(), learnable + 2 * 4_800);
}

#[test]
fn weights_round_trip() {
    let device = Device::flex();
    let config = ResNetConfig::new(Depth::Resnet18, 8, 64);
    let model = config.init(&device).valid();
    let x = random_batch(2, 64, 3);
    let reference = logits(&model, &x, 64, &device);

    let f32_bytes = weights::to_bytes(&model, Precision::F32).unwrap();
    let loaded = weights::from_bytes(f32_bytes, &config, &device)
        .unwrap()
        .valid();
    assert_eq!(logits(&loaded, &x, 64, &device), reference);

    let f16_bytes = weights::to_bytes(&model, Precision::F16).unwrap();
    let half = weights::from_bytes(f16_bytes.clone(), &config, &device)
        .unwrap()
        .valid();
    let out = logits(&half, &x, 64, &device);
    let diff = out
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 2e-2, "f16 drifts by {diff}");

    // The wrong architecture and garbage are refused with an error, not a panic.
    let other = ResNetConfig::new(Depth::Resnet18, 16, 64);
    assert!(weights::from_bytes(f16_bytes, &other, &device).is_err());
    assert!(weights::from_bytes(b"not weights".to_vec(), &config, &device).is_err());
}

/// `bytes` with its tensors passed through `edit` and written back.
fn rewritten(bytes: &[u8], edit: impl FnOnce(&mut Vec<burn_pack::Tensor>)) -> Vec<u8> {
    let mut tensors =
        burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
            .unwrap()
            .into_tensors()
            .unwrap();
    edit(&mut tensors);
    burn_pack::Writer::new(tensors)
        .into_bytes()
        .unwrap()
        .to_vec()
}

#[test]
fn a_file_with_a_tensor_of_another_shape_too_many_or_too_few_is_refused_by_name() {
    let device = Device::flex();
    let config = ResNetConfig::new(Depth::Resnet18, 8, 64);
    let bytes = weights::to_bytes(&config.init(&device), Precision::F16).unwrap();
    let refused = |bytes: Vec<u8>| match weights::from_bytes(bytes, &config, &device) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    };
    // Another model's file: the message names the first tensor that differs and both shapes.
    let wider = weights::to_bytes(
        &ResNetConfig::new(Depth::Resnet18, 16, 64).init(&device),
        Precision::F16,
    )
    .unwrap();
    let e = refused(wider);
    assert!(
        e.contains("bn1.beta has shape [16] in the file, [8] in the model"),
        "{e}"
    );
    let e = refused(rewritten(&bytes, |t| {
        t.retain(|t| t.name != "fc.bias");
    }));
    assert!(e.contains("the file lacks fc.bias"), "{e}");
    let e = refused(rewritten(&bytes, |t| {
        let mut extra = t[0].clone();
        extra.name = "fc.extra".into();
        t.push(extra);
    }));
    assert!(
        e.contains("a tensor \"fc.extra\" that the model does not"),
        "{e}"
    );
}

/// The names in the file, sorted.
fn stored_names(bytes: &[u8]) -> Vec<String> {
    let reader =
        burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec())).unwrap();
    let mut names: Vec<String> = reader
        .tensor_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

#[test]
fn both_kinds_of_block_round_trip_under_torchvision_names() {
    let device = Device::flex();
    let x = random_batch(2, 64, 5);
    let mut files = Vec::new();
    for depth in [Depth::Resnet18, Depth::Resnet50] {
        let config = ResNetConfig::new(depth, 8, 64);
        let model = config.init(&device).valid();
        let bytes = weights::to_bytes(&model, Precision::F32).unwrap();
        let names = stored_names(&bytes);
        // The block's kind is in the type, not in the stored name.
        assert!(
            names
                .iter()
                .all(|n| !n.contains("Basic") && !n.contains("Bottleneck")),
            "{names:?}"
        );
        assert!(names.contains(&"stages.1.blocks.0.conv1.weight".to_string()));
        assert!(names.contains(&"stages.1.blocks.0.downsample.conv.weight".to_string()));
        assert_eq!(
            names.contains(&"stages.1.blocks.0.conv3.weight".to_string()),
            depth == Depth::Resnet50,
            "{depth:?}"
        );
        let loaded = weights::from_bytes(bytes.clone(), &config, &device)
            .unwrap()
            .valid();
        assert_eq!(
            logits(&loaded, &x, 64, &device),
            logits(&model, &x, 64, &device),
            "{depth:?}"
        );
        files.push((config, bytes));
    }
    // A file of one kind of block does not load into the other.
    assert!(weights::from_bytes(files[1].1.clone(), &files[0].0, &device).is_err());
    assert!(weights::from_bytes(files[0].1.clone(), &files[1].0, &device).is_err());
}

#[test]
fn the_shipped_weights_load_under_their_stored_names() {
    let bytes = shipped::weights();
    let card = shipped::card();
    let names = stored_names(&bytes);
    assert!(names.contains(&"stages.0.blocks.0.conv1.weight".to_string()));
    assert!(names.contains(&"fc.weight".to_string()));
    let model = weights::from_bytes(bytes, &card.model, &Device::flex()).unwrap();
    let size = card.model.input_size;
    assert_eq!(
        logits(
            &model.valid(),
            &random_batch(1, size, 9),
            size,
            &Device::flex()
        )
        .len(),
        2
    );
}

/// Loads `n` bundled real X-rays of each class.
fn real_batch(n: usize, size: usize) -> (Vec<Vec<f32>>, Vec<i64>) {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for class in CLASSES {
        for s in shipped::samples()
            .iter()
            .filter(|s| s.label == class)
            .take(n)
        {
            let bytes = shipped::bytes(s);
            images.push(preprocess::preprocess(&bytes, size, Normalization::default()).unwrap());
            labels.push(class.index() as i64);
        }
    }
    (images, labels)
}

#[test]
fn training_steps_lower_the_loss_on_real_images() {
    let device = Device::flex();
    device.seed(7);
    let ad = device.clone().autodiff();
    let size = 64;
    let config = ResNetConfig::new(Depth::Resnet18, 8, size);
    let mut model = config.init(&ad);
    let mut optim = AdamWConfig::new().init();
    let (images, labels) = real_batch(4, size);
    let mut losses = Vec::new();
    for _ in 0..8 {
        let x = preprocess::batch_tensor(&images, size, &ad);
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), &ad);
        let out = train::train_step(model, &mut optim, x, y, [1.0, 1.0], 0.0, 3e-3);
        model = out.model;
        losses.push(out.loss.into_scalar::<f32>());
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[7] < 0.7 * losses[0], "loss did not fall: {losses:?}");
}

/// The largest difference between two equally long outputs, relative to the largest magnitude.
fn relative_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().map(|v| v.abs()).fold(1e-6, f32::max);
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max)
        / scale
}

fn trunk(model: &ResNet, x: &[Vec<f32>], size: usize, stages: usize) -> Vec<f32> {
    let device = Device::flex();
    values(model.trunk(preprocess::batch_tensor(x, size, &device), stages))
}

#[test]
fn the_fused_model_computes_what_it_was_fused_from() {
    let device = Device::flex();
    // The shipped weights: real batch-norm statistics, on real X-rays.
    let card = shipped::card();
    let size = card.model.input_size;
    let model = shipped::model(&device);
    let fused = model.clone().fuse();
    assert!(fused.is_fused() && !model.is_fused());
    let (images, _) = real_batch(3, size);
    for stages in 0..=4 {
        let d = relative_diff(
            &trunk(&model, &images, size, stages),
            &trunk(&fused, &images, size, stages),
        );
        assert!(
            d < 1e-5,
            "after {stages} stages the fused model differs by {d}"
        );
    }
    let d = relative_diff(
        &logits(&model, &images, size, &device),
        &logits(&fused, &images, size, &device),
    );
    assert!(d < 1e-5, "fused logits differ by {d}");
    // Fusing twice changes nothing more.
    assert_eq!(
        logits(&fused, &images, size, &device),
        logits(&fused.clone().fuse(), &images, size, &device)
    );
    // A fused model is not a model's weights: saving it is refused.
    assert!(matches!(
        weights::to_bytes(&fused, Precision::F16),
        Err(weights::WeightsError::Fused)
    ));

    // Both kinds of block, even and odd input sizes, with batch norms that training moved
    // away from their initial values (γ, β and the running statistics).
    for (depth, size) in [
        (Depth::Resnet18, 64),
        (Depth::Resnet50, 67),
        (Depth::Resnet34, 45),
    ] {
        let ad = device.clone().autodiff();
        device.seed(11);
        let mut model = ResNetConfig::new(depth, 8, size).init(&ad);
        let mut optim = AdamWConfig::new().init();
        let x = random_batch(4, size, 12);
        for _ in 0..3 {
            let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 0, 1], [4]), &ad);
            let out = train::train_step(
                model,
                &mut optim,
                preprocess::batch_tensor(&x, size, &ad),
                y,
                [1.0, 1.0],
                0.0,
                1e-2,
            );
            model = out.model;
        }
        let model = model.valid();
        let fused = model.clone().fuse();
        let d = relative_diff(
            &logits(&model, &x, size, &device),
            &logits(&fused, &x, size, &device),
        );
        assert!(
            d < 1e-4,
            "{depth:?} at {size} px: fused logits differ by {d}"
        );
        let d = relative_diff(&trunk(&model, &x, size, 0), &trunk(&fused, &x, size, 0));
        assert!(
            d < 1e-5,
            "{depth:?} at {size} px: fused stem differs by {d}"
        );
    }
}

/// The CPU kernels the fused model runs on compute what Burn's convolution and max-pool do:
/// each kernel size and stride, with and without the ReLU, padded (evenly and not) and not,
/// widths that are and are not a multiple of four, channel counts that are not, a batch of two.
#[test]
fn the_cpu_kernels_compute_what_burn_does() {
    use burn::nn::{PaddingConfig2d, conv::Conv2dConfig, pool::MaxPool2dConfig};
    use xray_web::ml::cpu_kernels;
    let device = Device::flex();
    device.seed(3);
    for (cin, cout, k, stride, pad, h, w) in [
        (16, 16, 3, 1, [1, 1, 1, 1], 32, 32),
        (3, 6, 3, 1, [1, 1, 1, 1], 9, 7),
        (128, 128, 3, 1, [1, 1, 1, 1], 4, 4),
        (32, 20, 3, 1, [1, 1, 1, 1], 16, 10),
        (2, 3, 3, 1, [1, 1, 1, 1], 1, 2),
        (3, 3, 3, 1, [1, 1, 0, 1], 6, 6),
        (4, 16, 4, 1, [0, 0, 0, 0], 35, 35),
        (5, 7, 4, 1, [2, 1, 0, 3], 6, 11),
        (2, 5, 3, 1, [0, 0, 0, 0], 3, 3),
        (16, 32, 3, 2, [1, 1, 1, 1], 32, 32),
        (3, 5, 3, 2, [1, 1, 1, 1], 9, 13),
        (4, 6, 3, 2, [0, 2, 1, 0], 8, 7),
        (16, 32, 1, 2, [0, 0, 0, 0], 32, 32),
        (3, 9, 1, 2, [0, 0, 0, 0], 7, 5),
        (8, 4, 1, 1, [0, 0, 0, 0], 5, 6),
    ] {
        let [t, l, b, r] = pad;
        let conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
            .init(&device);
        let x = Tensor::<4>::random(
            [2, cin, h, w],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        // The Winograd kernel's weights exist for 3×3 at stride 1 with one pixel of padding.
        let winograd = cpu_kernels::winograd(&conv);
        assert_eq!(
            winograd.is_some(),
            (k, stride, pad) == (3, 1, [1; 4]),
            "{cin}->{cout} {k}x{k} {pad:?}: Winograd weights"
        );
        for g in [None, winograd.as_ref()] {
            let kernel = if g.is_some() { "Winograd" } else { "direct" };
            for relu in [false, true] {
                let mut want = conv.forward(x.clone());
                if relu {
                    want = burn::tensor::activation::relu(want);
                }
                let got = cpu_kernels::conv2d(&conv, g, x.clone(), relu);
                assert_eq!(
                    got.dims(),
                    want.dims(),
                    "{cin}->{cout} {k}x{k} {pad:?} at {h}x{w}"
                );
                let d = relative_diff(&values(want), &values(got));
                assert!(
                    d < 1e-5,
                    "{cin}->{cout} {k}x{k} {pad:?} at {h}x{w}, relu {relu}, {kernel}: differs by {d}"
                );
            }
            // The end of a block: the residual added before the ReLU.
            let residual = Tensor::<4>::random(
                conv.forward(x.clone()).dims(),
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            );
            let want = burn::tensor::activation::relu(conv.forward(x.clone()) + residual.clone());
            let got = cpu_kernels::conv2d_add_relu(&conv, g, x.clone(), residual);
            let d = relative_diff(&values(want), &values(got));
            assert!(
                d < 1e-5,
                "{cin}->{cout} {k}x{k} {pad:?} at {h}x{w} with a residual, {kernel}: differs by {d}"
            );
        }
    }
    // Transformed weights of another shape are not used.
    let conv = |cin, cout| {
        Conv2dConfig::new([cin, cout], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device)
    };
    let a = conv(4, 8);
    let x = Tensor::<4>::random(
        [1, 4, 6, 6],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let wrong_shape = cpu_kernels::winograd(&conv(8, 4));
    let d = relative_diff(
        &values(a.forward(x.clone())),
        &values(cpu_kernels::conv2d(&a, wrong_shape.as_ref(), x, false)),
    );
    assert!(
        d < 1e-5,
        "weights of another shape are ignored: differs by {d}"
    );
    let pool = MaxPool2dConfig::new([3, 3])
        .with_strides([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init();
    for (h, w) in [(64, 64), (7, 10), (1, 1), (2, 5)] {
        let x = Tensor::<4>::random(
            [2, 3, h, w],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let want = pool.forward(x.clone());
        let got = cpu_kernels::max_pool2d(&pool, x);
        assert_eq!(got.dims(), want.dims(), "pool at {h}x{w}");
        assert_eq!(values(want), values(got), "pool at {h}x{w}");
    }
}

/// Native wgpu (Vulkan through lavapipe here, any GPU elsewhere) agrees with the CPU backend.
/// Set XRAY_SKIP_WGPU=1 only on machines that have no Vulkan driver at all. (In wasm only the
/// WebGPU module, the `webgpu` feature, has wgpu; tests/web.rs runs it there.)
#[test]
#[cfg(any(not(target_arch = "wasm32"), feature = "webgpu"))]
fn wgpu_agrees_with_cpu() {
    if std::env::var_os("XRAY_SKIP_WGPU").is_some() {
        eprintln!("XRAY_SKIP_WGPU set: skipped");
        return;
    }
    let cpu = Device::flex();
    let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    let config = ResNetConfig::new(Depth::Resnet18, 8, 64);
    let model = config.init(&cpu).valid();
    let bytes = weights::to_bytes(&model, Precision::F32).unwrap();
    let on_gpu = weights::from_bytes(bytes, &config, &gpu).unwrap().valid();
    let x = random_batch(2, 64, 5);
    let a = logits(&model, &x, 64, &cpu);
    let b = logits(&on_gpu, &x, 64, &gpu);
    let diff = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-3, "wgpu differs from CPU by {diff}");
    // The model fused for inference, on the GPU, against the plain one on the CPU.
    let c = logits(&on_gpu.fuse(), &x, 64, &gpu);
    let diff = a
        .iter()
        .zip(&c)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max);
    assert!(
        diff < 1e-3,
        "the fused model on wgpu differs from CPU by {diff}"
    );
}
