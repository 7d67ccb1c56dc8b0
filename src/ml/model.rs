//! The one ResNet definition shared by the page, the tests and the native CLI.
//!
//! It follows torchvision's ResNet: a 7×7 stride-2 stem and a 3×3 max-pool, four stages of
//! BasicBlocks (ResNet-18/34) or Bottlenecks (ResNet-50), global average pooling and a linear
//! head. Two things are configurable beyond the depth: the width of the first stage (64 in
//! torchvision, 32 for the "half-width" variants) and the number of input channels (1 for
//! grayscale X-rays). Burn 0.22 dispatches on a runtime [`Device`], so the same code runs on
//! WebGPU, wgpu/Vulkan, CUDA or the CPU.

use burn::{
    module::Param,
    nn::{
        BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d,
        conv::{Conv2d, Conv2dConfig},
        pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig},
    },
    prelude::*,
    tensor::{activation::relu, ops::PadMode},
};
use serde::{Deserialize, Serialize};

use super::{
    class::CLASSES,
    cpu_kernels::{self, Winograd},
};

/// The ResNet depths this crate builds.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum Depth {
    /// BasicBlocks, [2, 2, 2, 2].
    Resnet18,
    /// BasicBlocks, [3, 4, 6, 3].
    Resnet34,
    /// Bottlenecks (expansion 4), [3, 4, 6, 3].
    Resnet50,
}

impl Depth {
    /// Blocks per stage.
    pub fn blocks(self) -> [usize; 4] {
        match self {
            Depth::Resnet18 => [2, 2, 2, 2],
            Depth::Resnet34 | Depth::Resnet50 => [3, 4, 6, 3],
        }
    }

    /// Whether the stages are made of bottleneck blocks.
    pub fn bottleneck(self) -> bool {
        matches!(self, Depth::Resnet50)
    }

    /// The lowercase name (`resnet18`, …; `str::parse` reads it back, in any case).
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Everything needed to build a [`ResNet`] with the right parameter shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Depth and block type.
    pub depth: Depth,
    /// Channels of the first stage; the stages use `width`, `2·width`, `4·width`, `8·width`.
    pub width: usize,
    /// Input channels (1 for grayscale).
    pub in_channels: usize,
    /// Side of the square input image in pixels.
    pub input_size: usize,
}

impl ResNetConfig {
    /// A grayscale, two-class ResNet.
    pub fn new(depth: Depth, width: usize, input_size: usize) -> Self {
        Self {
            depth,
            width,
            in_channels: 1,
            input_size,
        }
    }

    /// A short human name, e.g. `resnet18-w32-128px`.
    pub fn name(&self) -> String {
        format!(
            "{}-w{}-{}px",
            self.depth.name(),
            self.width,
            self.input_size
        )
    }

    /// Length of the pooled feature vector the head reads: `8·width` (`32·width` with
    /// bottlenecks).
    pub fn features(&self) -> usize {
        let expansion = if self.depth.bottleneck() { 4 } else { 1 };
        (self.width << 3) * expansion
    }

    /// Builds the model with freshly initialised parameters on `device`.
    pub fn init(&self, device: &Device) -> ResNet {
        let w = self.width;
        let expansion = if self.depth.bottleneck() { 4 } else { 1 };
        let mut in_ch = w;
        let mut stages = Vec::new();
        for (stage, &n) in self.depth.blocks().iter().enumerate() {
            let planes = w << stage;
            let mut blocks = Vec::with_capacity(n);
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                blocks.push(Block::new(
                    in_ch,
                    planes,
                    stride,
                    self.depth.bottleneck(),
                    device,
                ));
                in_ch = planes * expansion;
            }
            stages.push(Stage { blocks });
        }
        ResNet {
            conv1: Conv2dConfig::new([self.in_channels, w], [7, 7])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                .with_bias(false)
                .init(device),
            bn1: BatchNormConfig::new(w).init(device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            stages,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(in_ch, CLASSES.len()).init(device),
            fused: false,
        }
    }
}

fn conv(in_ch: usize, out_ch: usize, kernel: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new([in_ch, out_ch], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

/// A 1×1 convolution and batch norm that match the shortcut to the block's output.
#[derive(Module, Debug)]
pub struct Downsample {
    conv: Conv2d,
    bn: BatchNorm,
    /// The batch norm is folded into the convolution ([`ResNet::fuse`]).
    fused: bool,
}

/// A BasicBlock: two 3×3 convolutions, the first with the block's stride (ResNet-18/34).
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<Downsample>,
    /// The batch norms are folded into the convolutions ([`ResNet::fuse`]).
    fused: bool,
    /// The fused convolutions' weights transformed for the CPU's Winograd kernel, where they
    /// have one (3×3 at stride 1, on the CPU); not saved.
    #[module(skip)]
    winograd: [Option<Winograd>; 2],
}

/// A Bottleneck: 1×1 down to `planes`, 3×3 with the block's stride, 1×1 up to `4 · planes`
/// (ResNet-50).
#[derive(Module, Debug)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    downsample: Option<Downsample>,
    /// The batch norms are folded into the convolutions ([`ResNet::fuse`]).
    fused: bool,
    /// The fused 3×3 convolution's weights transformed for the CPU's Winograd kernel, where it
    /// has one (at stride 1, on the CPU); not saved.
    #[module(skip)]
    winograd: Option<Winograd>,
}

/// A residual block. The kind is in the type, so a Bottleneck cannot lose its third
/// convolution or batch norm and a BasicBlock cannot gain one. Burn names the variant in the
/// module path (`blocks.0.Basic.conv1`); the weights file leaves it out (`weights.rs`).
#[derive(Module, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few hundred bytes per block, at most 16 blocks; Burn's Module has no Box"
)]
pub enum Block {
    /// Two 3×3 convolutions.
    Basic(BasicBlock),
    /// 1×1, 3×3, 1×1 with expansion 4.
    Bottleneck(Bottleneck),
}

/// A convolution and the batch norm after it; the convolution alone once
/// [`ResNet::fuse`] has folded the norm into it.
fn conv_bn(conv: &Conv2d, bn: &BatchNorm, fused: bool, x: Tensor<4>) -> Tensor<4> {
    if fused {
        cpu_kernels::conv2d(conv, None, x, false)
    } else {
        bn.forward(conv.forward(x))
    }
}

/// [`conv_bn`] and a ReLU after it (in the same pass over the output once fused, from
/// `winograd`'s weights where it has them).
fn conv_bn_relu(
    conv: &Conv2d,
    bn: &BatchNorm,
    (fused, winograd): (bool, Option<&Winograd>),
    x: Tensor<4>,
) -> Tensor<4> {
    if fused {
        cpu_kernels::conv2d(conv, winograd, x, true)
    } else {
        relu(bn.forward(conv.forward(x)))
    }
}

/// The end of a block: `relu(conv_bn(x) + identity)` (in one pass over the output once fused).
fn conv_bn_add_relu(
    conv: &Conv2d,
    bn: &BatchNorm,
    (fused, winograd): (bool, Option<&Winograd>),
    x: Tensor<4>,
    identity: Tensor<4>,
) -> Tensor<4> {
    if fused {
        cpu_kernels::conv2d_add_relu(conv, winograd, x, identity)
    } else {
        relu(bn.forward(conv.forward(x)) + identity)
    }
}

/// `conv` with the inference-mode `bn` after it folded in: the same function of the input, in
/// one operation. Each output channel's weights are scaled by γ / √(σ² + ε), and its bias
/// becomes β − μ · γ / √(σ² + ε) (plus the scaled bias the convolution had).
fn fold(mut conv: Conv2d, bn: &BatchNorm) -> Conv2d {
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let [channels] = scale.dims();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    let bias = match conv.bias.take() {
        Some(b) => b.val() * scale.clone() + shift,
        None => shift,
    };
    conv.weight = Param::from_tensor(conv.weight.val() * scale.reshape([channels, 1, 1, 1]));
    conv.bias = Some(Param::from_tensor(bias));
    conv
}

/// The stem's padding on each side.
const STEM_PAD: usize = 3;

/// The stem's 7×7, stride-2 kernel as a 4×4, stride-1 kernel over [`space_to_depth`]'s
/// channels: tap (2·i + p, 2·j + q) of input channel c becomes tap (i, j) of channel
/// 4·c + 2·p + q (the eighth row and column, which the 7×7 kernel lacks, are zero).
///
/// # Shapes
/// - input `[out, in, 7, 7]`
/// - output `[out, 4 · in, 4, 4]`
fn stem_kernel_to_depth(w: Tensor<4>) -> Tensor<4> {
    let [out, inp, _, _] = w.dims();
    w.pad([(0, 0), (0, 0), (0, 1), (0, 1)], PadMode::Constant(0.0))
        .reshape([out, inp, 4, 2, 4, 2])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([out, inp * 4, 4, 4])
}

/// The stem's input, zero-padded as the 7×7 convolution pads it (and by one more row or column
/// where that leaves an odd size), with each 2×2 block of pixels stacked as 4 channels: the
/// 7×7 stride-2 convolution of `x` equals the 4×4 stride-1 convolution of this by
/// [`stem_kernel_to_depth`]'s kernel. A stride-2 convolution over one channel is the slowest
/// kind on Burn's CPU backend; this one runs several times faster, with the same result up to
/// the order of the sums.
///
/// # Shapes
/// - input `[batch, channels, h, w]`
/// - output `[batch, 4 · channels, (h + 7) / 2, (w + 7) / 2]` (rounded down)
fn space_to_depth(x: Tensor<4>) -> Tensor<4> {
    if let Some(y) = cpu_kernels::space_to_depth(&x, STEM_PAD) {
        return y;
    }
    let [batch, channels, h, w] = x.dims();
    let (ph, pw) = (h + 2 * STEM_PAD, w + 2 * STEM_PAD);
    let (ph, pw) = (ph + ph % 2, pw + pw % 2);
    x.pad(
        [
            (0, 0),
            (0, 0),
            (STEM_PAD, ph - h - STEM_PAD),
            (STEM_PAD, pw - w - STEM_PAD),
        ],
        PadMode::Constant(0.0),
    )
    .reshape([batch, channels, ph / 2, 2, pw / 2, 2])
    .permute([0, 1, 3, 5, 2, 4])
    .reshape([batch, channels * 4, ph / 2, pw / 2])
}

/// The shortcut: the input itself, or its 1×1 projection where the shape changes.
fn shortcut(downsample: &Option<Downsample>, x: Tensor<4>) -> Tensor<4> {
    match downsample {
        Some(d) => conv_bn(&d.conv, &d.bn, d.fused, x),
        None => x,
    }
}

impl Downsample {
    fn fuse(self) -> Self {
        Self {
            conv: fold(self.conv, &self.bn),
            fused: true,
            ..self
        }
    }
}

impl Block {
    fn new(in_ch: usize, planes: usize, stride: usize, bottleneck: bool, device: &Device) -> Self {
        let out_ch = if bottleneck { planes * 4 } else { planes };
        let downsample = (stride != 1 || in_ch != out_ch).then(|| Downsample {
            conv: conv(in_ch, out_ch, 1, stride, device),
            bn: BatchNormConfig::new(out_ch).init(device),
            fused: false,
        });
        if bottleneck {
            Block::Bottleneck(Bottleneck {
                conv1: conv(in_ch, planes, 1, 1, device),
                bn1: BatchNormConfig::new(planes).init(device),
                conv2: conv(planes, planes, 3, stride, device),
                bn2: BatchNormConfig::new(planes).init(device),
                conv3: conv(planes, out_ch, 1, 1, device),
                bn3: BatchNormConfig::new(out_ch).init(device),
                downsample,
                fused: false,
                winograd: None,
            })
        } else {
            Block::Basic(BasicBlock {
                conv1: conv(in_ch, planes, 3, stride, device),
                bn1: BatchNormConfig::new(planes).init(device),
                conv2: conv(planes, planes, 3, 1, device),
                bn2: BatchNormConfig::new(planes).init(device),
                downsample,
                fused: false,
                winograd: [None, None],
            })
        }
    }

    fn fuse(self) -> Self {
        match self {
            Block::Basic(b) => {
                let (conv1, conv2) = (fold(b.conv1, &b.bn1), fold(b.conv2, &b.bn2));
                Block::Basic(BasicBlock {
                    winograd: [cpu_kernels::winograd(&conv1), cpu_kernels::winograd(&conv2)],
                    conv1,
                    conv2,
                    downsample: b.downsample.map(Downsample::fuse),
                    fused: true,
                    ..b
                })
            }
            Block::Bottleneck(b) => {
                let conv2 = fold(b.conv2, &b.bn2);
                Block::Bottleneck(Bottleneck {
                    winograd: cpu_kernels::winograd(&conv2),
                    conv1: fold(b.conv1, &b.bn1),
                    conv2,
                    conv3: fold(b.conv3, &b.bn3),
                    downsample: b.downsample.map(Downsample::fuse),
                    fused: true,
                    ..b
                })
            }
        }
    }

    /// # Shapes
    /// - input `[batch, in_ch, h, w]`
    /// - output `[batch, out_ch, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Block::Basic(b) => {
                let identity = shortcut(&b.downsample, x.clone());
                let [g1, g2] = b.winograd.each_ref().map(Option::as_ref);
                let out = conv_bn_relu(&b.conv1, &b.bn1, (b.fused, g1), x);
                conv_bn_add_relu(&b.conv2, &b.bn2, (b.fused, g2), out, identity)
            }
            Block::Bottleneck(b) => {
                let identity = shortcut(&b.downsample, x.clone());
                let g2 = b.winograd.as_ref();
                let out = conv_bn_relu(&b.conv1, &b.bn1, (b.fused, None), x);
                let out = conv_bn_relu(&b.conv2, &b.bn2, (b.fused, g2), out);
                conv_bn_add_relu(&b.conv3, &b.bn3, (b.fused, None), out, identity)
            }
        }
    }
}

/// One stage: blocks at the same width, the first of which may halve the resolution.
#[derive(Module, Debug)]
pub struct Stage {
    blocks: Vec<Block>,
}

impl Stage {
    /// # Shapes
    /// - input `[batch, in_ch, h, w]`
    /// - output `[batch, out_ch, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }
}

/// ResNet classifier.
#[derive(Module, Debug)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    maxpool: MaxPool2d,
    stages: Vec<Stage>,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear,
    /// Rewritten for inference by [`fuse`](Self::fuse).
    fused: bool,
}

impl ResNet {
    /// The same function of the input, rewritten for inference (the model must be in
    /// inference mode, [`AutodiffModule::valid`](burn::module::AutodiffModule::valid)): every
    /// batch norm folded into the convolution before it, and the stem's 7×7 stride-2
    /// convolution computed as a 4×4 stride-1 one over 2×2 pixel blocks
    /// ([`space_to_depth`]). Outputs match the unfused model's up to float rounding (the
    /// order of the sums). A fused model is for inference only: it has no batch norms left to
    /// train, and [`weights::to_bytes`](super::weights::to_bytes) refuses it.
    pub fn fuse(self) -> Self {
        if self.fused {
            return self;
        }
        let mut conv1 = fold(self.conv1, &self.bn1);
        conv1.weight = conv1.weight.map(stem_kernel_to_depth);
        conv1.stride = [1, 1];
        conv1.kernel_size = [4, 4];
        conv1.padding = PaddingConfig2d::Valid;
        Self {
            conv1,
            stages: self
                .stages
                .into_iter()
                .map(|s| Stage {
                    blocks: s.blocks.into_iter().map(Block::fuse).collect(),
                })
                .collect(),
            fused: true,
            ..self
        }
    }

    /// Whether [`fuse`](Self::fuse) made this model.
    pub fn is_fused(&self) -> bool {
        self.fused
    }

    /// Pooled features before the classifier head.
    ///
    /// # Shapes
    /// - input `[batch, in_channels, size, size]`
    /// - output `[batch, 8 · width · expansion]`
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.features_from(self.trunk(x, 0), 0)
    }

    /// The number of stages (4).
    pub fn stages(&self) -> usize {
        self.stages.len()
    }

    /// Activations after the stem and the first `stages` stages.
    ///
    /// # Shapes
    /// - input `[batch, in_channels, size, size]`
    /// - output `[batch, width · 2^(stages−1) · expansion, size / 2^(stages+1), same]` (the
    ///   stem's `[batch, width, size / 4, size / 4]` for `stages` = 0)
    pub fn trunk(&self, x: Tensor<4>, stages: usize) -> Tensor<4> {
        let x = if self.fused { space_to_depth(x) } else { x };
        let x = conv_bn_relu(&self.conv1, &self.bn1, (self.fused, None), x);
        let x = if self.fused {
            cpu_kernels::max_pool2d(&self.maxpool, x)
        } else {
            self.maxpool.forward(x)
        };
        self.stages
            .iter()
            .take(stages)
            .fold(x, |x, stage| stage.forward(x))
    }

    /// Pooled features from [`trunk`](Self::trunk)'s activations after `from` stages: the
    /// remaining stages, then the global average pool.
    ///
    /// # Shapes
    /// - input: `trunk(x, from)`'s output
    /// - output `[batch, 8 · width · expansion]`
    pub fn features_from(&self, a: Tensor<4>, from: usize) -> Tensor<2> {
        let x = self
            .stages
            .iter()
            .skip(from)
            .fold(a, |x, stage| stage.forward(x));
        let x = self.avgpool.forward(x);
        let [batch, channels, _, _] = x.dims();
        x.reshape([batch, channels])
    }

    /// Class logits.
    ///
    /// # Shapes
    /// - input `[batch, in_channels, size, size]`
    /// - output `[batch, 2]` (NORMAL, PNEUMONIA)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.features(x))
    }

    /// Logits from already pooled features (for training the head alone).
    ///
    /// # Shapes
    /// - input `[batch, features]`
    /// - output `[batch, 2]` (NORMAL, PNEUMONIA)
    pub fn head(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc.forward(features)
    }
}
