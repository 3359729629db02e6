//! f32 matrix multiplies with AVX-512 or AVX2 FMA, over weights packed at
//! load.
//!
//! `gemm` (the crate Candle calls) is general: any strides, any shape, a
//! kernel chosen per call. On the encoder's shapes here it reaches about
//! half of what the cores can do, while PyTorch's f32 kernels reach nine
//! tenths. A dense layer's weight never changes, so this module packs it
//! once into 32-column panels (`[n_out / 32][n_in][32]`), the order a
//! micro-tile consumes it. With AVX-512 a tile is 12 rows × 32 columns: per
//! step two vector loads, twelve broadcasts and 24 FMAs into 24 register
//! accumulators. With AVX2 (16 registers) it is 6 rows × 16 columns, run
//! over each half of a panel. Activations are read in place, row-major; a
//! tile's rows stay in L1 while the panel streams from L2.
//!
//! The arithmetic is plain f32 FMA, so results differ from any other f32
//! kernel only by summation order. Without AVX2 and FMA the encoder keeps
//! `gemm`, which is the portable path.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
use super::matmul::Head;

/// Columns per packed panel: two 16-lane registers.
const NR: usize = 32;
/// Rows per micro-tile: 12 × 2 accumulators plus the two panel registers.
const MR: usize = 12;

/// Rows per AVX2 micro-tile: 6 × 2 accumulators, two panel registers and
/// a broadcast fill 15 of the 16 registers.
const MR2: usize = 6;

/// Whether these kernels can run (AVX2 and FMA at least, and
/// `QUARRY_SIMD` allows them).
pub fn supported() -> bool {
    super::kernels::level() >= 1
}

/// A weight `[n_in, n_out]` (row-major) packed as `[n_out / 32][n_in][32]`.
pub(crate) struct PackedF32 {
    n_in: usize,
    n_out: usize,
    data: Vec<f32>,
}

impl PackedF32 {
    /// `None` when `n_out` is not a multiple of 32 or the CPU lacks AVX2;
    /// the caller keeps `gemm` for that layer.
    pub(crate) fn pack(w: &[f32], n_in: usize, n_out: usize) -> Option<Self> {
        if !n_out.is_multiple_of(NR) || !supported() {
            return None;
        }
        let mut data = vec![0f32; n_in * n_out];
        for (p, panel) in data.chunks_exact_mut(n_in * NR).enumerate() {
            for (k, dst) in panel.chunks_exact_mut(NR).enumerate() {
                dst.copy_from_slice(&w[k * n_out + p * NR..][..NR]);
            }
        }
        Some(Self { n_in, n_out, data })
    }
}

/// `out[rows, n_out] += x[rows, n_in] · W`; `out` already holds the bias.
pub(crate) fn matmul_add(x: &[f32], rows: usize, w: &PackedF32, out: &mut [f32]) {
    let (k, n_out) = (w.n_in, w.n_out);
    assert!(supported(), "packed f32 kernels need AVX2 or AVX-512");
    assert_eq!(x.len(), rows * k);
    assert_eq!(out.len(), rows * n_out);
    super::split_product(rows, k, out, n_out, |r0, r1, p, c| {
        // SAFETY: the CPU check is above; rows r0..r1 of x and panel p are
        // in bounds by the asserts, and split_product hands out `c` for
        // those rows and columns alone.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            panel_product::<true>(
                x.as_ptr().add(r0 * k),
                k,
                r1 - r0,
                k,
                w.data.as_ptr().add(p * k * NR),
                c,
                n_out,
            )
        };
    });
}

/// Attention of one head of one sequence in f32:
/// `ctx[i][0..dh] = softmax(scale · Q Kᵀ) V`, with the same layout as
/// [`super::bf16::head_attention`]: `qkv` holds the sequence's `[len, 3h]`
/// rows, the head at columns `off`, `h + off` and `2h + off`.
///
/// # Safety
/// Only when [`supported`]; `dh` must be a multiple of 32, and `ctx` valid
/// for `dh` floats at each of `len` row starts, `ldc` apart.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn head_attention(head: Head<'_>, ctx: *mut f32, ldc: usize) {
    let Head { qkv, len, h, .. } = head;
    let Head { off, dh, scale, .. } = head;
    assert!(qkv.len() >= len * 3 * h && off + dh <= h && dh.is_multiple_of(NR));
    // Kᵀ (scaled) as panels of 32 keys, zero beyond `len`.
    let lp = len.div_ceil(NR) * NR;
    let mut kt = vec![0f32; lp * dh];
    for j in 0..len {
        let key = &qkv[j * 3 * h + h + off..][..dh];
        let (p, c) = (j / NR, j % NR);
        for (d, v) in key.iter().enumerate() {
            kt[(p * dh + d) * NR + c] = v * scale;
        }
    }
    let mut scores = vec![0f32; len * lp];
    for p in 0..lp / NR {
        // SAFETY: Q rows are 3h apart with dh values each; scores has len
        // rows of lp ≥ (p + 1) · 32 columns.
        unsafe {
            panel_product::<false>(
                qkv.as_ptr().add(off),
                3 * h,
                len,
                dh,
                kt.as_ptr().add(p * dh * NR),
                scores.as_mut_ptr().add(p * NR),
                lp,
            )
        };
    }
    super::kernels::softmax_rows_strided(&mut scores, lp, len);
    // V as dh / 32 panels of `len` rows.
    let mut v = vec![0f32; dh * len];
    for (p, panel) in v.chunks_exact_mut(len * NR).enumerate() {
        for (j, dst) in panel.chunks_exact_mut(NR).enumerate() {
            dst.copy_from_slice(&qkv[j * 3 * h + 2 * h + off + p * NR..][..NR]);
        }
    }
    for p in 0..dh / NR {
        // SAFETY: P rows are lp apart with len values each; ctx columns
        // p·32..p·32+32 < dh for every row, by this function's contract.
        unsafe {
            panel_product::<false>(
                scores.as_ptr(),
                lp,
                len,
                len,
                v.as_ptr().add(p * len * NR),
                ctx.add(p * NR),
                ldc,
            )
        };
    }
}

/// `c[r][0..32] (+)= Σ_k a[r][k] · panel[k][0..32]` for `rows` rows; `a`
/// rows `lda` apart, `c` rows `ldc` apart; on the widest kernel the CPU
/// (and `QUARRY_SIMD`) allows.
///
/// # Safety
/// Only when [`supported`]; `a` valid for `k` floats at each row start,
/// `panel` for `k × 32`, and `c` for 32 floats at each row start.
#[cfg(target_arch = "x86_64")]
unsafe fn panel_product<const ADD: bool>(
    a: *const f32,
    lda: usize,
    rows: usize,
    k: usize,
    panel: *const f32,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: the level is the CPU's, checked at run time; the rest is
    // this function's contract.
    unsafe {
        if super::kernels::level() >= 2 {
            panel_product_avx512::<ADD>(a, lda, rows, k, panel, c, ldc)
        } else {
            panel_product_avx2::<ADD>(a, lda, rows, k, panel, c, ldc)
        }
    }
}

/// [`panel_product`] in 12 × 32 tiles.
///
/// # Safety
/// AVX-512F must be available; otherwise as [`panel_product`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn panel_product_avx512<const ADD: bool>(
    a: *const f32,
    lda: usize,
    rows: usize,
    k: usize,
    panel: *const f32,
    c: *mut f32,
    ldc: usize,
) {
    let mut r = 0;
    while r < rows {
        let m = (rows - r).min(MR);
        // SAFETY: as this function's contract, for rows r..r+m.
        unsafe {
            let (a, c) = (a.add(r * lda), c.add(r * ldc));
            match m {
                12 => tile_avx512::<12, ADD>(a, lda, k, panel, c, ldc),
                11 => tile_avx512::<11, ADD>(a, lda, k, panel, c, ldc),
                10 => tile_avx512::<10, ADD>(a, lda, k, panel, c, ldc),
                9 => tile_avx512::<9, ADD>(a, lda, k, panel, c, ldc),
                8 => tile_avx512::<8, ADD>(a, lda, k, panel, c, ldc),
                7 => tile_avx512::<7, ADD>(a, lda, k, panel, c, ldc),
                6 => tile_avx512::<6, ADD>(a, lda, k, panel, c, ldc),
                5 => tile_avx512::<5, ADD>(a, lda, k, panel, c, ldc),
                4 => tile_avx512::<4, ADD>(a, lda, k, panel, c, ldc),
                3 => tile_avx512::<3, ADD>(a, lda, k, panel, c, ldc),
                2 => tile_avx512::<2, ADD>(a, lda, k, panel, c, ldc),
                _ => tile_avx512::<1, ADD>(a, lda, k, panel, c, ldc),
            }
        }
        r += m;
    }
}

/// One `M × 32` tile: `M × 2` accumulators, the panel streamed once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_avx512<const M: usize, const ADD: bool>(
    a: *const f32,
    lda: usize,
    k: usize,
    panel: *const f32,
    c: *mut f32,
    ldc: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; M];
    for kk in 0..k {
        // SAFETY: kk < k; the panel holds k × 32 values and each of the M
        // rows of `a` holds k.
        unsafe {
            let b0 = _mm512_loadu_ps(panel.add(kk * NR));
            let b1 = _mm512_loadu_ps(panel.add(kk * NR + 16));
            for (i, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(i * lda + kk));
                acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        // SAFETY: row i of the tile starts at i × ldc and has 32 columns.
        unsafe {
            let row = c.add(i * ldc);
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

/// [`panel_product`] in 6 × 16 tiles, over each half of the panel.
///
/// # Safety
/// AVX2 and FMA must be available; otherwise as [`panel_product`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn panel_product_avx2<const ADD: bool>(
    a: *const f32,
    lda: usize,
    rows: usize,
    k: usize,
    panel: *const f32,
    c: *mut f32,
    ldc: usize,
) {
    let mut r = 0;
    while r < rows {
        let m = (rows - r).min(MR2);
        // SAFETY: as this function's contract, for rows r..r+m and
        // columns half·16..half·16+16.
        unsafe {
            let (a, c) = (a.add(r * lda), c.add(r * ldc));
            for half in [0, 16] {
                let (p, c) = (panel.add(half), c.add(half));
                match m {
                    6 => tile_avx2::<6, ADD>(a, lda, k, p, c, ldc),
                    5 => tile_avx2::<5, ADD>(a, lda, k, p, c, ldc),
                    4 => tile_avx2::<4, ADD>(a, lda, k, p, c, ldc),
                    3 => tile_avx2::<3, ADD>(a, lda, k, p, c, ldc),
                    2 => tile_avx2::<2, ADD>(a, lda, k, p, c, ldc),
                    _ => tile_avx2::<1, ADD>(a, lda, k, p, c, ldc),
                }
            }
        }
        r += m;
    }
}

/// One `M × 16` tile of a panel whose rows are 32 apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_avx2<const M: usize, const ADD: bool>(
    a: *const f32,
    lda: usize,
    k: usize,
    panel: *const f32,
    c: *mut f32,
    ldc: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; M];
    for kk in 0..k {
        // SAFETY: kk < k; the panel holds k rows of 32 values, and each of
        // the M rows of `a` holds k.
        unsafe {
            let b0 = _mm256_loadu_ps(panel.add(kk * NR));
            let b1 = _mm256_loadu_ps(panel.add(kk * NR + 8));
            for (i, acc) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*a.add(i * lda + kk));
                acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        // SAFETY: row i of the tile starts at i × ldc and has 16 columns.
        unsafe {
            let row = c.add(i * ldc);
            if ADD {
                _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), acc[0]));
                _mm256_storeu_ps(
                    row.add(8),
                    _mm256_add_ps(_mm256_loadu_ps(row.add(8)), acc[1]),
                );
            } else {
                _mm256_storeu_ps(row, acc[0]);
                _mm256_storeu_ps(row.add(8), acc[1]);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn matches_an_f64_reference_to_f32_rounding() {
        if !supported() {
            quarry_core::skip_test("this CPU has no AVX2");
            return;
        }
        // A remainder tile, the few-rows column split, several row blocks.
        for &(rows, n_in, n_out) in &[(1, 7, 32), (13, 384, 64), (203, 385, 96), (5, 384, 1152)] {
            let x: Vec<f32> = (0..rows * n_in)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w: Vec<f32> = (0..n_in * n_out)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 40.0)
                .collect();
            let bias: Vec<f32> = (0..n_out).map(|i| i as f32 / 10.0).collect();
            let packed = PackedF32::pack(&w, n_in, n_out).unwrap();
            let mut out: Vec<f32> = bias.repeat(rows);
            matmul_add(&x, rows, &packed, &mut out);
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
                        (got - exact).abs() <= scale * 1e-6 + 1e-6,
                        "{rows}x{n_in}x{n_out} at ({r},{c}): {got} vs {exact}"
                    );
                }
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn each_instruction_set_matches_an_f64_reference() {
        // Strided rows and remainder tiles for both kernels, whichever
        // level this process picked.
        let (rows, k, lda, ldc) = (17, 45, 48, 40);
        let a: Vec<f32> = (0..rows * lda)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let panel: Vec<f32> = (0..k * NR)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 40.0)
            .collect();
        type Kernel = unsafe fn(*const f32, usize, usize, usize, *const f32, *mut f32, usize);
        let mut kernels: Vec<(&str, Kernel)> = Vec::new();
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            kernels.push(("avx2", panel_product_avx2::<true>));
        }
        if is_x86_feature_detected!("avx512f") {
            kernels.push(("avx512", panel_product_avx512::<true>));
        }
        for (name, kernel) in kernels {
            let mut c = vec![1.0f32; rows * ldc];
            // SAFETY: the CPU has the kernel's features (checked above); a
            // has rows × lda ≥ k per row, panel k × 32, c rows × ldc ≥ 32.
            unsafe {
                kernel(
                    a.as_ptr(),
                    lda,
                    rows,
                    k,
                    panel.as_ptr(),
                    c.as_mut_ptr(),
                    ldc,
                )
            };
            for r in 0..rows {
                for j in 0..ldc {
                    let want = 1.0
                        + if j < NR {
                            (0..k)
                                .map(|kk| {
                                    f64::from(a[r * lda + kk]) * f64::from(panel[kk * NR + j])
                                })
                                .sum::<f64>()
                        } else {
                            0.0
                        };
                    let got = f64::from(c[r * ldc + j]);
                    assert!(
                        (got - want).abs() < 1e-4,
                        "{name} ({r},{j}): {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn head_attention_matches_an_f64_reference() {
        if !supported() {
            quarry_core::skip_test("this CPU has no AVX2");
            return;
        }
        let (h, dh, off) = (96, 32, 32);
        for len in [1, 31, 33, 70] {
            let qkv: Vec<f32> = (0..len * 3 * h)
                .map(|i| ((i * 29 % 83) as f32 - 41.0) / 30.0)
                .collect();
            let mut ctx = vec![f32::NAN; len * h];
            let scale = 1.0 / (dh as f32).sqrt();
            // SAFETY: the CPU check is above; ctx has len rows of h ≥ off + dh.
            let head = Head {
                qkv: &qkv,
                len,
                h,
                off,
                dh,
                scale,
            };
            unsafe { head_attention(head, ctx.as_mut_ptr().add(off), h) };
            let want = attention_reference(head);
            for i in 0..len {
                for d in 0..dh {
                    let got = f64::from(ctx[i * h + off + d]);
                    let want = want[i * dh + d];
                    assert!(
                        (got - want).abs() < 1e-5,
                        "len {len} ({i},{d}): {got} vs {want}"
                    );
                }
            }
        }
    }

    /// `softmax(scale · Q Kᵀ) V` of one head in f64, `[len, dh]` row-major.
    pub(crate) fn attention_reference(head: Head<'_>) -> Vec<f64> {
        let Head {
            qkv,
            len,
            h,
            off,
            dh,
            scale,
        } = head;
        let at = |i: usize, j: usize| f64::from(qkv[i * 3 * h + j]);
        let mut out = Vec::with_capacity(len * dh);
        for i in 0..len {
            let s: Vec<f64> = (0..len)
                .map(|j| {
                    (0..dh)
                        .map(|d| at(i, off + d) * at(j, h + off + d))
                        .sum::<f64>()
                })
                .map(|s| s * f64::from(scale))
                .collect();
            let m = s.iter().copied().fold(f64::MIN, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..dh {
                out.push((0..len).map(|j| e[j] / z * at(j, 2 * h + off + d)).sum());
            }
        }
        out
    }
}
