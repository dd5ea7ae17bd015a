//! Block sizes from the cache hierarchy the process runs on (Goto / BLIS analytical model).
//!
//! The blocked loop runs the `MR x NR` tiles of one row block over a `kc x NR` micro-panel of B,
//! re-reads the packed `mc x kc` block of A for every micro-panel, and takes the micro-panels from
//! a `kc x nc` panel of B in the core's share of L3. Sizes are read once: CPUID leaf 4 (Intel) or 0x8000001D (AMD) on x86,
//! sysfs on other Linux targets, and conservative defaults where neither answers.

use std::sync::OnceLock;

/// Data-cache sizes in bytes: L1 data and L2 per core, L3 as the share of one core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSizes {
    pub l1d: usize,
    pub l2: usize,
    pub l3_per_core: usize,
}

impl CacheSizes {
    /// What every x86-64 and arm64 core of the last decade has at least.
    pub const FALLBACK: CacheSizes = CacheSizes {
        l1d: 32 << 10,
        l2: 512 << 10,
        l3_per_core: 2 << 20,
    };

    /// The caches of this machine (detected once per process).
    pub fn detected() -> CacheSizes {
        static SIZES: OnceLock<CacheSizes> = OnceLock::new();
        *SIZES.get_or_init(|| detect().unwrap_or(Self::FALLBACK))
    }
}

/// Rows of A per packed block (`mc`), depth per pass (`kc`), columns of B per packed panel (`nc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    pub mc: usize,
    pub kc: usize,
    pub nc: usize,
}

impl Blocking {
    /// Blocks for an `mr x nr` micro-kernel on `caches`.
    ///
    /// Measured on AVX-512 (4 x 64 tiles, `cargo run --release -p ruvector-gemm-bench`): the B
    /// micro-panel (`kc * nr` floats) does not fit L1 at a useful depth for such wide tiles, and
    /// what pays is a deep `kc` with the B micro-panel and the A block sharing L2:
    /// - `kc`: the B micro-panel takes a quarter of L2, between 128 and 512 steps (deeper passes
    ///   load and store the C tile less often; 512 keeps both packed blocks in L2);
    /// - `mc`: the packed A block (`mc * kc` floats) takes another quarter of L2;
    /// - `nc`: the packed B panel (`kc * nc` floats) takes half of the core's share of L3, at
    ///   most 8192 columns (wider panels measured no faster and delay the first tiles).
    pub fn for_tile(mr: usize, nr: usize, caches: CacheSizes) -> Blocking {
        const F32: usize = std::mem::size_of::<f32>();
        let kc = (caches.l2 / 4 / (nr * F32)).clamp(128, 512) / 8 * 8;
        let mc = (caches.l2 / 4 / (kc * F32) / mr * mr).clamp(mr, 4096);
        let nc = (caches.l3_per_core / 2 / (kc * F32) / nr * nr).clamp(nr * 4, 8192);
        Blocking { mc, kc, nc }
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn detect() -> Option<CacheSizes> {
    cpuid::caches().or_else(sysfs)
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
fn detect() -> Option<CacheSizes> {
    sysfs()
}

/// One cache level as the OS or CPU describes it.
struct Level {
    level: u32,
    data: bool,
    bytes: usize,
    /// Logical CPUs sharing it.
    sharing: usize,
}

/// Folds cache descriptions into `CacheSizes` (L3 divided among the CPUs sharing it).
fn from_levels(levels: impl IntoIterator<Item = Level>) -> Option<CacheSizes> {
    let (mut l1d, mut l2, mut l3) = (0, 0, 0);
    for c in levels {
        if !c.data || c.bytes == 0 {
            continue;
        }
        match c.level {
            1 => l1d = c.bytes,
            2 => l2 = c.bytes,
            3 => l3 = c.bytes / c.sharing.max(1),
            _ => {}
        }
    }
    if l1d == 0 || l2 == 0 {
        return None;
    }
    Some(CacheSizes {
        l1d,
        l2,
        // No L3 (some VMs hide it): the L2 is the last level.
        l3_per_core: if l3 == 0 { l2 } else { l3 },
    })
}

#[cfg(target_os = "linux")]
fn sysfs() -> Option<CacheSizes> {
    let root = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let read = |dir: &std::path::Path, name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let mut levels = Vec::new();
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let dir = entry.path();
        let (Some(level), Some(kind), Some(size)) =
            (read(&dir, "level"), read(&dir, "type"), read(&dir, "size"))
        else {
            continue;
        };
        let sharing = read(&dir, "shared_cpu_list").map_or(1, |list| cpu_count(list.trim()));
        levels.push(Level {
            level: level.trim().parse().ok()?,
            data: matches!(kind.trim(), "Data" | "Unified"),
            bytes: parse_size(size.trim())?,
            sharing,
        });
    }
    from_levels(levels)
}

#[cfg(not(target_os = "linux"))]
fn sysfs() -> Option<CacheSizes> {
    None
}

/// "32K", "1024K", "32768K", "8M" -> bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_size(text: &str) -> Option<usize> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let value: usize = digits.parse().ok()?;
    let scale = match unit.trim() {
        "" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        _ => return None,
    };
    value.checked_mul(scale)
}

/// The number of CPUs in a list such as "0-3,8,10-11".
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn cpu_count(list: &str) -> usize {
    list.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum::<usize>()
        .max(1)
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod cpuid {
    //! The deterministic cache parameters leaf: 4 on Intel, 0x8000001D on AMD (same layout).
    #[cfg(target_arch = "x86")]
    use std::arch::x86::{__cpuid, __cpuid_count};
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::{__cpuid, __cpuid_count};

    use super::{from_levels, CacheSizes, Level};

    pub(super) fn caches() -> Option<CacheSizes> {
        // Leaves are only queried below the maximum each range reports.
        let vendor = __cpuid(0);
        let amd = vendor.ebx == u32::from_le_bytes(*b"Auth")
            || vendor.ebx == u32::from_le_bytes(*b"Hygo");
        let leaf = if amd {
            let max_ext = __cpuid(0x8000_0000).eax;
            if max_ext < 0x8000_001D {
                return None;
            }
            0x8000_001D
        } else {
            if vendor.eax < 4 {
                return None;
            }
            4
        };
        let mut levels = Vec::new();
        for sub in 0..16 {
            let r = __cpuid_count(leaf, sub);
            let kind = r.eax & 0x1f;
            if kind == 0 {
                break;
            }
            let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
            let partitions = ((r.ebx >> 12) & 0x3ff) as usize + 1;
            let line = (r.ebx & 0xfff) as usize + 1;
            let sets = r.ecx as usize + 1;
            levels.push(Level {
                level: (r.eax >> 5) & 0x7,
                data: kind == 1 || kind == 3,
                bytes: ways * partitions * line * sets,
                sharing: ((r.eax >> 14) & 0xfff) as usize + 1,
            });
        }
        from_levels(levels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("32K"), Some(32 << 10));
        assert_eq!(parse_size("1024K"), Some(1 << 20));
        assert_eq!(parse_size("8M"), Some(8 << 20));
        assert_eq!(parse_size("12345"), Some(12345));
        assert_eq!(parse_size("3X"), None);
        assert_eq!(cpu_count("0-3,8,10-11"), 7);
        assert_eq!(cpu_count("5"), 1);
    }

    #[test]
    fn levels_fold_into_sizes() {
        let l = |level, data, bytes, sharing| Level {
            level,
            data,
            bytes,
            sharing,
        };
        let sizes = from_levels([
            l(1, true, 48 << 10, 2),
            l(1, false, 32 << 10, 2),
            l(2, true, 2 << 20, 2),
            l(3, true, 64 << 20, 16),
        ])
        .unwrap();
        assert_eq!(
            sizes,
            CacheSizes {
                l1d: 48 << 10,
                l2: 2 << 20,
                l3_per_core: 4 << 20
            }
        );
        assert!(from_levels([l(3, true, 8 << 20, 4)]).is_none());
    }

    #[test]
    fn blocking_fits_the_caches_and_the_tile() {
        for caches in [
            CacheSizes::FALLBACK,
            CacheSizes::detected(),
            CacheSizes {
                l1d: 48 << 10,
                l2: 2 << 20,
                l3_per_core: 1 << 20,
            },
        ] {
            for (mr, nr) in [(4, 8), (6, 16), (4, 64)] {
                let b = Blocking::for_tile(mr, nr, caches);
                assert!(
                    b.kc >= 128 && b.kc <= 512 && b.kc.is_multiple_of(8),
                    "{b:?}"
                );
                assert!(b.mc >= mr && b.mc.is_multiple_of(mr), "{b:?}");
                assert!(b.nc >= 4 * nr && b.nc.is_multiple_of(nr), "{b:?}");
            }
        }
        let detected = CacheSizes::detected();
        assert!(
            detected.l1d >= 8 << 10 && detected.l2 >= detected.l1d,
            "{detected:?}"
        );
    }
}
