//! The training step, its loss, the learning-rate schedule and X-ray augmentation: the parts of
//! training shared by the native `xray train` and the in-browser fine-tuning.

use burn::{
    optim::{GradientsParams, ModuleOptimizer},
    prelude::*,
    tensor::activation::log_softmax,
};

use super::model::ResNet;

/// A small, fast, seedable random generator (SplitMix64) so that runs are reproducible on every
/// platform without depending on a particular `rand` version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-7);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// Strength of the augmentation applied to each training image.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Largest rotation, degrees.
    pub max_rotation_deg: f32,
    /// Scale range half-width (0.1 = 0.9..1.1).
    pub scale: f32,
    /// Largest translation as a fraction of the side.
    pub translate: f32,
    /// Brightness shift half-width, in [0, 1] intensity units.
    pub brightness: f32,
    /// Contrast factor half-width (0.2 = 0.8..1.2).
    pub contrast: f32,
    /// Gamma range half-width in log2 units (0.3 = 2^-0.3..2^0.3).
    pub gamma: f32,
    /// Largest standard deviation of added Gaussian noise.
    pub noise: f32,
    /// Largest Gaussian blur, standard deviation in pixels (0: none). Older settings without
    /// it read as 0.
    #[serde(default)]
    pub blur: f32,
    /// Probability of a random resized crop (an area share in 0.7..1 and an aspect ratio in
    /// 3/4..4/3, anywhere in the image, stretched back to the square) before the warp.
    #[serde(default)]
    pub crop: f32,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            max_rotation_deg: 10.0,
            scale: 0.12,
            translate: 0.08,
            brightness: 0.08,
            contrast: 0.2,
            gamma: 0.3,
            noise: 0.02,
            blur: 0.0,
            crop: 0.0,
        }
    }
}

impl Augment {
    /// Stronger changes of acquisition for shift-robust training: wider intensity changes,
    /// blur, and random resized crops half of the time.
    pub fn strong() -> Self {
        Self {
            max_rotation_deg: 10.0,
            scale: 0.15,
            translate: 0.1,
            brightness: 0.15,
            contrast: 0.4,
            gamma: 0.6,
            noise: 0.03,
            blur: 1.2,
            crop: 0.5,
        }
    }

    /// Applies a random resized crop, a random affine warp (rotation, scale, translation;
    /// bilinear, border clamped), random intensity changes and a random blur to a
    /// `size`×`size` image with values in [0, 1].
    pub fn apply(&self, img: &[f32], size: usize, rng: &mut Rng) -> Vec<f32> {
        let cropped;
        let img = if self.crop > 0.0 && rng.unit() < self.crop {
            cropped = random_crop(img, size, rng);
            &cropped[..]
        } else {
            img
        };
        let angle = rng
            .range(-self.max_rotation_deg, self.max_rotation_deg)
            .to_radians();
        let scale = rng.range(1.0 - self.scale, 1.0 + self.scale);
        let tx = rng.range(-self.translate, self.translate) * size as f32;
        let ty = rng.range(-self.translate, self.translate) * size as f32;
        let brightness = rng.range(-self.brightness, self.brightness);
        let contrast = rng.range(1.0 - self.contrast, 1.0 + self.contrast);
        let gamma = rng.range(-self.gamma, self.gamma).exp2();
        let noise = rng.range(0.0, self.noise);
        let blur = if self.blur > 0.0 {
            rng.range(0.0, self.blur)
        } else {
            0.0
        };

        let (sin, cos) = angle.sin_cos();
        let c = (size as f32 - 1.0) / 2.0;
        let mut out = Vec::with_capacity(size * size);
        for y in 0..size {
            for x in 0..size {
                // Inverse map: output pixel -> source coordinates.
                let dx = x as f32 - c - tx;
                let dy = y as f32 - c - ty;
                let sx = (cos * dx + sin * dy) / scale + c;
                let sy = (-sin * dx + cos * dy) / scale + c;
                let v = bilinear(img, size, size, sx, sy);
                let v = v.clamp(0.0, 1.0).powf(gamma);
                let v = (v - 0.5) * contrast + 0.5 + brightness + noise * rng.normal();
                out.push(v.clamp(0.0, 1.0));
            }
        }
        if blur > 0.3 {
            gaussian_blur(&mut out, size, blur);
        }
        out
    }
}

/// Bilinear sample of a `w`×`h` image at (x, y), border clamped.
pub fn bilinear(img: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let (x, y) = (x.clamp(0.0, (w - 1) as f32), y.clamp(0.0, (h - 1) as f32));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let top = img[y0 * w + x0] * (1.0 - fx) + img[y0 * w + x1] * fx;
    let bottom = img[y1 * w + x0] * (1.0 - fx) + img[y1 * w + x1] * fx;
    top * (1.0 - fy) + bottom * fy
}

/// A random rectangle (area share 0.7..1, aspect 3/4..4/3) stretched back to the square.
fn random_crop(img: &[f32], size: usize, rng: &mut Rng) -> Vec<f32> {
    let area = rng.range(0.7, 1.0);
    let aspect = rng.range((0.75f32).ln(), (4.0f32 / 3.0).ln()).exp();
    let w = ((area * aspect).sqrt()).min(1.0) * size as f32;
    let h = ((area / aspect).sqrt()).min(1.0) * size as f32;
    let x0 = rng.range(0.0, size as f32 - w + 1e-3);
    let y0 = rng.range(0.0, size as f32 - h + 1e-3);
    let step_x = w / size as f32;
    let step_y = h / size as f32;
    let mut out = Vec::with_capacity(size * size);
    for y in 0..size {
        for x in 0..size {
            let sx = x0 + (x as f32 + 0.5) * step_x - 0.5;
            let sy = y0 + (y as f32 + 0.5) * step_y - 0.5;
            out.push(bilinear(img, size, size, sx, sy));
        }
    }
    out
}

/// Separable Gaussian blur (radius 3σ, border clamped) of a `size`×`size` image, in place.
pub fn gaussian_blur(img: &mut [f32], size: usize, sigma: f32) {
    gaussian_blur_rect(img, size, size, sigma);
}

/// Separable Gaussian blur (radius 3σ, border clamped) of a `w`×`h` image, in place.
pub fn gaussian_blur_rect(img: &mut [f32], w: usize, h: usize, sigma: f32) {
    if sigma <= 0.0 || w == 0 || h == 0 {
        return;
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut tmp = vec![0.0f32; img.len()];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, c)| c * img[y * w + clamp(x as isize + k as isize - radius, w)])
                .sum();
        }
    }
    for y in 0..h {
        for x in 0..w {
            img[y * w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, c)| c * tmp[clamp(y as isize + k as isize - radius, h) * w + x])
                .sum();
        }
    }
}

/// Learning rate at `step` of `total`: linear warm-up over `warmup` steps to `peak`, then
/// cosine decay to 1 % of `peak`.
pub fn lr_at(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    let floor = 0.01 * peak;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Class-weighted cross-entropy, averaged with the weights as in PyTorch, with optional label
/// smoothing: the target puts `1 − smoothing / 2` on the true class and `smoothing / 2` on the
/// other (0 = plain cross-entropy).
///
/// # Shapes
/// - logits `[batch, classes]`, targets `[batch]`, output `[1]`
pub fn weighted_cross_entropy(
    logits: Tensor<2>,
    targets: Tensor<1, Int>,
    class_weights: [f32; 2],
    smoothing: f32,
) -> Tensor<1> {
    let device = logits.device();
    let [batch, _] = logits.dims();
    let log_p = log_softmax(logits, 1);
    let picked = log_p
        .clone()
        .gather(1, targets.clone().reshape([batch, 1]))
        .reshape([batch]);
    let per_image = if smoothing > 0.0 {
        let mean_log_p = log_p.mean_dim(1).reshape([batch]);
        picked * (1.0 - smoothing) + mean_log_p * smoothing
    } else {
        picked
    };
    let weights = Tensor::<1>::from_data(TensorData::new(class_weights.to_vec(), [2]), &device)
        .select(0, targets);
    let total = weights.clone().sum();
    (per_image * weights).sum().neg() / total
}

/// Class weights inversely proportional to class frequency, normalised so they average 1 over
/// the samples.
pub fn balanced_class_weights(n_normal: usize, n_pneumonia: usize) -> [f32; 2] {
    let n = (n_normal + n_pneumonia) as f32;
    [
        n / (2.0 * n_normal.max(1) as f32),
        n / (2.0 * n_pneumonia.max(1) as f32),
    ]
}

/// The output of one optimisation step; `loss` and `logits` are still on the device so the
/// caller chooses how to read them (sync natively, async in the browser).
pub struct StepOutput {
    /// The updated model.
    pub model: ResNet,
    /// Loss before the update, `[1]`.
    pub loss: Tensor<1>,
    /// Logits before the update, `[batch, 2]`, detached.
    pub logits: Tensor<2>,
}

/// One step of AdamW on a batch. `images` must live on an autodiff device.
///
/// # Shapes
/// - images `[batch, 1, size, size]`, targets `[batch]`
pub fn train_step(
    model: ResNet,
    optim: &mut ModuleOptimizer,
    images: Tensor<4>,
    targets: Tensor<1, Int>,
    class_weights: [f32; 2],
    label_smoothing: f32,
    lr: f64,
) -> StepOutput {
    let logits = model.forward(images);
    let loss = weighted_cross_entropy(logits.clone(), targets, class_weights, label_smoothing);
    let grads = loss.backward();
    let grads = GradientsParams::from_grads(grads, &model);
    let model = optim.step(lr, model, grads);
    StepOutput {
        model,
        loss: loss.detach(),
        logits: logits.detach(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((lr_at(0, 100, 10, 1e-3) - 1e-4).abs() < 1e-12);
        assert!((lr_at(9, 100, 10, 1e-3) - 1e-3).abs() < 1e-12);
        assert!((lr_at(10, 100, 10, 1e-3) - 1e-3).abs() < 1e-12);
        assert!(lr_at(55, 100, 10, 1e-3) < 1e-3);
        assert!((lr_at(100, 100, 10, 1e-3) - 1e-5).abs() < 1e-12);
    }

    #[test]
    fn augmentation_is_seeded_and_in_range() {
        let size = 32;
        let img: Vec<f32> = (0..size * size)
            .map(|i| (i % size) as f32 / size as f32)
            .collect();
        let a = Augment::default().apply(&img, size, &mut Rng::new(7));
        let b = Augment::default().apply(&img, size, &mut Rng::new(7));
        let c = Augment::default().apply(&img, size, &mut Rng::new(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn strong_augmentation_is_seeded_and_in_range() {
        let size = 32;
        let img: Vec<f32> = (0..size * size)
            .map(|i| ((i / size) as f32 / size as f32).powi(2))
            .collect();
        let aug = Augment::strong();
        for seed in 0..20 {
            let a = aug.apply(&img, size, &mut Rng::new(seed));
            assert_eq!(a, aug.apply(&img, size, &mut Rng::new(seed)));
            assert_eq!(a.len(), size * size);
            assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn blur_keeps_flat_images_and_the_mean() {
        let size = 16;
        let mut flat = vec![0.25f32; size * size];
        gaussian_blur(&mut flat, size, 1.0);
        assert!(flat.iter().all(|v| (v - 0.25).abs() < 1e-6));
        let mut dot = vec![0.0f32; size * size];
        dot[8 * size + 8] = 1.0;
        gaussian_blur(&mut dot, size, 1.0);
        assert!((dot.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert!(dot[8 * size + 8] < 0.2 && dot[8 * size + 9] > 0.05);
    }

    #[test]
    fn balanced_weights_average_one() {
        let w = balanced_class_weights(100, 300);
        let avg = (100.0 * w[0] + 300.0 * w[1]) / 400.0;
        assert!((avg - 1.0).abs() < 1e-6);
        assert!(w[0] > w[1]);
    }
}
