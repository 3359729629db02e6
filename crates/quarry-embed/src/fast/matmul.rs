//! How the encoder's matrix multiplies are shared out and measured, and
//! the portable `gemm` path for CPUs without the packed kernels.

use candle_transformers::models::bert::Config;
use gemm::Parallelism;
use rayon::prelude::*;

use super::{bf16, kernels, sgemm};

/// Raw pointer that may cross threads: each task writes a disjoint block.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: used only for writes to non-overlapping regions, joined before use.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// One head of one sequence: `qkv` holds the sequence's `len` rows of
/// `3h`, the head's Q, K and V at columns `off`, `h + off` and `2h + off`,
/// `dh` wide; scores are scaled by `scale`.
#[derive(Clone, Copy)]
pub(crate) struct Head<'a> {
    pub qkv: &'a [f32],
    pub len: usize,
    pub h: usize,
    pub off: usize,
    pub dh: usize,
    pub scale: f32,
}

/// Attention of one [`Head`], written to `ctx` (its `len` rows `ldc`
/// apart), as [`sgemm::head_attention`] documents.
pub(crate) type HeadAttention = unsafe fn(Head<'_>, *mut f32, usize);

/// `out[rows, n_out] += x[rows, n_in] · w[n_in, n_out]` with `gemm`, the
/// portable path.
pub(crate) fn gemm_add(
    x: &[f32],
    rows: usize,
    n_in: usize,
    w: &[f32],
    n_out: usize,
    out: &mut [f32],
) {
    assert!(x.len() == rows * n_in && w.len() == n_in * n_out && out.len() == rows * n_out);
    // Threads cost more than they save on a few rows (a single query).
    let par = match rayon::current_num_threads() {
        n if n > 1 && rows * n_in * n_out >= 1 << 21 => Parallelism::Rayon(n),
        _ => Parallelism::None,
    };
    // SAFETY: the slices hold exactly rows × n_in, n_in × n_out and
    // rows × n_out elements (asserted), matching the dimensions and
    // strides given.
    unsafe {
        gemm::gemm(
            rows,
            n_out,
            n_in,
            out.as_mut_ptr(),
            1,
            n_out as isize,
            true,
            x.as_ptr(),
            1,
            n_in as isize,
            w.as_ptr(),
            1,
            n_out as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Rows per parallel task of a packed multiply: each weight panel is
/// reused across a block's micro-tiles while it is in L2.
const MATMUL_ROWS: usize = 96;

/// Computes `out[rows, n_out]` panel by panel on every core, as
/// [`split_blocks`] shares it out. `panel(r0, r1, p, c)` computes rows
/// `r0..r1` of the 32 columns of weight panel `p`; `c` points at
/// `out[r0][32 · p]`, rows `n_out` apart, and no other call writes those
/// values.
pub(crate) fn split_product(
    rows: usize,
    k: usize,
    out: &mut [f32],
    n_out: usize,
    panel: impl Fn(usize, usize, usize, *mut f32) + Sync,
) {
    assert!(n_out.is_multiple_of(32) && out.len() == rows * n_out);
    let c = SendPtr(out.as_mut_ptr());
    split_blocks(rows, k, n_out, |r0, r1, p0, p1| {
        // The whole wrapper, not its raw field, so the closure is Send.
        #[allow(clippy::redundant_locals)]
        let c = c;
        for p in p0..p1 {
            // SAFETY: r0 < rows and p < n_out / 32, so the offset is in
            // `out` (asserted); blocks are disjoint.
            panel(r0, r1, p, unsafe { c.0.add(r0 * n_out + p * 32) });
        }
    });
}

/// Shares a product of `rows` rows, `k` deep, into `n_out / 32` column
/// panels out on every core: by blocks of rows, or, for a few rows (a
/// query), by panels, so each core streams its share of the weight.
/// `part(r0, r1, p0, p1)` computes rows `r0..r1` of panels `p0..p1`; no two
/// calls overlap.
pub(crate) fn split_blocks(
    rows: usize,
    k: usize,
    n_out: usize,
    part: impl Fn(usize, usize, usize, usize) + Sync,
) {
    let panels = n_out / 32;
    let threads = rayon::current_num_threads();
    if rows > MATMUL_ROWS && threads > 1 {
        (0..rows.div_ceil(MATMUL_ROWS))
            .into_par_iter()
            .for_each(|b| {
                part(
                    b * MATMUL_ROWS,
                    ((b + 1) * MATMUL_ROWS).min(rows),
                    0,
                    panels,
                )
            });
    } else if threads > 1 && panels > 1 && rows * k * n_out >= 1 << 18 {
        let per = panels.div_ceil(threads.min(panels));
        (0..panels.div_ceil(per))
            .into_par_iter()
            .for_each(|g| part(0, rows, g * per, ((g + 1) * per).min(panels)));
    } else {
        part(0, rows, 0, panels);
    }
}

/// [`HeadAttention`] with `gemm`, for any head size and CPU.
///
/// # Safety
/// `qkv` holds `len` rows of `3h`; `ctx` is valid for `dh` floats at each
/// of `len` row starts, `ldc` apart, and no one else writes them.
pub(crate) unsafe fn gemm_head_attention(head: Head<'_>, ctx: *mut f32, ldc: usize) {
    let Head { qkv, len, h, .. } = head;
    let Head { off, dh, scale, .. } = head;
    assert!(qkv.len() >= len * 3 * h && off + dh <= h);
    let mut scores = vec![0f32; len * len];
    let q = qkv[off..].as_ptr();
    let k = qkv[h + off..].as_ptr();
    let v = qkv[2 * h + off..].as_ptr();
    // SAFETY: every pointer addresses `len` rows of its matrix with the
    // strides given (asserted); `scores` is len × len; `ctx` is the
    // caller's contract.
    unsafe {
        // scores = scale · Q Kᵀ
        gemm::gemm(
            len,
            len,
            dh,
            scores.as_mut_ptr(),
            1,
            len as isize,
            false,
            q,
            1,
            (3 * h) as isize,
            k,
            (3 * h) as isize,
            1,
            0.0,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        );
        kernels::softmax_rows(&mut scores, len);
        // ctx = P V
        gemm::gemm(
            len,
            dh,
            len,
            ctx,
            1,
            ldc as isize,
            false,
            scores.as_ptr(),
            1,
            len as isize,
            v,
            1,
            (3 * h) as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// The product the peaks are measured on: a BERT-base down projection
/// (rows of 1,536 into 2,048 columns) over a large batch.
const PEAK_SHAPE: (usize, usize, usize) = (2048, 1536, 2048);

/// GFLOP/s of the best of four runs of `multiply`, a [`PEAK_SHAPE`] product.
fn best_gflops(mut multiply: impl FnMut()) -> f64 {
    let (m, k, n) = PEAK_SHAPE;
    let mut best = f64::MAX;
    for _ in 0..4 {
        let t = std::time::Instant::now();
        multiply();
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * n * k) as f64 / best / 1e9
}

/// The machine's f32 matrix-multiply throughput in GFLOP/s, measured with
/// the kernels and threads the encoder uses (the packed AVX-512 or AVX2
/// ones, or else `gemm`), on a multiply big enough to reach their peak.
pub fn matmul_peak_gflops() -> f64 {
    let (m, k, n) = PEAK_SHAPE;
    let x = vec![0.5f32; m * k];
    let w = vec![0.25f32; k * n];
    let mut out = vec![0f32; m * n];
    let peak = match sgemm::PackedF32::pack(&w, k, n) {
        Some(p) => best_gflops(|| sgemm::matmul_add(&x, m, &p, &mut out)),
        None => best_gflops(|| gemm_add(&x, m, k, &w, n, &mut out)),
    };
    std::hint::black_box(&out);
    peak
}

/// The same in bf16 (activation rounding included); `None` without
/// AVX-512 BF16.
pub fn matmul_peak_gflops_bf16() -> Option<f64> {
    if !bf16::supported() {
        return None;
    }
    let (m, k, n) = PEAK_SHAPE;
    let x = vec![0.5f32; m * k];
    let packed = bf16::PackedWeight::pack(&vec![0.25f32; k * n], k, n)?;
    let mut out = vec![0f32; m * n];
    let peak = best_gflops(|| bf16::matmul_add(&x, m, k, &packed, &mut out));
    std::hint::black_box(&out);
    Some(peak)
}

/// Floating-point operations of one forward pass over sequences of these
/// lengths: the dense layers per token plus attention per sequence.
pub(crate) fn encoder_flops(config: &Config, lengths: &[usize]) -> f64 {
    let (h, i) = (config.hidden_size as f64, config.intermediate_size as f64);
    let per_token = 2.0 * (h * 3.0 * h + h * h + 2.0 * h * i);
    let layers = config.num_hidden_layers as f64;
    lengths
        .iter()
        .map(|&l| {
            let l = l as f64;
            // Q Kᵀ and P V: 2 · l² · h each.
            layers * (per_token * l + 4.0 * l * l * h)
        })
        .sum()
}
