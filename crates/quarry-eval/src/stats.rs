//! Paired significance testing and latency percentiles.
//!
//! The test is Fisher's paired randomisation test: under the null
//! hypothesis that two systems are interchangeable, each query's difference
//! is as likely to have the other sign, so we flip signs at random and see
//! how often the mean difference is at least as extreme as the observed one.
//! It makes no normality assumption (per-query nDCG is far from normal) and
//! it is the test IR evaluation papers use. The generator is seeded, so the
//! same two runs always give the same p-value.

/// Permutations drawn per test: p-values resolve to about 1e-4.
pub const PERMUTATIONS: usize = 10_000;
/// The fixed seed of every test.
pub const SEED: u64 = 0x005e_ed0f_9a77;

/// Mean difference `b - a` over paired values and its two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    pub mean_a: f64,
    pub mean_b: f64,
    pub delta: f64,
    pub p_value: f64,
    pub n: usize,
}

/// SplitMix64: tiny, fast and good enough for sign flips and benchmark
/// data; no dependency, and the same sequence from the same seed.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1), never 0 (so its logarithm is finite).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// Standard normal, by Box–Muller.
    pub fn gaussian(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// Paired randomisation test of `b` against `a` (same queries, same order).
pub fn randomization_test(a: &[f64], b: &[f64]) -> Paired {
    let n = a.len().min(b.len());
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let observed = mean(&diffs).abs();
    let mut rng = SplitMix(SEED);
    // A tolerance so that permutations equal to the observed value (up to
    // float summation order) count as "at least as extreme".
    let threshold = observed - 1e-12;
    let mut extreme = 0usize;
    if n > 0 && observed > 0.0 {
        for _ in 0..PERMUTATIONS {
            let mut sum = 0.0;
            let mut bits = 0u64;
            for (i, d) in diffs.iter().enumerate() {
                if i % 64 == 0 {
                    bits = rng.next_u64();
                }
                sum += if bits & 1 == 1 { *d } else { -*d };
                bits >>= 1;
            }
            if (sum / n as f64).abs() >= threshold {
                extreme += 1;
            }
        }
    }
    let p_value = if n == 0 || observed == 0.0 {
        1.0
    } else {
        (extreme + 1) as f64 / (PERMUTATIONS + 1) as f64
    };
    Paired {
        mean_a: mean(&a[..n]),
        mean_b: mean(&b[..n]),
        delta: mean(&diffs),
        p_value,
        n,
    }
}

/// The `q`-quantile (0..=1) of `values` by linear interpolation between
/// closest ranks; 0 for no values.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_systems_are_not_significantly_different() {
        let a = [0.1, 0.5, 0.9, 0.3];
        let t = randomization_test(&a, &a);
        assert_eq!(t.delta, 0.0);
        assert_eq!(t.p_value, 1.0);
    }

    #[test]
    fn a_consistent_improvement_is_significant_and_reproducible() {
        let a: Vec<f64> = (0..60).map(|i| (i % 7) as f64 / 10.0).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.1).collect();
        let t = randomization_test(&a, &b);
        assert!((t.delta - 0.1).abs() < 1e-9);
        assert!(t.p_value < 0.001, "{t:?}");
        assert_eq!(t, randomization_test(&a, &b));
    }

    #[test]
    fn a_noisy_difference_is_not_significant() {
        // Half the queries up, half down by nearly the same amount.
        let a: Vec<f64> = (0..40)
            .map(|i| if i % 2 == 0 { 0.2 } else { 0.8 })
            .collect();
        let b: Vec<f64> = (0..40)
            .map(|i| if i % 2 == 0 { 0.8 } else { 0.21 })
            .collect();
        let t = randomization_test(&a, &b);
        assert!(t.p_value > 0.5, "{t:?}");
    }

    #[test]
    fn percentiles_interpolate() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 4.0);
        assert!((percentile(&v, 0.5) - 2.5).abs() < 1e-12);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
