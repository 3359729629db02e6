//! bf16 dense layers with AVX-512 BF16 (`vdpbf16ps`).
//!
//! `vdpbf16ps` multiplies pairs of bf16 values and accumulates into f32:
//! twice the multiply-adds of an f32 FMA per instruction, with f32
//! accumulation, so the only rounding is of the inputs (8 bits of mantissa).
//! Weights are converted and packed once at load into 32-column panels of
//! k-pairs, the order the instruction consumes them; activations are
//! rounded to bf16 pairs per multiply (a cheap, vectorised pass).
//!
//! Where the CPU has AMX, [`amx`](super::amx) runs the same packed
//! operands on tiles instead, for every width that is whole tiles.
//!
//! There is no scalar version of this kernel: on CPUs without AVX-512 BF16
//! the encoder keeps its f32 path, which is the portable fallback.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::matmul::Head;

/// Columns per packed panel: two 16-lane registers.
const NR: usize = 32;
/// Rows per micro-tile: 12 × 2 accumulators plus the two panel registers.
const MR: usize = 12;

/// Whether this CPU can run the bf16 kernels.
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// f32 → bf16 with round-to-nearest-even (NaN stays NaN).
#[inline(always)]
fn to_bf16(x: f32) -> u16 {
    if x.is_nan() {
        return ((x.to_bits() >> 16) | 0x40) as u16;
    }
    super::kernels::bf16_bits(x) as u16
}

/// A weight `[n_in, n_out]` (row-major, as the f32 path stores it) packed as
/// `[n_out / 32][ceil(n_in / 2)][32]` pairs of bf16 in a `u32`.
pub(crate) struct PackedWeight {
    pairs: usize,
    n_out: usize,
    data: Vec<u32>,
}

impl PackedWeight {
    /// `None` when `n_out` is not a multiple of 32 (no BERT-family model
    /// has such a layer; the f32 path handles it).
    pub(crate) fn pack(w: &[f32], n_in: usize, n_out: usize) -> Option<Self> {
        if !n_out.is_multiple_of(NR) {
            return None;
        }
        let pairs = n_in.div_ceil(2);
        let mut data = vec![0u32; n_out * pairs];
        let get = |k: usize, c: usize| {
            if k < n_in {
                to_bf16(w[k * n_out + c])
            } else {
                0
            }
        };
        for p in 0..n_out / NR {
            for kk in 0..pairs {
                for c in 0..NR {
                    let col = p * NR + c;
                    let lo = u32::from(get(2 * kk, col));
                    let hi = u32::from(get(2 * kk + 1, col));
                    data[(p * pairs + kk) * NR + c] = lo | (hi << 16);
                }
            }
        }
        Some(Self { pairs, n_out, data })
    }
}

/// `dst[i]` = bf16 of `src[2i]` (low half) and `src[2i + 1]` (high half),
/// rounded to nearest even: a bf16 array in `src`'s order, which
/// `vcvtneps2bf16` writes sixteen at a time. (It treats denormal inputs as
/// zero, which activations never are in any way that matters.)
fn to_pairs(src: &[f32], dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if supported() {
        // SAFETY: the CPU has AVX-512 BF16 (checked).
        unsafe { to_pairs_native(src, dst) };
        return;
    }
    super::kernels::to_bf16_pairs(src, dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn to_pairs_native(src: &[f32], dst: &mut [u32]) {
    let n = dst.len().min(src.len() / 2);
    let whole = n / 8 * 8;
    for i in (0..whole).step_by(8) {
        // SAFETY: 16 floats from 2i and 8 pairs from i are in bounds
        // (i + 8 ≤ n).
        unsafe {
            let v = _mm512_loadu_ps(src.as_ptr().add(2 * i));
            let b: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
            _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), b);
        }
    }
    super::kernels::to_bf16_pairs(&src[2 * whole..2 * n], &mut dst[whole..n]);
}

/// Rows of `x` (`[rows, n_in]` f32) as bf16 pairs, `[rows, pairs]`.
fn pack_rows(x: &[f32], rows: usize, n_in: usize, pairs: usize) -> Vec<u32> {
    let mut out = vec![0u32; rows * pairs];
    if n_in.is_multiple_of(2) {
        // Even rows: the matrix is one flat run of pairs.
        out.par_chunks_mut(8192)
            .zip(x.par_chunks(16384))
            .for_each(|(d, s)| to_pairs(s, d));
        return out;
    }
    out.par_chunks_mut(pairs.max(1) * 64)
        .zip(x.par_chunks(n_in * 64))
        .for_each(|(dst, src)| {
            for (d, s) in dst.chunks_exact_mut(pairs).zip(src.chunks_exact(n_in)) {
                for (kk, v) in d.iter_mut().enumerate() {
                    let lo = u32::from(to_bf16(s[2 * kk]));
                    let hi = s.get(2 * kk + 1).map_or(0, |&h| u32::from(to_bf16(h)));
                    *v = lo | (hi << 16);
                }
            }
        });
    out
}

/// Whether [`matmul_add`] runs this weight on AMX tiles rather than
/// `vdpbf16ps`.
pub(crate) fn uses_amx(w: &PackedWeight) -> bool {
    super::amx::covers(w.pairs)
}

/// `out[rows, n_out] += x[rows, n_in] · W` in bf16 with f32 accumulation.
/// `out` already holds the bias. Call only when [`supported`].
pub(crate) fn matmul_add(x: &[f32], rows: usize, n_in: usize, w: &PackedWeight, out: &mut [f32]) {
    assert!(supported(), "bf16 kernels need AVX-512 BF16");
    assert_eq!(x.len(), rows * n_in);
    assert_eq!(out.len(), rows * w.n_out);
    let a = pack_rows(x, rows, n_in, w.pairs);
    if uses_amx(w) {
        super::amx::matmul_add(&a, rows, w.pairs, &w.data, out);
        return;
    }
    let (pairs, n_out) = (w.pairs, w.n_out);
    super::split_product(rows, n_in, out, n_out, |r0, r1, p, c| {
        // SAFETY: supported() checked the CPU; rows r0..r1 of `a` and panel
        // p are in bounds (asserted above), and split_product hands out
        // `c` for those rows and columns alone.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            panel_product::<true>(
                &a[r0 * pairs..r1 * pairs],
                r1 - r0,
                pairs,
                &w.data[p * pairs * NR..(p + 1) * pairs * NR],
                c,
                n_out,
            )
        };
    });
}

/// `c[r][0..32] += Σ_kk a[r][kk] · panel[kk][0..32]` (bf16 pairs, f32
/// sums) for `rows` rows, `c` rows `ldc` apart.
///
/// # Safety
/// AVX-512 BF16 must be available; `a` holds `rows × pairs` pairs,
/// `panel` `pairs × 32`, and `c` is valid for 32 floats at each of the
/// `rows` row starts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn panel_product<const ADD: bool>(
    a: &[u32],
    rows: usize,
    pairs: usize,
    panel: &[u32],
    c: *mut f32,
    ldc: usize,
) {
    let mut r = 0;
    while r < rows {
        let m = (rows - r).min(MR);
        let a_rows = &a[r * pairs..(r + m) * pairs];
        // SAFETY: as this function's contract, for rows r..r+m.
        unsafe {
            let c = c.add(r * ldc);
            match m {
                12 => tile::<12, ADD>(a_rows, pairs, panel, c, ldc),
                11 => tile::<11, ADD>(a_rows, pairs, panel, c, ldc),
                10 => tile::<10, ADD>(a_rows, pairs, panel, c, ldc),
                9 => tile::<9, ADD>(a_rows, pairs, panel, c, ldc),
                8 => tile::<8, ADD>(a_rows, pairs, panel, c, ldc),
                7 => tile::<7, ADD>(a_rows, pairs, panel, c, ldc),
                6 => tile::<6, ADD>(a_rows, pairs, panel, c, ldc),
                5 => tile::<5, ADD>(a_rows, pairs, panel, c, ldc),
                4 => tile::<4, ADD>(a_rows, pairs, panel, c, ldc),
                3 => tile::<3, ADD>(a_rows, pairs, panel, c, ldc),
                2 => tile::<2, ADD>(a_rows, pairs, panel, c, ldc),
                _ => tile::<1, ADD>(a_rows, pairs, panel, c, ldc),
            }
        }
        r += m;
    }
}

/// Attention of one head of one sequence in bf16 with f32 accumulation
/// and an f32 softmax: `ctx[i][0..dh] = softmax(scale · Q Kᵀ) V`.
///
/// `qkv` holds the sequence's rows (`[len, 3h]`), the head's Q, K and V at
/// columns `off`, `h + off` and `2h + off`; `ctx` points at the head's
/// first output value, rows `ldc` apart, and is overwritten.
///
/// # Safety
/// Only when [`supported`]; `dh` must be a multiple of 32, and `ctx` valid
/// for `dh` floats at each of `len` row starts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(crate) unsafe fn head_attention(head: Head<'_>, ctx: *mut f32, ldc: usize) {
    let Head { qkv, len, h, .. } = head;
    let Head { off, dh, scale, .. } = head;
    use super::kernels::{interleave_bf16, scale_into, softmax_rows_coarse};
    let row = |i: usize| &qkv[i * 3 * h..(i + 1) * 3 * h];
    let dp = dh / 2;
    // On AMX, P V runs on tiles too, whose k-steps are 16 key pairs: the
    // probabilities and V are padded with zeros to a whole step.
    let amx = super::amx::covers(dp);
    // Q (scaled) as pairs; K as panels of 32 keys, zero beyond `len`.
    let mut q = vec![0u32; len * dp];
    let mut tmp = vec![0f32; dh];
    let mut pairs = vec![0u32; dp];
    for i in 0..len {
        scale_into(&row(i)[off..off + dh], scale, &mut tmp);
        to_pairs(&tmp, &mut q[i * dp..(i + 1) * dp]);
    }
    let lp = len.div_ceil(NR) * NR;
    let mut k = vec![0u32; lp * dp];
    for j in 0..len {
        to_pairs(&row(j)[h + off..h + off + dh], &mut pairs);
        let (p, c) = (j / NR, j % NR);
        for (kk, v) in pairs.iter().enumerate() {
            k[(p * dp + kk) * NR + c] = *v;
        }
    }
    let mut scores = vec![0f32; len * lp];
    // SAFETY: scores has len rows of lp columns, lp / 32 panels of K; the
    // AMX product adds onto the zeros.
    unsafe {
        if amx {
            super::amx::product_serial(&q, len, dp, &k, scores.as_mut_ptr(), lp);
        } else {
            for p in 0..lp / NR {
                panel_product::<false>(
                    &q,
                    len,
                    dp,
                    &k[p * dp * NR..(p + 1) * dp * NR],
                    scores.as_mut_ptr().add(p * NR),
                    lp,
                );
            }
        }
    }
    // P as pairs of keys (the row's padding columns are zero); V as
    // dh / 32 panels of key pairs.
    let kp = if amx { lp / 2 } else { len.div_ceil(2) };
    let mut probs = vec![0u32; len * kp];
    for i in 0..len {
        let s = &mut scores[i * lp..(i + 1) * lp];
        softmax_rows_coarse(&mut s[..len], len);
        s[len..].fill(0.0);
        to_pairs(&s[..2 * kp], &mut probs[i * kp..(i + 1) * kp]);
    }
    let zeros = vec![0f32; dh];
    let mut v = vec![0u32; dh * kp];
    let mut inter = vec![0u32; dh];
    let value = |i: usize| {
        if i < len {
            &row(i)[2 * h + off..2 * h + off + dh]
        } else {
            &zeros[..]
        }
    };
    for kk in 0..kp.min(len.div_ceil(2)) {
        interleave_bf16(value(2 * kk), value(2 * kk + 1), &mut inter);
        for p in 0..dh / NR {
            v[(p * kp + kk) * NR..(p * kp + kk + 1) * NR]
                .copy_from_slice(&inter[p * NR..(p + 1) * NR]);
        }
    }
    if amx {
        // SAFETY: the caller's contract on `ctx` (len rows of dh floats,
        // ldc apart); the product adds onto the zeros written first.
        unsafe {
            for i in 0..len {
                std::ptr::write_bytes(ctx.add(i * ldc), 0, dh);
            }
            super::amx::product_serial(&probs, len, kp, &v, ctx, ldc);
        }
        return;
    }
    for p in 0..dh / NR {
        // SAFETY: as above, columns p·32..p·32+32 < dh.
        unsafe {
            panel_product::<false>(
                &probs,
                len,
                kp,
                &v[p * kp * NR..(p + 1) * kp * NR],
                ctx.add(p * NR),
                ldc,
            )
        };
    }
}

/// One `M × 32` tile: `M × 2` accumulators, the panel streamed once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn tile<const M: usize, const ADD: bool>(
    a: &[u32],
    pairs: usize,
    panel: &[u32],
    c: *mut f32,
    ldc: usize,
) {
    debug_assert!(a.len() >= M * pairs && panel.len() >= pairs * NR);
    let mut acc = [[_mm512_setzero_ps(); 2]; M];
    let (ap, bp) = (a.as_ptr(), panel.as_ptr());
    for kk in 0..pairs {
        // SAFETY: kk < pairs, and the panel holds pairs × 32 values.
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_si512(bp.add(kk * NR).cast()),
                _mm512_loadu_si512(bp.add(kk * NR + 16).cast()),
            )
        };
        let (b0, b1) = (cast_bh(b0), cast_bh(b1));
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: row i < M, pair kk < pairs.
            let av = unsafe { *ap.add(i * pairs + kk) };
            let av = cast_bh(_mm512_set1_epi32(av as i32));
            acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
            acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
        }
    }
    let cp = c;
    for (i, acc) in acc.iter().enumerate() {
        // SAFETY: row i of the tile starts at i × ldc and has 32 columns.
        unsafe {
            let row = cp.add(i * ldc);
            if ADD {
                _mm512_storeu_ps(row, _mm512_add_ps(_mm512_loadu_ps(row), acc[0]));
                _mm512_storeu_ps(
                    row.add(16),
                    _mm512_add_ps(_mm512_loadu_ps(row.add(16)), acc[1]),
                );
            } else {
                _mm512_storeu_ps(row, acc[0]);
                _mm512_storeu_ps(row.add(16), acc[1]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn cast_bh(v: __m512i) -> __m512bh {
    // SAFETY: both are 512 bits of plain data.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn matches_an_f64_reference_within_bf16_rounding() {
        if !supported() {
            quarry_core::skip_test("this CPU has no AVX-512 BF16");
            return;
        }
        // Odd sizes: a remainder tile, an odd k, several panels and blocks.
        for &(rows, n_in, n_out) in &[(1, 7, 32), (13, 384, 64), (203, 385, 96)] {
            assert_matmul_matches_f64(rows, n_in, n_out, |_| {});
        }
    }

    /// Runs [`matmul_add`] on deterministic inputs of this shape (calling
    /// `check_packed` on the packed weight first) and holds every output
    /// to an f64 reference: two inputs rounded to 8 mantissa bits put each
    /// product within 2^-8 of exact, relative.
    pub(crate) fn assert_matmul_matches_f64(
        rows: usize,
        n_in: usize,
        n_out: usize,
        check_packed: impl Fn(&PackedWeight),
    ) {
        let x: Vec<f32> = (0..rows * n_in)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let w: Vec<f32> = (0..n_in * n_out)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 40.0)
            .collect();
        let bias: Vec<f32> = (0..n_out).map(|i| i as f32 / 10.0).collect();
        let packed = PackedWeight::pack(&w, n_in, n_out).unwrap();
        check_packed(&packed);
        let mut out: Vec<f32> = bias.repeat(rows);
        matmul_add(&x, rows, n_in, &packed, &mut out);
        for r in 0..rows {
            for c in 0..n_out {
                let mut exact = f64::from(bias[c]);
                let mut scale = 0.0f64;
                for k in 0..n_in {
                    let p = f64::from(x[r * n_in + k]) * f64::from(w[k * n_out + c]);
                    exact += p;
                    scale += p.abs();
                }
                let got = f64::from(out[r * n_out + c]);
                assert!(
                    (got - exact).abs() <= scale * 2f64.powi(-8) + 1e-4,
                    "{rows}x{n_in}x{n_out} at ({r},{c}): {got} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn head_attention_matches_an_f64_reference_within_bf16_rounding() {
        if !supported() {
            quarry_core::skip_test("this CPU has no AVX-512 BF16");
            return;
        }
        // On AMX CPUs this is the tile path (lengths with every kind of
        // tail; two panels and two k-steps at dh 64), elsewhere vdpbf16ps.
        for (h, dh, off) in [(96, 32, 32), (128, 64, 64)] {
            for len in [1, 5, 17, 33, 70] {
                let qkv: Vec<f32> = (0..len * 3 * h)
                    .map(|i| ((i * 29 % 83) as f32 - 41.0) / 30.0)
                    .collect();
                let mut ctx = vec![f32::NAN; len * h];
                let scale = 1.0 / (dh as f32).sqrt();
                let head = Head {
                    qkv: &qkv,
                    len,
                    h,
                    off,
                    dh,
                    scale,
                };
                // SAFETY: the CPU check is above; ctx has len rows of h ≥ off + dh.
                unsafe { head_attention(head, ctx.as_mut_ptr().add(off), h) };
                let want = super::super::sgemm::tests::attention_reference(head);
                for i in 0..len {
                    for d in 0..dh {
                        let got = f64::from(ctx[i * h + off + d]);
                        // Q, K, P and V each rounded to 8 mantissa bits,
                        // on values up to 1.4 in size.
                        let want = want[i * dh + d];
                        assert!(
                            (got - want).abs() < 0.05,
                            "dh {dh} len {len} ({i},{d}): {got} vs {want}"
                        );
                    }
                }
                // The columns of the other heads are untouched.
                assert!(
                    ctx.iter()
                        .enumerate()
                        .all(|(i, v)| (i % h >= off && i % h < off + dh) != v.is_nan())
                );
            }
        }
    }

    #[test]
    fn the_vectorised_pair_packing_matches_the_scalar_one() {
        let x: Vec<f32> = (0..4096).map(|i| (i as f32 * 0.731).sin() * 3.0).collect();
        let fast = pack_rows(&x, 8, 512, 256);
        let mut slow = vec![0u32; fast.len()];
        for (i, v) in slow.iter_mut().enumerate() {
            *v = u32::from(to_bf16(x[2 * i])) | (u32::from(to_bf16(x[2 * i + 1])) << 16);
        }
        assert_eq!(fast, slow);
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80); // tie → even
        assert_eq!(to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82); // tie → even
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert!(f32::from_bits(u32::from(to_bf16(f32::NAN)) << 16).is_nan());
    }
}
