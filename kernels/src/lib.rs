//! xray-web's CPU inference kernels, on plain slices of NCHW data: an undilated convolution
//! (1×1 and 3×3 at stride 1 or 2, 4×4 at stride 1) with its bias and what follows it in a
//! ResNet (a ReLU, or a residual and a ReLU), ResNet's 3×3, stride-2 max-pool, and the
//! space-to-depth rearrangement of the fused model's stem; and the 3×3, stride-1 convolution by
//! Winograd's F(2×2, 3×3) (`winograd.rs`), from weights transformed once.
//!
//! Each direct convolution computes four output channels by twelve output pixels at a time in 128-bit
//! vectors: WebAssembly SIMD where the build has it (the page's), four-lane arrays the
//! compiler vectorises elsewhere. They are a crate of their own so that Cargo can compile
//! them at full speed inside a site built for size (`[profile.wasm-release.package.…]`);
//! compiled for size, the same code runs at about half the speed. For the same reason the
//! entry points are neither generic nor inlined: a generic function's code is generated, and
//! optimised, in the crate that calls it. `xray-web`'s
//! `ml::cpu_kernels` puts them behind Burn's tensors; its tests compare them with Burn's own
//! convolution and pool.
//!
//! With the `relaxed-simd` feature (for wasm32), the functions that run the multiply-adds are
//! compiled with WebAssembly's relaxed SIMD (`#[target_feature(enable = "relaxed-simd")]`, so
//! the rest of the program needs no such flag), and each multiply-add is one fused instruction
//! (`f32x4.relaxed_madd`; a result may differ from the plain one in the last bit). A module
//! built so validates only in a browser that has relaxed SIMD: the site builds one without it
//! too and loads whichever the browser takes. Every function that runs [`F4::mul_add`] and is
//! not `#[inline(always)]` carries that attribute; a helper without it would call the
//! intrinsic out of line.

/// Four f32 lanes: a WebAssembly SIMD vector in the page, an array elsewhere.
mod lanes {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    mod imp {
        use core::arch::wasm32::{
            f32x4_add, f32x4_max, f32x4_splat, f32x4_sub, i32x4_shuffle, v128, v128_load,
            v128_store,
        };

        #[derive(Clone, Copy)]
        pub struct F4(v128);

        impl F4 {
            #[inline(always)]
            pub fn splat(v: f32) -> Self {
                Self(f32x4_splat(v))
            }
            /// # Safety
            /// `p` points at a readable f32.
            #[inline(always)]
            pub unsafe fn load_splat(p: *const f32) -> Self {
                // SAFETY: the caller's contract.
                Self(unsafe { core::arch::wasm32::v128_load32_splat(p.cast::<u32>()) })
            }
            /// # Safety
            /// `p` points at four readable f32.
            #[inline(always)]
            pub unsafe fn load(p: *const f32) -> Self {
                // SAFETY: the caller's contract; v128 loads have no alignment requirement.
                Self(unsafe { v128_load(p.cast::<v128>()) })
            }
            /// # Safety
            /// `p` points at four writable f32.
            #[inline(always)]
            pub unsafe fn store(self, p: *mut f32) {
                // SAFETY: the caller's contract.
                unsafe { v128_store(p.cast::<v128>(), self.0) }
            }
            /// `self + a · b`: a fused multiply-add where the build has relaxed SIMD (the
            /// crate's `relaxed-simd` feature; its result may then differ in the last bit), a
            /// multiply and an add otherwise. Where it fuses, it becomes one instruction only
            /// inside functions compiled with relaxed SIMD (see the crate's documentation).
            #[inline(always)]
            pub fn mul_add(self, a: Self, b: Self) -> Self {
                #[cfg(any(feature = "relaxed-simd", target_feature = "relaxed-simd"))]
                return Self(core::arch::wasm32::f32x4_relaxed_madd(a.0, b.0, self.0));
                #[cfg(not(any(feature = "relaxed-simd", target_feature = "relaxed-simd")))]
                return Self(f32x4_add(self.0, core::arch::wasm32::f32x4_mul(a.0, b.0)));
            }
            /// Lane by lane, NaN if either is.
            #[inline(always)]
            pub fn max(self, o: Self) -> Self {
                Self(f32x4_max(self.0, o.0))
            }
            #[inline(always)]
            pub fn add(self, o: Self) -> Self {
                Self(f32x4_add(self.0, o.0))
            }
            #[inline(always)]
            pub fn sub(self, o: Self) -> Self {
                Self(f32x4_sub(self.0, o.0))
            }
            /// `[a0, b0, a1, b1]` and `[a2, b2, a3, b3]`.
            #[inline(always)]
            pub fn zip(self, b: Self) -> (Self, Self) {
                (
                    Self(i32x4_shuffle::<0, 4, 1, 5>(self.0, b.0)),
                    Self(i32x4_shuffle::<2, 6, 3, 7>(self.0, b.0)),
                )
            }
            /// `[a0, a2, b0, b2]` and `[a1, a3, b1, b3]`.
            #[inline(always)]
            pub fn unzip(self, b: Self) -> (Self, Self) {
                (
                    Self(i32x4_shuffle::<0, 2, 4, 6>(self.0, b.0)),
                    Self(i32x4_shuffle::<1, 3, 5, 7>(self.0, b.0)),
                )
            }
            /// Rows become columns.
            #[inline(always)]
            pub fn transpose([a, b, c, d]: [Self; 4]) -> [Self; 4] {
                let (ab0, ab1) = a.zip(b);
                let (cd0, cd1) = c.zip(d);
                [
                    Self(i32x4_shuffle::<0, 1, 4, 5>(ab0.0, cd0.0)),
                    Self(i32x4_shuffle::<2, 3, 6, 7>(ab0.0, cd0.0)),
                    Self(i32x4_shuffle::<0, 1, 4, 5>(ab1.0, cd1.0)),
                    Self(i32x4_shuffle::<2, 3, 6, 7>(ab1.0, cd1.0)),
                ]
            }
        }
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    mod imp {
        #[derive(Clone, Copy)]
        pub struct F4([f32; 4]);

        impl F4 {
            #[inline(always)]
            pub fn splat(v: f32) -> Self {
                Self([v; 4])
            }
            /// # Safety
            /// `p` points at a readable f32.
            #[inline(always)]
            pub unsafe fn load_splat(p: *const f32) -> Self {
                // SAFETY: the caller's contract.
                Self([unsafe { p.read() }; 4])
            }
            /// # Safety
            /// `p` points at four readable f32.
            #[inline(always)]
            pub unsafe fn load(p: *const f32) -> Self {
                // SAFETY: the caller's contract.
                Self(unsafe { p.cast::<[f32; 4]>().read_unaligned() })
            }
            /// # Safety
            /// `p` points at four writable f32.
            #[inline(always)]
            pub unsafe fn store(self, p: *mut f32) {
                // SAFETY: the caller's contract.
                unsafe { p.cast::<[f32; 4]>().write_unaligned(self.0) }
            }
            #[inline(always)]
            pub fn mul_add(self, a: Self, b: Self) -> Self {
                Self(std::array::from_fn(|i| self.0[i] + a.0[i] * b.0[i]))
            }
            /// Lane by lane, NaN if either is (as WebAssembly's `f32x4.max`).
            #[inline(always)]
            pub fn max(self, o: Self) -> Self {
                Self(std::array::from_fn(|i| {
                    super::super::max_nan(self.0[i], o.0[i])
                }))
            }
            #[inline(always)]
            pub fn add(self, o: Self) -> Self {
                Self(std::array::from_fn(|i| self.0[i] + o.0[i]))
            }
            #[inline(always)]
            pub fn sub(self, o: Self) -> Self {
                Self(std::array::from_fn(|i| self.0[i] - o.0[i]))
            }
            /// `[a0, b0, a1, b1]` and `[a2, b2, a3, b3]`.
            #[inline(always)]
            pub fn zip(self, b: Self) -> (Self, Self) {
                let a = self.0;
                let b = b.0;
                (
                    Self([a[0], b[0], a[1], b[1]]),
                    Self([a[2], b[2], a[3], b[3]]),
                )
            }
            /// `[a0, a2, b0, b2]` and `[a1, a3, b1, b3]`.
            #[inline(always)]
            pub fn unzip(self, b: Self) -> (Self, Self) {
                let a = self.0;
                let b = b.0;
                (
                    Self([a[0], a[2], b[0], b[2]]),
                    Self([a[1], a[3], b[1], b[3]]),
                )
            }
            /// Rows become columns.
            #[inline(always)]
            pub fn transpose([a, b, c, d]: [Self; 4]) -> [Self; 4] {
                let (a, b, c, d) = (a.0, b.0, c.0, d.0);
                [
                    Self([a[0], b[0], c[0], d[0]]),
                    Self([a[1], b[1], c[1], d[1]]),
                    Self([a[2], b[2], c[2], d[2]]),
                    Self([a[3], b[3], c[3], d[3]]),
                ]
            }
        }
    }

    pub use imp::F4;
}

use lanes::F4;

mod winograd;
pub use winograd::{conv3x3_winograd, winograd_weights};

/// Output channels computed together.
const CO: usize = 4;

/// Vectors of four outputs computed together for each of the [`CO`] channels: `CO · VECTORS`
/// sums in registers.
const VECTORS: usize = 3;

/// What one block of [`CO`] output channels reads: the padded input, its taps and the
/// channels' weights and biases.
struct Tile<'a> {
    xp: &'a [f32],
    plane: usize,
    cin: usize,
    taps: &'a [usize],
    wrows: [&'a [f32]; CO],
    bias: [F4; CO],
}

impl Tile<'_> {
    /// The sums for the [`CO`] channels at `N` vectors of outputs, each given by the offset of
    /// its first input in a channel's plane of `xp` (see the safety note in `conv2d_direct`).
    #[inline(always)]
    fn run<const N: usize>(&self, at: [usize; N]) -> [[F4; N]; CO] {
        let kk = self.taps.len();
        let mut acc: [[F4; N]; CO] = self.bias.map(|b| [b; N]);
        for c in 0..self.cin {
            let base = c * self.plane;
            let w: [&[f32]; CO] = self.wrows.map(|r| &r[c * kk..][..kk]);
            for (t, &tap) in self.taps.iter().enumerate() {
                let v: [F4; N] = at.map(|i| {
                    // SAFETY: see `conv2d_direct`: every vector's reads stay within channel
                    // `c`'s plane of `xp`.
                    unsafe { F4::load(self.xp.as_ptr().add(base + tap + i)) }
                });
                for j in 0..CO {
                    let wj = F4::splat(w[j][t]);
                    for n in 0..N {
                        acc[j][n] = acc[j][n].mul_add(wj, v[n]);
                    }
                }
            }
        }
        acc
    }
}

/// The most taps a kernel here has (4 × 4).
const MAX_TAPS: usize = 16;

/// What follows a convolution in the same pass over its output.
#[derive(Debug, Clone, Copy)]
pub enum After<'a> {
    /// Nothing: the convolution and its bias.
    Nothing,
    /// A ReLU.
    Relu,
    /// A residual connection and a ReLU: `max(0, conv + residual)`, the end of a ResNet block.
    /// The residual has the output's shape.
    AddRelu(&'a [f32]),
}

/// The shape of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub cin: usize,
    /// Input height and width.
    pub h: usize,
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Zero padding: top, left, bottom, right.
    pub pad: [usize; 4],
}

impl ConvShape {
    /// Output height and width for a `kh × kw` kernel at `stride` (`None` if the kernel does
    /// not fit).
    pub fn out(&self, kh: usize, kw: usize, stride: usize) -> Option<(usize, usize)> {
        let [t, l, b, r] = self.pad;
        let ho = (self.h + t + b).checked_sub(kh)? / stride + 1;
        let wo = (self.w + l + r).checked_sub(kw)? / stride + 1;
        Some((ho, wo))
    }
}

/// Whether [`conv2d`] has an instance for a `kernel × kernel` convolution at `stride`: 1×1 and
/// 3×3 at stride 1 or 2, 4×4 at stride 1.
pub fn has_conv2d(kernel: usize, stride: usize) -> bool {
    matches!((kernel, stride), (1, 1) | (1, 2) | (3, 1) | (3, 2) | (4, 1))
}

/// An undilated `kernel × kernel` convolution of one image at `stride`, with its bias and
/// what comes `after` it; `None` where [`has_conv2d`] says it has no instance.
///
/// Not generic and never inlined, so that its code is compiled here, at this crate's
/// optimisation level, whatever the calling crate's.
///
/// # Shapes
/// - `x`: `[cin, h, w]`, row-major
/// - `weight`: `[cout, cin, kernel, kernel]`
/// - `bias`: `[cout]`
/// - output `[cout, ho, wo]` with `(ho, wo) = s.out(kernel, kernel, stride)` (and the residual
///   of [`After::AddRelu`] the same)
///
/// # Panics
/// If a slice's length does not match `s`, or the kernel does not fit (the caller checks).
#[inline(never)]
#[cfg_attr(
    all(target_arch = "wasm32", feature = "relaxed-simd"),
    target_feature(enable = "relaxed-simd")
)]
pub fn conv2d(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    s: ConvShape,
    kernel: usize,
    stride: usize,
    after: After,
) -> Option<Vec<f32>> {
    Some(match (kernel, stride) {
        (1, 1) => conv2d_direct::<1, 1>(x, weight, bias, s, after),
        (1, 2) => conv2d_direct::<1, 2>(x, weight, bias, s, after),
        (3, 1) => conv2d_direct::<3, 1>(x, weight, bias, s, after),
        (3, 2) => conv2d_direct::<3, 2>(x, weight, bias, s, after),
        (4, 1) => conv2d_direct::<4, 1>(x, weight, bias, s, after),
        _ => return None,
    })
}

/// An undilated `K × K` convolution of one image at stride `S`, with its bias and what comes
/// `after` it.
///
/// # Shapes
/// - `x`: `[cin, h, w]`, row-major
/// - `weight`: `[cout, cin, K, K]`
/// - `bias`: `[cout]`
/// - output `[cout, ho, wo]` with `(ho, wo) = s.out(K, K, S)` (and the residual of
///   [`After::AddRelu`] the same)
///
/// # Panics
/// If a slice's length does not match `s`, or the kernel does not fit (the caller checks).
#[cfg_attr(
    all(target_arch = "wasm32", feature = "relaxed-simd"),
    target_feature(enable = "relaxed-simd")
)]
fn conv2d_direct<const K: usize, const S: usize>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    s: ConvShape,
    after: After,
) -> Vec<f32> {
    let apply_relu = matches!(after, After::Relu);
    assert!(
        K * K <= MAX_TAPS,
        "conv2d_direct: a {K}x{K} kernel has too many taps"
    );
    let ConvShape {
        cin, h, w, cout, ..
    } = s;
    let [top, left, _, _] = s.pad;
    let Some((ho, wo)) = s.out(K, K, S) else {
        panic!("conv2d_direct: a {K}x{K} kernel does not fit {s:?}")
    };
    assert_eq!(x.len(), cin * h * w, "conv2d_direct: input length");
    assert_eq!(
        weight.len(),
        cout * cin * K * K,
        "conv2d_direct: weight length"
    );
    assert_eq!(bias.len(), cout, "conv2d_direct: bias length");

    // The input zero-padded, each padded row split into `S` phases (the columns `p`, `p + S`,
    // `p + 2S`, … in phase `p`), so that the inputs of four neighbouring outputs under one tap
    // are four neighbouring values: output column `ox` under tap column `kx` reads padded
    // column `S · ox + kx`, value `ox + kx / S` of phase `kx % S`. With `wo4` outputs per row
    // (a multiple of 4), a phase holds `wq = wo4 + (K − 1) / S` values.
    let wo4 = wo.div_ceil(4) * 4;
    let wq = wo4 + (K - 1) / S;
    let row = S * wq;
    let hp = S * (ho - 1) + K;
    let plane = hp * row;
    let mut xp = vec![0.0f32; cin * plane];
    for c in 0..cin {
        for y in 0..h.min(hp.saturating_sub(top)) {
            let src = &x[(c * h + y) * w..][..w];
            let dst = &mut xp[c * plane + (y + top) * row..][..row];
            if S == 1 {
                let n = w.min(wq.saturating_sub(left));
                dst[left..left + n].copy_from_slice(&src[..n]);
            } else {
                for (i, &v) in src.iter().enumerate() {
                    let col = i + left;
                    let q = col / S;
                    if q < wq {
                        dst[(col % S) * wq + q] = v;
                    }
                }
            }
        }
    }

    // Every vector of four outputs, by the offset of its first input (tap 0, 0) in a plane
    // and of its first output in an output plane of width `wo4`.
    let vectors: Vec<(usize, usize)> = (0..ho)
        .flat_map(|oy| (0..wo4 / 4).map(move |v| (S * oy * row + 4 * v, oy * wo4 + 4 * v)))
        .collect();
    // Each tap's offset from a vector's first input.
    let mut taps = [0usize; MAX_TAPS];
    for (t, tap) in taps.iter_mut().enumerate().take(K * K) {
        let (ky, kx) = (t / K, t % K);
        *tap = ky * row + (kx % S) * wq + kx / S;
    }
    let taps = &taps[..K * K];

    let per_out = cin * K * K;
    let out_plane = ho * wo4;
    let mut out = vec![0.0f32; cout * out_plane];
    let zero = F4::splat(0.0);
    for cb in (0..cout).step_by(CO) {
        // Channels past the end repeat the last one; their results are not stored.
        let ch: [usize; CO] = std::array::from_fn(|j| (cb + j).min(cout - 1));
        let wrows: [&[f32]; CO] = std::array::from_fn(|j| &weight[ch[j] * per_out..][..per_out]);
        let b: [F4; CO] = std::array::from_fn(|j| F4::splat(bias[ch[j]]));
        let store = |acc: [F4; CO], o: usize, out: &mut [f32]| {
            for (j, a) in acc.into_iter().enumerate() {
                if cb + j < cout {
                    let a = if apply_relu { a.max(zero) } else { a };
                    let dst = &mut out[(cb + j) * out_plane + o..][..4];
                    // SAFETY: `dst` holds four f32.
                    unsafe { a.store(dst.as_mut_ptr()) }
                }
            }
        };
        // SAFETY (the loads below): a vector's first input is at `S · oy · row + 4v` with
        // `oy < ho` and `4v + 3 < wo4`; a tap adds at most `(K − 1) · row + (S − 1) · wq +
        // (K − 1) / S`, so the last lane read is below `(S · (ho − 1) + K − 1) · row + row =
        // plane`, within channel `c`'s plane of `xp`.
        let tile = Tile {
            xp: &xp,
            plane,
            cin,
            taps,
            wrows,
            bias: b,
        };
        let mut groups = vectors.chunks_exact(VECTORS);
        for group in &mut groups {
            let at: [(usize, usize); VECTORS] = std::array::from_fn(|n| group[n]);
            let acc = tile.run::<VECTORS>(at.map(|(i, _)| i));
            for (n, (_, o)) in at.into_iter().enumerate() {
                store(acc.map(|a| a[n]), o, &mut out);
            }
        }
        for &(i, o) in groups.remainder() {
            store(tile.run::<1>([i]).map(|[a]| a), o, &mut out);
        }
    }
    let mut out = if wo4 == wo {
        out
    } else {
        out.chunks_exact(wo4)
            .flat_map(|row| &row[..wo])
            .copied()
            .collect()
    };
    if let After::AddRelu(residual) = after {
        assert_eq!(residual.len(), out.len(), "conv2d_direct: residual length");
        for (o, r) in out.iter_mut().zip(residual) {
            *o = (*o + r).max(0.0);
        }
    }
    out
}

/// A 3×3, stride-2 max-pool with one pixel of padding (ResNet's), of one image.
///
/// # Shapes
/// - `x`: `[channels, h, w]`
/// - output `[channels, (h − 1) / 2 + 1, (w − 1) / 2 + 1]`
#[inline(never)]
pub fn max_pool_3x3_s2(x: &[f32], channels: usize, h: usize, w: usize) -> Vec<f32> {
    assert_eq!(x.len(), channels * h * w, "max_pool_3x3_s2: input length");
    let (ho, wo) = (h.div_ceil(2), w.div_ceil(2));
    let mut out = vec![0.0f32; channels * ho * wo];
    // The maxima down each column of an output row's three input rows, with a column of −∞ on
    // either side (the padding), and seven more on the right so that the last vector of four
    // outputs (nine columns) can be read whole.
    let mut cols = vec![f32::NEG_INFINITY; w + 9];
    for c in 0..channels {
        let src = &x[c * h * w..][..h * w];
        let dst = &mut out[c * ho * wo..][..ho * wo];
        for (oy, drow) in dst.chunks_exact_mut(wo).enumerate() {
            let rows = (2 * oy).saturating_sub(1)..(2 * oy + 2).min(h);
            let inner = &mut cols[1..=w];
            inner.fill(f32::NEG_INFINITY);
            for y in rows {
                let srow = &src[y * w..][..w];
                let mut mv = inner.chunks_exact_mut(4);
                let mut sv = srow.chunks_exact(4);
                for (m, v) in (&mut mv).zip(&mut sv) {
                    // SAFETY: both chunks hold four f32.
                    unsafe {
                        F4::load(m.as_ptr())
                            .max(F4::load(v.as_ptr()))
                            .store(m.as_mut_ptr())
                    }
                }
                for (m, &v) in mv.into_remainder().iter_mut().zip(sv.remainder()) {
                    *m = max_nan(*m, v);
                }
            }
            // Output `ox` is the largest of columns 2 · ox … 2 · ox + 2: for four outputs, the
            // even columns of eight, the odd ones, and the even ones two further on.
            let mut dv = drow.chunks_exact_mut(4);
            for (v, d) in (&mut dv).enumerate() {
                let c = &cols[8 * v..][..10];
                // SAFETY: `c` holds ten f32, `d` four.
                unsafe {
                    let (even, odd) = F4::load(c.as_ptr()).unzip(F4::load(c.as_ptr().add(4)));
                    let (next, _) = F4::load(c.as_ptr().add(2)).unzip(F4::load(c.as_ptr().add(6)));
                    even.max(odd).max(next).store(d.as_mut_ptr());
                }
            }
            let done = wo - wo % 4;
            for (i, d) in dv.into_remainder().iter_mut().enumerate() {
                let ox = done + i;
                let three = &cols[2 * ox..][..3];
                *d = three.iter().fold(f32::NEG_INFINITY, |m, &v| max_nan(m, v));
            }
        }
    }
    out
}

/// The larger of two values, NaN if either is (as Burn's pool propagates it).
#[inline(always)]
fn max_nan(a: f32, b: f32) -> f32 {
    if b > a || b.is_nan() { b } else { a }
}

/// One image zero-padded by `pad` on each side (and by one more row or column where that
/// leaves an odd size), with each 2×2 block of pixels stacked as 4 channels: padded pixel
/// `(2i + p, 2j + q)` of channel `c` becomes pixel `(i, j)` of channel `4c + 2p + q`.
///
/// # Shapes
/// - `x`: `[channels, h, w]`
/// - output `[4 · channels, ph / 2, pw / 2]` with `ph` = `h + 2 · pad` rounded up to even (`pw`
///   the same)
#[inline(never)]
pub fn space_to_depth(x: &[f32], channels: usize, h: usize, w: usize, pad: usize) -> Vec<f32> {
    assert_eq!(x.len(), channels * h * w, "space_to_depth: input length");
    let (ph, pw) = ((h + 2 * pad).div_ceil(2), (w + 2 * pad).div_ceil(2));
    let mut out = vec![0.0f32; channels * 4 * ph * pw];
    for c in 0..channels {
        for y in 0..h {
            let py = y + pad;
            let src = &x[(c * h + y) * w..][..w];
            for (xx, &v) in src.iter().enumerate() {
                let px = xx + pad;
                let channel = 4 * c + 2 * (py % 2) + px % 2;
                out[(channel * ph + py / 2) * pw + px / 2] = v;
            }
        }
    }
    out
}
