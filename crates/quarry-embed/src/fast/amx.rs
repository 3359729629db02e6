//! bf16 dense layers on AMX tiles (`tdpbf16ps`), for CPUs that have them
//! (Intel Sapphire Rapids and later).
//!
//! An AMX tile is a 16-row × 64-byte register; `tdpbf16ps` multiplies a
//! 16 × 32 bf16 tile by a 16 (pairs) × 16 tile of bf16 pairs and
//! accumulates a 16 × 16 f32 tile, 8,192 multiply-adds in one instruction,
//! sixteen times what `vdpbf16ps` does. The operands are the ones
//! [`bf16`](super::bf16) already packs: weights as 32-column panels of
//! k-pairs (exactly the layout `tdpbf16ps` wants for its second operand),
//! activations as rows of pairs. So this module adds no packing of its own,
//! only the multiply, and the `vdpbf16ps` kernel stays the fallback for
//! shapes it does not cover and for CPUs without AMX.
//!
//! Each block of 32 rows × 32 columns keeps four accumulator tiles
//! (`tmm0..3`), two activation tiles and two weight tiles, the whole
//! k-loop in one `asm!` block: Rust has no stable AMX intrinsics, and tile
//! registers are declared as clobbers, so no tile state is assumed across
//! blocks. The output's bias is loaded into the accumulators first, so the
//! epilogue is one tile store.
//!
//! Linux hands out tile state only on request (`arch_prctl`
//! `ARCH_REQ_XCOMP_PERM`, once per process); [`supported`] makes it and
//! falls back when the kernel refuses. `QUARRY_AMX=0` turns the path off, to
//! measure the `vdpbf16ps` one on the same machine.

#[cfg(target_arch = "x86_64")]
use std::arch::asm;
use std::sync::OnceLock;

use super::SendPtr;

/// Pairs of bf16 per activation tile row (64 bytes).
const KP: usize = 16;
/// Columns per weight panel, as [`bf16`](super::bf16) packs them.
const NR: usize = 32;

/// Whether this CPU and OS run AMX bf16 tiles (checked, and the tile state
/// requested, once).
pub fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        std::env::var("QUARRY_AMX").map_or(true, |v| v != "0") && detect_and_request()
    })
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect_and_request() -> bool {
    // CPUID.(EAX=7, ECX=0):EDX bit 22 is AMX-BF16, bit 24 AMX-TILE. (Rust's
    // feature detection for AMX is not stable yet.)
    let leaf = std::arch::x86_64::__cpuid_count(7, 0);
    if (leaf.edx >> 22) & 1 == 0 || (leaf.edx >> 24) & 1 == 0 {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with this request only changes which extended
    // states the process may use; it reads no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    r == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect_and_request() -> bool {
    false
}

/// Whether a multiply of `pairs` k-pairs can run here: whole activation
/// tiles only (every BERT-family width is a multiple of 32).
pub(crate) fn covers(pairs: usize) -> bool {
    pairs.is_multiple_of(KP) && pairs > 0 && supported()
}

/// The 64-byte operand of `ldtilecfg`: palette 1, then bytes per row and
/// rows of each of the eight tiles.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    /// Tiles for a block of `m0` + `m1` rows (`m0` ≤ 16, `m1` ≤ 16, the
    /// second row-tile unused when `m1` is 0): accumulators 0, 1 (rows
    /// 0..m0) and 2, 3 (the rest), activations 4 and 5, weights 6 and 7.
    fn block(m0: usize, m1: usize) -> Self {
        let mut cfg = Self {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        let mut set = |t: usize, rows: usize| {
            cfg.colsb[t] = 64;
            cfg.rows[t] = rows as u8;
        };
        for t in [0, 1, 4] {
            set(t, m0);
        }
        if m1 > 0 {
            for t in [2, 3, 5] {
                set(t, m1);
            }
        }
        set(6, KP);
        set(7, KP);
        cfg
    }
}

/// `out[rows, n_out] += a[rows, pairs] · W`, with `a` the activations as
/// bf16 pairs and `panels` the weight as [`bf16`](super::bf16) packs it
/// (`n_out / 32` panels of `pairs × 32` pairs). Call only when
/// [`covers`]`(pairs)`.
pub(crate) fn matmul_add(a: &[u32], rows: usize, pairs: usize, panels: &[u32], out: &mut [f32]) {
    assert!(covers(pairs), "AMX kernels need AMX-BF16 and whole tiles");
    let n_out = panels.len() / pairs;
    assert!(n_out.is_multiple_of(NR) && a.len() == rows * pairs && out.len() == rows * n_out);
    let c = SendPtr(out.as_mut_ptr());
    let task = |r0: usize, r1: usize, p0: usize, p1: usize| {
        // The whole wrapper, not its raw field, so the closure is Send.
        #[allow(clippy::redundant_locals)]
        let c = c;
        // SAFETY: supported() checked the CPU and requested tile state; the
        // rows r0..r1 and panels p0..p1 are in bounds (asserted above) and
        // no other task writes their outputs.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            rows_by_panels(a, pairs, panels, c.0, n_out, r0..r1, p0..p1)
        };
    };
    // Blocks of rows, or of panels for a few rows, as the other packed
    // kernels share theirs: each task loads its tile configuration once.
    super::split_blocks(rows, pairs, n_out, task);
}

/// `c[rows, n_out] += a[rows, pairs] · W` on this thread alone, for
/// products too small to share out (one attention head); `c`'s rows are
/// `ldc` floats apart.
///
/// # Safety
/// [`covers`]`(pairs)`; `a` holds `rows × pairs` pairs, `panels` whole
/// panels of `pairs × 32`, and `c` is valid for their columns at each of
/// the `rows` row starts, written by no one else meanwhile.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn product_serial(
    a: &[u32],
    rows: usize,
    pairs: usize,
    panels: &[u32],
    c: *mut f32,
    ldc: usize,
) {
    debug_assert!(covers(pairs) && a.len() >= rows * pairs);
    let panel_count = panels.len() / (pairs * NR);
    // SAFETY: the caller's contract.
    unsafe { rows_by_panels(a, pairs, panels, c, ldc, 0..rows, 0..panel_count) };
}

/// Rows `rows` × panels `panels` of the product, in 32-row blocks (a
/// shorter last one), each panel's weight reused across the blocks while
/// it is in cache.
///
/// # Safety
/// AMX-BF16 with tile state granted; `a` holds the rows' pairs, `panels`
/// the panels, and `c` (rows `ldc` floats apart) is valid and this
/// caller's own for those rows and the panels' columns.
#[cfg(target_arch = "x86_64")]
unsafe fn rows_by_panels(
    a: &[u32],
    pairs: usize,
    panels: &[u32],
    c: *mut f32,
    ldc: usize,
    rows: std::ops::Range<usize>,
    panel_range: std::ops::Range<usize>,
) {
    let full_end = rows.start + (rows.len() / 32) * 32;
    let operands = |r: usize, p: usize| Operands {
        // SAFETY (of the offsets): r < rows.end and p < panel_range.end,
        // both in bounds by the caller's contract.
        a: a[r * pairs..].as_ptr(),
        b: panels[p * pairs * NR..].as_ptr(),
        c: unsafe { c.add(r * ldc + p * NR) },
        pairs,
        ldc,
    };
    // SAFETY: each block's operands are in bounds (the caller's contract),
    // and each configuration loaded matches the block kernel run under it.
    unsafe {
        if full_end > rows.start {
            load_config(&TileConfig::block(16, 16));
            for p in panel_range.clone() {
                for r in (rows.start..full_end).step_by(32) {
                    block::<true>(&operands(r, p));
                }
            }
        }
        let tail = rows.end - full_end;
        if tail > 0 {
            let (m0, m1) = (tail.min(16), tail.saturating_sub(16));
            load_config(&TileConfig::block(m0, m1));
            for p in panel_range {
                if m1 > 0 {
                    block::<true>(&operands(full_end, p));
                } else {
                    block::<false>(&operands(full_end, p));
                }
            }
        }
        asm!("tilerelease", options(nostack, preserves_flags));
    }
}

/// One block's operands: its first activation row, its weight panel, its
/// first output, the pairs per row and the output's row stride in floats.
struct Operands {
    a: *const u32,
    b: *const u32,
    c: *mut f32,
    pairs: usize,
    ldc: usize,
}

/// # Safety
/// AMX with tile state granted; `cfg` is a valid palette-1 configuration.
#[cfg(target_arch = "x86_64")]
unsafe fn load_config(cfg: &TileConfig) {
    // SAFETY: the caller's contract; ldtilecfg reads the 64 bytes only.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) cfg, options(nostack, readonly, preserves_flags));
    }
}

/// `c[0..m][0..32] += a[0..m] · b` over every k-pair, `m` being the rows
/// the loaded configuration gives tiles 0/1 and 2/3 (`TWO`: whether the
/// second row-tile is in use).
///
/// # Safety
/// A configuration from [`TileConfig::block`] matching `TWO` is loaded;
/// `a` holds the block's rows of `pairs` pairs (`pairs` a positive multiple
/// of 16), `b` a panel of `pairs × 32`, `c` the block's rows, `ldc` apart.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn block<const TWO: bool>(op: &Operands) {
    let sa = op.pairs * 4;
    let sc = op.ldc * 4;
    let steps = op.pairs / KP;
    // SAFETY: the tile loads and stores read and write only the rows and
    // columns the caller vouches for (tile shapes come from the config).
    unsafe {
        if TWO {
            asm!(
                "tileloadd tmm0, [{c} + {sc}]",
                "tileloadd tmm1, [{c} + {sc} + 64]",
                "tileloadd tmm2, [{c2} + {sc}]",
                "tileloadd tmm3, [{c2} + {sc} + 64]",
                "2:",
                "tileloadd tmm4, [{a} + {sa}]",
                "tileloadd tmm5, [{a2} + {sa}]",
                "tileloadd tmm6, [{b} + {sb}]",
                "tileloadd tmm7, [{b} + {sb} + 64]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a}, 64",
                "add {a2}, 64",
                "add {b}, 2048",
                "dec {n}",
                "jnz 2b",
                "tilestored [{c} + {sc}], tmm0",
                "tilestored [{c} + {sc} + 64], tmm1",
                "tilestored [{c2} + {sc}], tmm2",
                "tilestored [{c2} + {sc} + 64], tmm3",
                a = inout(reg) op.a => _,
                a2 = inout(reg) op.a.add(16 * op.pairs) => _,
                b = inout(reg) op.b => _,
                n = inout(reg) steps => _,
                c = in(reg) op.c,
                c2 = in(reg) op.c.add(16 * op.ldc),
                sa = in(reg) sa,
                sb = in(reg) NR * 4,
                sc = in(reg) sc,
                out("tmm0") _, out("tmm1") _, out("tmm2") _, out("tmm3") _,
                out("tmm4") _, out("tmm5") _, out("tmm6") _, out("tmm7") _,
                options(nostack),
            );
        } else {
            asm!(
                "tileloadd tmm0, [{c} + {sc}]",
                "tileloadd tmm1, [{c} + {sc} + 64]",
                "2:",
                "tileloadd tmm4, [{a} + {sa}]",
                "tileloadd tmm6, [{b} + {sb}]",
                "tileloadd tmm7, [{b} + {sb} + 64]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "add {a}, 64",
                "add {b}, 2048",
                "dec {n}",
                "jnz 2b",
                "tilestored [{c} + {sc}], tmm0",
                "tilestored [{c} + {sc} + 64], tmm1",
                a = inout(reg) op.a => _,
                b = inout(reg) op.b => _,
                n = inout(reg) steps => _,
                c = in(reg) op.c,
                sa = in(reg) sa,
                sb = in(reg) NR * 4,
                sc = in(reg) sc,
                out("tmm0") _, out("tmm1") _, out("tmm4") _,
                out("tmm6") _, out("tmm7") _,
                options(nostack),
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::bf16;

    #[test]
    fn matches_an_f64_reference_within_bf16_rounding() {
        if !super::supported() {
            quarry_core::skip_test("this CPU (or OS) has no AMX-BF16");
            return;
        }
        // Row counts that leave every kind of tail (none, under 16, over
        // 16), one and many panels, one and many k-steps, one task and many.
        for &(rows, n_in, n_out) in &[
            (1, 32, 32),
            (16, 64, 64),
            (13, 384, 64),
            (45, 384, 96),
            (32, 1536, 384),
            (333, 384, 1536),
        ] {
            bf16::tests::assert_matmul_matches_f64(rows, n_in, n_out, |packed| {
                assert!(bf16::uses_amx(packed), "{n_in} inputs should run on AMX");
            });
        }
    }

    #[test]
    fn a_row_does_not_depend_on_its_batch_mates() {
        if !super::supported() {
            quarry_core::skip_test("this CPU (or OS) has no AMX-BF16");
            return;
        }
        let (n_in, n_out) = (384, 128);
        let w: Vec<f32> = (0..n_in * n_out)
            .map(|i| ((i * 31 % 89) as f32 - 44.0) / 50.0)
            .collect();
        let packed = bf16::PackedWeight::pack(&w, n_in, n_out).unwrap();
        let x: Vec<f32> = (0..300 * n_in)
            .map(|i| ((i * 17 % 83) as f32 - 41.0) / 30.0)
            .collect();
        let mut all = vec![0f32; 300 * n_out];
        bf16::matmul_add(&x, 300, n_in, &packed, &mut all);
        // Row 37 alone, and as the last row of a 38-row batch (a tail).
        for (start, rows) in [(37, 1), (0, 38), (20, 18)] {
            let mut part = vec![0f32; rows * n_out];
            bf16::matmul_add(
                &x[start * n_in..(start + rows) * n_in],
                rows,
                n_in,
                &packed,
                &mut part,
            );
            let r = 37 - start;
            assert_eq!(
                &part[r * n_out..(r + 1) * n_out],
                &all[37 * n_out..38 * n_out]
            );
        }
    }
}
