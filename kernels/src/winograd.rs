//! A 3×3, stride-1 convolution with one pixel of padding (a ResNet block's) by Winograd's
//! minimal filtering, F(2×2, 3×3) (Lavin and Gray, 2016): each 2×2 block of outputs ("tile")
//! comes from its 4×4 block of inputs with 16 multiplications per input and output channel
//! instead of 36, after the inputs and the weights have been transformed; the output is
//! transformed back. With the weights transformed once ([`winograd_weights`]), the sixteen
//! products are sixteen matrix products, `[cout × cin] · [cin × tiles]`, computed here four
//! tiles by eight output channels at a time in 128-bit vectors.
//!
//! Notation: input tile `d` (4×4), kernel `g` (3×3), output tile `y` (2×2);
//! `y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` with
//! `Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]`, `G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]`,
//! `Aᵀ = [1 1 1 0; 0 1 −1 −1]`. Its results differ from a direct convolution's by float
//! rounding only (the sums in another order; the factors ½ are exact).

use std::cell::RefCell;

use crate::{After, ConvShape, F4, max_nan};

/// Output channels of one block of the matrix products: `CV` vectors of four.
const CV: usize = 2;

/// Tiles of one block of the matrix products (one vector of four once transposed).
const NT: usize = 4;

/// Floats in a cache line.
const LINE: usize = 16;

/// `cout` rounded up to a whole number of blocks of output channels: the third dimension of
/// [`winograd_weights`]' output.
fn padded_channels(cout: usize) -> usize {
    cout.div_ceil(4 * CV) * 4 * CV
}

/// A 3×3 kernel's weights transformed for [`conv3x3_winograd`]: `G g Gᵀ` for each pair of
/// output and input channels, arranged as sixteen `[cin, cout']` matrices (`cout'`: `cout`
/// rounded up to a multiple of eight, the extra channels zero).
///
/// # Shapes
/// - `weight`: `[cout, cin, 3, 3]`
/// - output `[16, cin, cout']`
///
/// # Panics
/// If `weight`'s length is not `cout · cin · 9`.
#[inline(never)]
pub fn winograd_weights(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    assert_eq!(
        weight.len(),
        cout * cin * 9,
        "winograd_weights: weight length"
    );
    let coutp = padded_channels(cout);
    let mut u = vec![0.0f32; 16 * cin * coutp];
    for (pair, g) in weight.chunks_exact(9).enumerate() {
        let (co, ci) = (pair / cin, pair % cin);
        // G g: four rows of three.
        let (r0, r1, r2) = (&g[0..3], &g[3..6], &g[6..9]);
        let gg: [[f32; 3]; 4] = [
            [r0[0], r0[1], r0[2]],
            std::array::from_fn(|c| 0.5 * (r0[c] + r1[c] + r2[c])),
            std::array::from_fn(|c| 0.5 * (r0[c] - r1[c] + r2[c])),
            [r2[0], r2[1], r2[2]],
        ];
        // (G g) Gᵀ.
        for (i, [a, b, d]) in gg.into_iter().enumerate() {
            let row = [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d];
            for (j, v) in row.into_iter().enumerate() {
                u[((i * 4 + j) * cin + ci) * coutp + co] = v;
            }
        }
    }
    u
}

/// Addition and subtraction, for the transforms on single values and on vectors of four.
trait Sum: Copy {
    fn plus(self, o: Self) -> Self;
    fn minus(self, o: Self) -> Self;
}

impl Sum for f32 {
    #[inline(always)]
    fn plus(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn minus(self, o: Self) -> Self {
        self - o
    }
}

impl Sum for F4 {
    #[inline(always)]
    fn plus(self, o: Self) -> Self {
        self.add(o)
    }
    #[inline(always)]
    fn minus(self, o: Self) -> Self {
        self.sub(o)
    }
}

/// `Bᵀ d B` of an input tile (written out: array helpers such as `map` are not always
/// inlined, and then cost more than the sums).
#[inline(always)]
fn input_transform<T: Sum>(d: [[T; 4]; 4]) -> [[T; 4]; 4] {
    let mut t = d;
    for r in 0..4 {
        let [a, b, c, e] = d[r];
        t[r] = [a.minus(c), b.plus(c), c.minus(b), b.minus(e)];
    }
    let mut v = t;
    for c in 0..4 {
        let (a, b, e, f) = (t[0][c], t[1][c], t[2][c], t[3][c]);
        v[0][c] = a.minus(e);
        v[1][c] = b.plus(e);
        v[2][c] = e.minus(b);
        v[3][c] = b.minus(f);
    }
    v
}

/// `Aᵀ m A` of a tile of products.
#[inline(always)]
fn output_transform<T: Sum>(m: [[T; 4]; 4]) -> [[T; 2]; 2] {
    let mut s = [[m[0][0]; 2]; 4];
    for r in 0..4 {
        let [a, b, c, e] = m[r];
        s[r] = [a.plus(b).plus(c), b.minus(c).minus(e)];
    }
    let mut y = [[m[0][0]; 2]; 2];
    for c in 0..2 {
        let (a, b, e, f) = (s[0][c], s[1][c], s[2][c], s[3][c]);
        y[0][c] = a.plus(b).plus(e);
        y[1][c] = b.minus(e).minus(f);
    }
    y
}

/// A 3×3, stride-1 convolution of one image with one pixel of zero padding on every side, with
/// its bias and what comes `after` it, from weights transformed by [`winograd_weights`].
///
/// Not generic and never inlined (see the crate's documentation).
///
/// # Shapes
/// - `x`: `[cin, h, w]`, row-major
/// - `u`: `[16, cin, cout']` ([`winograd_weights`])
/// - `bias`: `[cout]`
/// - output `[cout, h, w]` (and the residual of [`After::AddRelu`] the same)
///
/// # Panics
/// If `s.pad` is not one pixel on every side, or a slice's length does not match `s`.
#[inline(never)]
#[cfg_attr(
    all(target_arch = "wasm32", feature = "relaxed-simd"),
    target_feature(enable = "relaxed-simd")
)]
pub fn conv3x3_winograd(
    x: &[f32],
    u: &[f32],
    bias: &[f32],
    s: ConvShape,
    after: After,
) -> Vec<f32> {
    let ConvShape {
        cin, h, w, cout, ..
    } = s;
    assert_eq!(s.pad, [1; 4], "conv3x3_winograd: padding");
    assert_eq!(x.len(), cin * h * w, "conv3x3_winograd: input length");
    let coutp = padded_channels(cout);
    assert_eq!(u.len(), 16 * cin * coutp, "conv3x3_winograd: weight length");
    assert_eq!(bias.len(), cout, "conv3x3_winograd: bias length");
    if let After::AddRelu(r) = after {
        assert_eq!(r.len(), cout * h * w, "conv3x3_winograd: residual length");
    }
    SCRATCH.with_borrow_mut(|scratch| winograd_passes(x, u, bias, s, after, scratch))
}

thread_local! {
    /// A thread's working memory for [`conv3x3_winograd`], kept between calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The passes of [`conv3x3_winograd`], in `scratch` (grown as needed).
#[cfg_attr(
    all(target_arch = "wasm32", feature = "relaxed-simd"),
    target_feature(enable = "relaxed-simd")
)]
fn winograd_passes(
    x: &[f32],
    u: &[f32],
    bias: &[f32],
    s: ConvShape,
    after: After,
    scratch: &mut Vec<f32>,
) -> Vec<f32> {
    let ConvShape {
        cin, h, w, cout, ..
    } = s;
    let coutp = padded_channels(cout);
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let tiles = th * tw;
    let tp = tiles.div_ceil(NT) * NT;

    // The input zero-padded (padded row r is input row r − 1, padded column c input column
    // c − 1), each padded row split into its even and odd columns, `q` values each: column
    // `c` of tile `tx`'s 4×4 block is padded column 2 · tx + c, value tx + c / 2 of phase
    // c % 2, so the same column of four neighbouring tiles is four neighbouring values.
    let q = tw + 1;
    let prow = 2 * q;
    let plane = (2 * th + 2) * prow;
    // The sixteen matrices of `v` are `vs` apart, and those of `m` `ms`, one cache line more
    // than their size: sixteen neighbouring rows of them, written and read together, then fall
    // in different sets of the cache (sizes of a power of two otherwise put them all in one,
    // which cost up to half the time).
    let vs = cin * tp + LINE;
    let ms = coutp * tp + LINE;
    let need = cin * plane + 16 * vs + 16 * ms;
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    let (xp, rest) = scratch.split_at_mut(cin * plane);
    let (v, rest) = rest.split_at_mut(16 * vs);
    let m = &mut rest[..16 * ms];
    // Of the three only the padded input's zeros are needed as zeros, and the tiles of `v`
    // past the last; the rest is written before it is read.
    xp.fill(0.0);
    if tp > tiles {
        for row in v.chunks_exact_mut(vs) {
            for c in 0..cin {
                row[c * tp + tiles..(c + 1) * tp].fill(0.0);
            }
        }
    }
    for (c, dst) in xp.chunks_exact_mut(plane).enumerate() {
        for y in 0..h {
            let src = &x[(c * h + y) * w..][..w];
            let row = &mut dst[(y + 1) * prow..][..prow];
            for (i, &v) in src.iter().enumerate() {
                let col = i + 1;
                row[(col % 2) * q + col / 2] = v;
            }
        }
    }

    // Bᵀ d B of every tile: sixteen `[cin, tp]` matrices (tiles numbered row by row; the
    // `tp − tiles` past the end zero).
    let store_v = |v: &mut [f32], c: usize, t: usize, vals: [[f32; 4]; 4]| {
        for (i, row) in vals.into_iter().enumerate() {
            for (j, x) in row.into_iter().enumerate() {
                v[(i * 4 + j) * vs + c * tp + t] = x;
            }
        }
    };
    for (c, xc) in xp.chunks_exact(plane).enumerate() {
        if tw % 4 == 0 {
            for ty in 0..th {
                for tx in (0..tw).step_by(4) {
                    let mut d = [[F4::splat(0.0); 4]; 4];
                    for (r, dr) in d.iter_mut().enumerate() {
                        let row = &xc[(2 * ty + r) * prow..][..prow];
                        for (col, at) in [tx, q + tx, tx + 1, q + tx + 1].into_iter().enumerate() {
                            let four = &row[at..at + 4];
                            // SAFETY: `four` holds four f32.
                            dr[col] = unsafe { F4::load(four.as_ptr()) };
                        }
                    }
                    let t = ty * tw + tx;
                    for (i, row) in input_transform(d).into_iter().enumerate() {
                        for (j, x) in row.into_iter().enumerate() {
                            let dst = &mut v[(i * 4 + j) * vs + c * tp + t..][..4];
                            // SAFETY: `dst` holds four f32.
                            unsafe { x.store(dst.as_mut_ptr()) }
                        }
                    }
                }
            }
        } else {
            for t in 0..tiles {
                let (ty, tx) = (t / tw, t % tw);
                let mut d = [[0.0f32; 4]; 4];
                for (r, dr) in d.iter_mut().enumerate() {
                    let row = &xc[(2 * ty + r) * prow..][..prow];
                    for (col, v) in dr.iter_mut().enumerate() {
                        *v = row[(col % 2) * q + tx + col / 2];
                    }
                }
                store_v(v, c, t, input_transform(d));
            }
        }
    }

    // The sixteen matrix products: `m[p] = u[p]ᵀ · v[p]`, `[cout', tp]` each.
    for p in 0..16 {
        let up = &u[p * cin * coutp..][..cin * coutp];
        let vp = &v[p * vs..][..cin * tp];
        let mp = &mut m[p * ms..][..coutp * tp];
        for cb in (0..coutp).step_by(4 * CV) {
            for tb in (0..tp).step_by(NT) {
                let mut acc = [[F4::splat(0.0); CV]; NT];
                for ci in 0..cin {
                    // SAFETY: `cb + 4 · CV ≤ coutp` and `tb + NT ≤ tp` (both multiples), so the
                    // reads stay within row `ci` of `up` and of `vp`.
                    let mut w = [F4::splat(0.0); CV];
                    for (k, wk) in w.iter_mut().enumerate() {
                        *wk = unsafe { F4::load(up.as_ptr().add(ci * coutp + cb + 4 * k)) };
                    }
                    for (n, an) in acc.iter_mut().enumerate() {
                        let d = unsafe { F4::load_splat(vp.as_ptr().add(ci * tp + tb + n)) };
                        for (a, &wk) in an.iter_mut().zip(&w) {
                            *a = a.mul_add(wk, d);
                        }
                    }
                }
                // acc[n][k]: channels cb + 4k … cb + 4k + 3 of tile tb + n; stored by channel.
                for k in 0..CV {
                    let by_tile = [acc[0][k], acc[1][k], acc[2][k], acc[3][k]];
                    for (l, tiles4) in F4::transpose(by_tile).into_iter().enumerate() {
                        let dst = &mut mp[(cb + 4 * k + l) * tp + tb..][..4];
                        // SAFETY: `dst` holds four f32.
                        unsafe { tiles4.store(dst.as_mut_ptr()) }
                    }
                }
            }
        }
    }

    // Aᵀ m A of every tile, the bias and what comes after.
    let mut out = vec![0.0f32; cout * h * w];
    let plane_out = h * w;
    let vector_out = h % 2 == 0 && w % 2 == 0 && tw % 4 == 0;
    let zero = F4::splat(0.0);
    for (co, dst) in out.chunks_exact_mut(plane_out).enumerate() {
        let mc = |p: usize| &m[p * ms + co * tp..][..tp];
        let residual = match after {
            After::AddRelu(r) => Some(&r[co * plane_out..][..plane_out]),
            _ => None,
        };
        if vector_out {
            let b = F4::splat(bias[co]);
            for t in (0..tiles).step_by(4) {
                let mut mm = [[F4::splat(0.0); 4]; 4];
                for (i, mi) in mm.iter_mut().enumerate() {
                    for (j, v) in mi.iter_mut().enumerate() {
                        let four = &mc(i * 4 + j)[t..t + 4];
                        // SAFETY: `four` holds four f32.
                        *v = unsafe { F4::load(four.as_ptr()) };
                    }
                }
                let (ty, tx) = (t / tw, t % tw);
                for (a, [y0, y1]) in output_transform(mm).into_iter().enumerate() {
                    let (lo, hi) = y0.add(b).zip(y1.add(b));
                    let at = (2 * ty + a) * w + 2 * tx;
                    for (half, y) in [lo, hi].into_iter().enumerate() {
                        let o = at + 4 * half;
                        let y = match (after, residual) {
                            (After::Nothing, _) => y,
                            (After::Relu, _) | (After::AddRelu(_), None) => y.max(zero),
                            (After::AddRelu(_), Some(r)) => {
                                let four = &r[o..o + 4];
                                // SAFETY: `four` holds four f32.
                                y.add(unsafe { F4::load(four.as_ptr()) }).max(zero)
                            }
                        };
                        let four = &mut dst[o..o + 4];
                        // SAFETY: `four` holds four f32.
                        unsafe { y.store(four.as_mut_ptr()) }
                    }
                }
            }
        } else {
            let b = bias[co];
            for t in 0..tiles {
                let mut mm = [[0.0f32; 4]; 4];
                for (i, mi) in mm.iter_mut().enumerate() {
                    for (j, v) in mi.iter_mut().enumerate() {
                        *v = mc(i * 4 + j)[t];
                    }
                }
                let (ty, tx) = (t / tw, t % tw);
                for (a, row) in output_transform(mm).into_iter().enumerate() {
                    for (bx, y) in row.into_iter().enumerate() {
                        let (oy, ox) = (2 * ty + a, 2 * tx + bx);
                        if oy < h && ox < w {
                            let o = oy * w + ox;
                            let y = y + b;
                            dst[o] = match (after, residual) {
                                (After::Nothing, _) => y,
                                (After::Relu, _) | (After::AddRelu(_), None) => max_nan(y, 0.0),
                                (After::AddRelu(_), Some(r)) => max_nan(y + r[o], 0.0),
                            };
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [−1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn winograd_computes_what_the_direct_convolution_does() {
        // Even sides with whole vectors of tiles, odd sides, a side under four tiles, one
        // pixel; channel counts that are and are not multiples of a block.
        let shapes = [
            (16, 32, 32, 16),
            (32, 16, 16, 32),
            (64, 8, 8, 64),
            (128, 4, 4, 128),
            (3, 7, 9, 5),
            (5, 5, 12, 9),
            (1, 1, 1, 1),
            (8, 2, 16, 12),
        ];
        for (i, &(cin, h, w, cout)) in shapes.iter().enumerate() {
            let s = ConvShape {
                cin,
                h,
                w,
                cout,
                pad: [1; 4],
            };
            let x = values(cin * h * w, 3 * i as u64 + 1);
            let weight = values(cout * cin * 9, 3 * i as u64 + 2);
            let bias = values(cout, 3 * i as u64 + 3);
            let residual = values(cout * h * w, 7);
            let u = winograd_weights(&weight, cout, cin);
            for after in [After::Nothing, After::Relu, After::AddRelu(&residual)] {
                let want = crate::conv2d(&x, &weight, &bias, s, 3, 1, after);
                let want = want.expect("the direct kernel has 3×3 at stride 1");
                let got = conv3x3_winograd(&x, &u, &bias, s, after);
                assert_eq!(got.len(), want.len());
                let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                for (k, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-5 * scale * (cin as f32).sqrt(),
                        "{cin}x{h}x{w}→{cout} {after:?} at {k}: {g} against {e}"
                    );
                }
            }
        }
    }
}
