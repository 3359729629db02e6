//! Element-wise kernels of the encoder: residual + LayerNorm, softmax, and
//! the activations, each fused into one pass over its rows.
//!
//! They are written as plain loops over `f32` slices with branch-free math
//! (polynomial `exp` and `erf`, no libm calls) so LLVM vectorises them, and
//! each public function is compiled three times: for AVX-512, for AVX2+FMA,
//! and for the baseline target. The widest the CPU supports is picked at run
//! time, so one binary runs everywhere and is fast where it can be. The
//! baseline build is the scalar fallback; the tests compare all of them with
//! libm.

/// Defines `pub fn $name(args)` that dispatches to the widest instruction set
/// available at run time. The body is inlined into each variant, so it is
/// compiled with that variant's target features.
macro_rules! multiversion {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if super::kernels::level() >= 2 {
                    // SAFETY: the CPU supports AVX-512 (checked at run time).
                    return unsafe { avx512($($arg),*) };
                }
                if super::kernels::level() == 1 {
                    // SAFETY: the CPU supports AVX2 and FMA (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// 2 with AVX-512, 1 with AVX2+FMA, 0 otherwise. `QUARRY_SIMD=0|1|2` caps
/// it, so the narrower paths can be tested and benchmarked on any machine.
pub fn level() -> u8 {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<u8> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let detected = if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("fma")
        {
            2
        } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            1
        } else {
            0
        };
        #[cfg(not(target_arch = "x86_64"))]
        let detected = 0;
        let cap = std::env::var("QUARRY_SIMD")
            .ok()
            .and_then(|v| v.parse::<u8>().ok())
            .unwrap_or(u8::MAX);
        detected.min(cap)
    })
}

/// `exp` for `f32` to within 2 ulp on [-87, 88], branch-free: Cephes'
/// polynomial after reducing by powers of two.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.3, 88.3);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let n_int = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    y * f32::from_bits((n_int.wrapping_add(127) << 23) as u32)
}

/// `erf` for `f32`: a rational approximation on [-4, 4] (beyond which erf
/// is ±1 in single precision), with no branches and no division by zero.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_6e-3;
    p = p * x2 + -1.609_603_3e-2;
    let p = p * x;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_473_9e-2;
    p / q
}

/// Lanes of the reductions below. Float addition is not associative, so
/// LLVM keeps a plain `sum += x` loop scalar; sixteen independent partial
/// sums (one 512-bit register, two 256-bit ones) let it vectorise.
const LANES: usize = 16;

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ (x - mean)².
#[inline(always)]
fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for i in 0..LANES {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for i in 0..LANES {
            // Not f32::max: its NaN rules block vectorisation.
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

/// Runs `$body` on `$x` sixteen lanes at a time, with `$a` bound to a
/// `[f32; 16]`. LLVM would not vectorise the element loop around [`exp`]
/// and [`erf`] (their bit tricks and clamps defeat its cost model), but it
/// reliably turns fixed-size array loops into vector instructions. A macro,
/// not a closure: a closure is a separate function, compiled without the
/// caller's target features.
macro_rules! map16 {
    ($x:expr, |$a:ident| $body:block) => {{
        let x: &mut [f32] = $x;
        let mut chunks = x.chunks_exact_mut(LANES);
        for c in &mut chunks {
            let mut $a = [0f32; LANES];
            $a.copy_from_slice(c);
            $body
            c.copy_from_slice(&$a);
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let n = rest.len();
            let mut $a = [0f32; LANES];
            $a[..n].copy_from_slice(rest);
            $body
            rest.copy_from_slice(&$a[..n]);
        }
    }};
}

/// [`exp`] on sixteen lanes, step by step so each step is one vector op.
#[inline(always)]
fn exp16(x: &mut [f32; LANES]) {
    exp16_poly::<false>(x)
}

/// With `COARSE`, a degree-4 polynomial (relative error about 4e-5, far
/// below bf16's 4e-3 resolution) for values that are rounded to bf16 next.
#[inline(always)]
fn exp16_poly<const COARSE: bool>(x: &mut [f32; LANES]) {
    const MAGIC: f32 = 12_582_912.0;
    // One lane per iteration, whole: split into several loops over
    // temporary arrays, LLVM vectorised this with gathers and scatters.
    for v in x.iter_mut() {
        let c = v.clamp(-87.3, 88.3);
        let t = c * std::f32::consts::LOG2_E + MAGIC;
        let n = t - MAGIC;
        let r = c - n * 0.693_359_4 - n * -2.121_944_4e-4;
        let p = if COARSE {
            let mut p = 4.166_579_6e-2_f32;
            p = p * r + 1.666_666_5e-1;
            p * r + 0.5
        } else {
            let mut p = 1.987_569_1e-4_f32;
            p = p * r + 1.398_199_9e-3;
            p = p * r + 8.333_452e-3;
            p = p * r + 4.166_579_6e-2;
            p = p * r + 1.666_666_5e-1;
            p * r + 0.5
        };
        let y = p * r * r + r + 1.0;
        let e = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
        *v = y * f32::from_bits((e.wrapping_add(127) << 23) as u32);
    }
}

multiversion! {
    /// `x[i] = gelu(x[i])` with the exact (erf) GELU, as BERT defines it.
    pub fn gelu_erf(x: &mut [f32]) {
        map16!(x, |a| {
            for v in a.iter_mut() {
                *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
            }
        });
    }
}

multiversion! {
    /// The tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`).
    pub fn gelu_tanh(x: &mut [f32]) {
        for v in x.iter_mut() {
            let u = 0.797_884_6 * (*v + 0.044_715 * *v * *v * *v);
            // tanh(u) = 1 - 2 / (exp(2u) + 1)
            let t = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
            *v = 0.5 * *v * (1.0 + t);
        }
    }
}

multiversion! {
    pub fn relu(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = v.max(0.0);
        }
    }
}

/// Softmax of each row of `x` (rows of `width`), in place.
pub fn softmax_rows(x: &mut [f32], width: usize) {
    softmax_rows_strided(x, width, width)
}

multiversion! {
    /// Softmax of the first `width` values of each row of `stride`, in
    /// place; the rest of each row is left alone.
    pub fn softmax_rows_strided(x: &mut [f32], stride: usize, width: usize) {
        for row in x.chunks_exact_mut(stride) {
            let row = &mut row[..width];
            let m = max(row);
            map16!(row, |a| {
                for v in a.iter_mut() {
                    *v -= m;
                }
                exp16(&mut a);
            });
            let inv = 1.0 / sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

multiversion! {
    /// [`softmax_rows`] with a coarser `exp`, for probabilities that are
    /// rounded to bf16 right after.
    pub fn softmax_rows_coarse(x: &mut [f32], width: usize) {
        for row in x.chunks_exact_mut(width) {
            let m = max(row);
            map16!(row, |a| {
                for v in a.iter_mut() {
                    *v -= m;
                }
                exp16_poly::<true>(&mut a);
            });
            let inv = 1.0 / sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

multiversion! {
    /// `hidden[r] = LayerNorm(hidden[r] + delta[r])` for each row of `width`:
    /// the residual connection and the normalisation in one pass.
    pub fn add_layer_norm(
        hidden: &mut [f32],
        delta: &[f32],
        width: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) {
        for (h, d) in hidden.chunks_exact_mut(width).zip(delta.chunks_exact(width)) {
            for (a, b) in h.iter_mut().zip(d) {
                *a += *b;
            }
            let mean = sum(h) / width as f32;
            let var = sum_sq_dev(h, mean);
            let rstd = 1.0 / (var / width as f32 + eps).sqrt();
            for ((a, g), b) in h.iter_mut().zip(gamma).zip(beta) {
                *a = (*a - mean) * rstd * *g + *b;
            }
        }
    }
}

/// The bf16 bits of a finite `x`, rounded to nearest even, in the low 16
/// bits.
#[inline(always)]
pub fn bf16_bits(x: f32) -> u32 {
    let b = x.to_bits();
    b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16
}

multiversion! {
    /// `dst[i]` = the bf16 values of `src[2i]` (low half) and `src[2i + 1]`
    /// (high half), rounded to nearest even. Activations are finite, so NaN
    /// needs no special case here.
    pub fn to_bf16_pairs(src: &[f32], dst: &mut [u32]) {
        for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
            *d = bf16_bits(s[0]) | (bf16_bits(s[1]) << 16);
        }
    }
}

multiversion! {
    /// `dst[c]` = bf16 of `lo[c]` (low half) and `hi[c]` (high half): two
    /// rows interleaved into the pairs `vdpbf16ps` reads.
    pub fn interleave_bf16(lo: &[f32], hi: &[f32], dst: &mut [u32]) {
        for ((d, a), b) in dst.iter_mut().zip(lo).zip(hi) {
            *d = bf16_bits(*a) | (bf16_bits(*b) << 16);
        }
    }
}

multiversion! {
    /// `dst[i] = src[i] * k`.
    pub fn scale_into(src: &[f32], k: f32, dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s * k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_to_a_few_ulp() {
        let mut worst = 0.0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(-1000.0), (-87.3f32).exp().max(exp(-1000.0)));
        assert!(exp(f32::NEG_INFINITY) >= 0.0);
    }

    #[test]
    fn the_coarse_softmax_is_within_bf16_resolution() {
        let row: Vec<f32> = (0..300)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let (mut fine, mut coarse) = (row.clone(), row);
        softmax_rows(&mut fine, 300);
        softmax_rows_coarse(&mut coarse, 300);
        for (f, c) in fine.iter().zip(&coarse) {
            assert!((f - c).abs() <= f * 2e-4 + 1e-12, "{f} vs {c}");
        }
    }

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -6.0f64;
        while x < 6.0 {
            let got = f64::from(erf(x as f32));
            worst = worst.max((got - libm_erf(x)).abs());
            x += 0.001;
        }
        assert!(worst < 5e-7, "worst absolute error {worst}");
    }

    /// erf in f64 by its Taylor series (|x| < 3) or continued fraction: a
    /// reference that shares nothing with the kernel.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() >= 3.0 {
            // erfc continued fraction, Lentz-free fixed depth.
            let a = x.abs();
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = k as f64 / 2.0 / (a + f);
            }
            let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f);
            return x.signum() * (1.0 - erfc);
        }
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn softmax_and_layer_norm_are_right() {
        let mut rows = vec![1.0, 2.0, 3.0, 1000.0, 1000.0, -1000.0];
        softmax_rows(&mut rows, 3);
        let e = [1f32.exp(), 2f32.exp(), 3f32.exp()];
        let s: f32 = e.iter().sum();
        for i in 0..3 {
            assert!((rows[i] - e[i] / s).abs() < 1e-6);
        }
        assert!((rows[3] - 0.5).abs() < 1e-6 && rows[5] < 1e-30);

        let mut h = vec![1.0, 2.0, 3.0, 4.0];
        add_layer_norm(
            &mut h,
            &[1.0, 1.0, 1.0, 1.0],
            4,
            &[1.0; 4],
            &[0.5; 4],
            1e-12,
        );
        let want = [-1.341_640_8, -0.447_213_6, 0.447_213_6, 1.341_640_8];
        for (g, w) in h.iter().zip(want) {
            assert!((g - (w + 0.5)).abs() < 1e-5, "{h:?}");
        }
    }

    #[test]
    fn gelu_matches_its_definition() {
        let xs: Vec<f32> = (-400..400).map(|i| i as f32 / 50.0).collect();
        let mut g = xs.clone();
        gelu_erf(&mut g);
        for (x, y) in xs.iter().zip(&g) {
            let want = 0.5 * f64::from(*x) * (1.0 + libm_erf(f64::from(*x) / 2f64.sqrt()));
            assert!(
                (f64::from(*y) - want).abs() < 1e-6,
                "gelu({x}) = {y}, want {want}"
            );
        }
        let mut t = xs.clone();
        gelu_tanh(&mut t);
        for (x, y) in xs.iter().zip(&t) {
            let x = f64::from(*x);
            let want = 0.5 * x * (1.0 + (0.797_884_560_8 * (x + 0.044715 * x * x * x)).tanh());
            assert!(
                (f64::from(*y) - want).abs() < 1e-5,
                "gelu_tanh({x}) = {y}, want {want}"
            );
        }
    }
}
