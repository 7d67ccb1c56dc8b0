//! Inference kernels for the CPU backend, where Burn's own are slow for this model's shapes.
//!
//! A fused model ([`ResNet::fuse`](super::model::ResNet::fuse)) spends most of its time in
//! convolutions (3×3 at stride 1 and 2 in the blocks, 1×1 at stride 2 in the shortcuts, 4×4 in
//! the rewritten stem) and one 3×3 max-pool. Burn's CPU backend (flex) computes those through
//! im2col and a general matrix multiply, and the pool through its indices; in wasm that is
//! about 11 GFLOP/s and 0.6 ms. The kernels of the `xray-kernels` crate (`kernels/`) compute
//! them directly on NCHW data, four output channels by twelve output pixels at a time in 128-bit
//! vectors (WebAssembly SIMD in the page), with the bias and an optional ReLU applied as each
//! output is stored: about 30 GFLOP/s in the page. The blocks' 3×3, stride-1 convolutions go
//! through Winograd's F(2×2, 3×3) instead, from weights transformed once when the model is
//! fused ([`Winograd`], [`winograd`]): less than half the multiplications.
//!
//! [`conv2d`] and [`max_pool2d`] take Burn tensors and modules: on a CPU tensor outside
//! autodiff they run the kernels; on anything else (WebGPU, the heatmap's autodiff pass, other
//! shapes) they call Burn's own operation, so a model's results do not depend on which path
//! ran (up to the order of the sums; `tests/model.rs`).

pub use xray_kernels::{After, ConvShape};

use std::sync::Arc;

use burn::{
    backend::{Flex, flex::FlexTensor},
    nn::{PaddingConfig2d, conv::Conv2d, pool::MaxPool2d},
    prelude::*,
    tensor::{TensorData, activation::relu},
};

/// A CPU tensor outside autodiff, as contiguous f32 (`None` for anything else).
fn on_cpu<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    let p = t.clone().try_into_primitive::<Flex>().ok()?;
    if p.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    Some(if p.as_slice::<f32>().is_some() {
        p
    } else {
        p.to_contiguous()
    })
}

fn slice(t: &FlexTensor) -> &[f32] {
    // `on_cpu` returns contiguous f32 tensors only.
    t.as_slice::<f32>().unwrap_or(&[])
}

/// A 3×3, stride-1 convolution's weights as [`xray_kernels::conv3x3_winograd`] takes them,
/// transformed once (when the model is fused) rather than at every call.
#[derive(Clone)]
pub struct Winograd {
    /// `[16, cin, cout']` ([`xray_kernels::winograd_weights`]).
    u: Arc<[f32]>,
    cin: usize,
    cout: usize,
}

impl std::fmt::Debug for Winograd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Winograd({} → {})", self.cin, self.cout)
    }
}

/// `conv`'s weights for [`xray_kernels::conv3x3_winograd`], where `conv` is a 3×3, stride-1,
/// undilated, ungrouped convolution with one pixel of padding whose weights are a CPU tensor
/// outside autodiff; `None` otherwise (the convolution then runs as [`conv2d`] says).
pub fn winograd(conv: &Conv2d) -> Option<Winograd> {
    let same = conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(conv.padding, PaddingConfig2d::Explicit(1, 1, 1, 1));
    if !same {
        return None;
    }
    let weight = conv.weight.val();
    let [cout, cin, _, _] = weight.dims();
    let wt = on_cpu(&weight)?;
    Some(Winograd {
        u: xray_kernels::winograd_weights(slice(&wt), cout, cin).into(),
        cin,
        cout,
    })
}

/// `conv`'s output for `x`, with a ReLU after it if `apply_relu`: on a CPU tensor outside
/// autodiff through [`xray_kernels::conv3x3_winograd`] where `winograd` holds `conv`'s
/// transformed weights, through [`xray_kernels::conv2d`] for another undilated, ungrouped
/// convolution (1×1, 3×3 or 4×4, stride 1 or 2); through Burn's convolution otherwise.
///
/// # Shapes
/// - input `[batch, cin, h, w]`
/// - output `[batch, cout, ho, wo]`
pub fn conv2d(
    conv: &Conv2d,
    winograd: Option<&Winograd>,
    x: Tensor<4>,
    apply_relu: bool,
) -> Tensor<4> {
    match direct_conv(conv, winograd, &x, apply_relu, None) {
        Some(y) => y,
        None => {
            let y = conv.forward(x);
            if apply_relu { relu(y) } else { y }
        }
    }
}

/// The end of a ResNet block, `relu(conv(x) + residual)`, in one pass on the CPU as
/// [`conv2d`] does it.
///
/// # Shapes
/// - input `[batch, cin, h, w]`
/// - `residual` and output `[batch, cout, ho, wo]`
pub fn conv2d_add_relu(
    conv: &Conv2d,
    winograd: Option<&Winograd>,
    x: Tensor<4>,
    residual: Tensor<4>,
) -> Tensor<4> {
    match direct_conv(conv, winograd, &x, true, Some(&residual)) {
        Some(y) => y,
        None => relu(conv.forward(x) + residual),
    }
}

/// [`xray_kernels::conv3x3_winograd`] or [`xray_kernels::conv2d`] on each image of `x`, then
/// the residual (if any) and a ReLU (if `apply_relu` or a residual); `None` where the kernels
/// do not apply.
fn direct_conv(
    conv: &Conv2d,
    winograd: Option<&Winograd>,
    x: &Tensor<4>,
    apply_relu: bool,
    residual: Option<&Tensor<4>>,
) -> Option<Tensor<4>> {
    let [kh, kw] = conv.kernel_size;
    let [sh, sw] = conv.stride;
    if kh != kw || sh != sw || conv.dilation != [1, 1] || conv.groups != 1 {
        return None;
    }
    if !xray_kernels::has_conv2d(kh, sh) {
        return None;
    }
    let pad = match &conv.padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Explicit(t, l, b, r) => [*t, *l, *b, *r],
        _ => return None,
    };
    let [batch, cin, h, w] = x.dims();
    let weight = conv.weight.val();
    let [cout, wcin, wkh, wkw] = weight.dims();
    if wcin != cin || [wkh, wkw] != [kh, kw] || cout == 0 {
        return None;
    }
    let s = ConvShape {
        cin,
        h,
        w,
        cout,
        pad,
    };
    let (ho, wo) = s.out(kh, kw, sh)?;
    let shape = [batch, cout, ho, wo];
    let residual = match residual {
        Some(r) if r.dims() == shape => Some(on_cpu(r)?),
        Some(_) => return None,
        None => None,
    };
    let xt = on_cpu(x)?;
    let wt = on_cpu(&weight)?;
    let bias = match &conv.bias {
        Some(b) if b.dims() == [cout] => slice(&on_cpu(&b.val())?).to_vec(),
        Some(_) => return None,
        None => vec![0.0; cout],
    };
    let (xs, ws) = (slice(&xt), slice(&wt));
    // The transformed weights, where they are this convolution's.
    let winograd =
        winograd.filter(|g| (kh, sh, pad) == (3, 1, [1; 4]) && (g.cin, g.cout) == (cin, cout));
    let rs = residual.as_ref().map(slice);
    let (image, out_image) = (cin * h * w, cout * ho * wo);
    let one = |i: usize| {
        let after = match rs {
            Some(r) => After::AddRelu(&r[i * out_image..][..out_image]),
            None if apply_relu => After::Relu,
            None => After::Nothing,
        };
        let x = &xs[i * image..][..image];
        match winograd {
            Some(g) => Some(xray_kernels::conv3x3_winograd(x, &g.u, &bias, s, after)),
            None => xray_kernels::conv2d(x, ws, &bias, s, kh, sh, after),
        }
    };
    // Natively the images of a batch run on all cores (as Burn's own convolution does there).
    #[cfg(not(target_arch = "wasm32"))]
    let images: Option<Vec<Vec<f32>>> = {
        use rayon::prelude::*;
        (0..batch).into_par_iter().map(one).collect()
    };
    #[cfg(target_arch = "wasm32")]
    let images: Option<Vec<Vec<f32>>> = (0..batch).map(one).collect();
    Some(from_vec(concat(images?), shape))
}

/// `pool`'s output for `x`: through [`xray_kernels::max_pool_3x3_s2`] for ResNet's 3×3, stride-2 pool with
/// one pixel of padding on a CPU tensor outside autodiff, through Burn's pool otherwise.
///
/// # Shapes
/// - input `[batch, channels, h, w]`
/// - output `[batch, channels, (h − 1) / 2 + 1, (w − 1) / 2 + 1]`
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let resnets = pool.kernel_size == [3, 3]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && matches!(pool.padding, PaddingConfig2d::Explicit(1, 1, 1, 1));
    let [batch, channels, h, w] = x.dims();
    let cpu = if resnets && h > 0 && w > 0 {
        on_cpu(&x)
    } else {
        None
    };
    match cpu {
        Some(xt) => {
            let xs = slice(&xt);
            let image = channels * h * w;
            let out =
                concat((0..batch).map(|i| {
                    xray_kernels::max_pool_3x3_s2(&xs[i * image..][..image], channels, h, w)
                }));
            from_vec(out, [batch, channels, h.div_ceil(2), w.div_ceil(2)])
        }
        None => pool.forward(x),
    }
}

/// [`xray_kernels::space_to_depth`] of each image of a CPU tensor outside autodiff (`None` for
/// anything else, which Burn's own operations then rearrange).
///
/// # Shapes
/// - input `[batch, channels, h, w]`
/// - output `[batch, 4 · channels, (h + 2 · pad + 1) / 2, (w + 2 · pad + 1) / 2]`
pub fn space_to_depth(x: &Tensor<4>, pad: usize) -> Option<Tensor<4>> {
    let [batch, channels, h, w] = x.dims();
    let xt = on_cpu(x)?;
    let xs = slice(&xt);
    let image = channels * h * w;
    let out = concat(
        (0..batch)
            .map(|i| xray_kernels::space_to_depth(&xs[i * image..][..image], channels, h, w, pad)),
    );
    let (ph, pw) = ((h + 2 * pad).div_ceil(2), (w + 2 * pad).div_ceil(2));
    Some(from_vec(out, [batch, 4 * channels, ph, pw]))
}

/// The images' outputs one after the other: the first itself when it is the only one (a batch
/// of one, the page's), copied slice by slice otherwise. (Not `flat_map(…).collect()`, which
/// moves one value at a time: at the site's opt-level "z" that took longer than the max-pool.)
fn concat(images: impl IntoIterator<Item = Vec<f32>>) -> Vec<f32> {
    let mut images = images.into_iter();
    let mut out = images.next().unwrap_or_default();
    for image in images {
        out.extend_from_slice(&image);
    }
    out
}

fn from_vec(values: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
    Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(values, shape)))
}
