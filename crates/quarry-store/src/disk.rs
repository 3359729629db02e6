//! Free space, and files that cannot fault for the lack of it.
//!
//! qdrant-edge keeps its WAL segments and vector chunks in memory-mapped
//! files that it sizes with `ftruncate`: sparse files whose blocks are only
//! allocated when a page is first written through the map. On a full disk
//! that first write cannot be refused with an error; the kernel sends
//! SIGBUS and the process dies without a word. Two things keep that from
//! happening:
//!
//! - a low-water mark: below `min_free_bytes` free, writes are refused with
//!   [`StoreError::DiskFull`] before qdrant is asked to grow anything (as
//!   Elasticsearch's flood-stage watermark does);
//! - preallocation: after every write, and before a shard is loaded, every
//!   file of the shard gets its blocks with `posix_fallocate`, which does
//!   fail with ENOSPC. A mapped page then never needs a new block, so reads
//!   (and writes into space already held) work on a full disk.

use std::path::Path;

use crate::{Result, StoreError};

/// The default low-water mark: room for the largest single allocation
/// qdrant-edge makes (a 32 MiB WAL segment, a 32 MiB vector chunk) with
/// headroom for the payload store and our journals.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 128 * 1024 * 1024;

/// Space held back in `.reserve` under the collections folder, so a shard
/// can still be opened for reading when the disk has filled up entirely.
const RESERVE_FILE: &str = ".reserve";
const RESERVE_BYTES: u64 = 4 * 1024 * 1024;

/// Makes sure the reserve exists (when there is room for it); failure is
/// not an error, since the reserve only helps.
pub fn ensure_reserve(root: &Path) {
    let path = root.join(RESERVE_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE_BYTES) {
        return;
    }
    let written = std::fs::write(&path, vec![0u8; RESERVE_BYTES as usize]);
    if written.is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// Frees the reserve; true when there was one to free.
pub fn release_reserve(root: &Path) -> bool {
    std::fs::remove_file(root.join(RESERVE_FILE)).is_ok()
}

/// Bytes available to unprivileged writers on the file system of `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a writable
    // statvfs; the call only writes into it.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Refuses a write when the file system of `path` is below the mark. A
/// file system whose free space cannot be read is let through: the write
/// itself will then say what is wrong.
pub fn check_free(path: &Path, min_free: u64) -> Result<()> {
    if min_free == 0 {
        return Ok(());
    }
    match free_bytes(path) {
        Ok(free) if free < min_free => Err(StoreError::DiskFull { free, min_free }),
        _ => Ok(()),
    }
}

/// Gives every regular file under `dir` the blocks its size claims, so no
/// page of a memory map over it can fault for lack of space. Fails with
/// the ENOSPC that the map would have turned into SIGBUS.
pub fn preallocate(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            // A folder qdrant removed meanwhile (an optimised segment).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let Ok(file) = std::fs::OpenOptions::new().write(true).open(entry.path()) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            let len = meta.len();
            {
                use std::os::unix::fs::MetadataExt;
                // Already fully backed: nothing to do (st_blocks is in 512s).
                if meta.blocks().saturating_mul(512) >= len {
                    continue;
                }
            }
            // SAFETY: a valid open descriptor; the range is the file's own size,
            // so the size does not change.
            let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
            match rc {
                0 => {}
                // File systems without fallocate keep their old behaviour.
                libc::EOPNOTSUPP | libc::EINVAL => {}
                errno => return Err(std::io::Error::from_raw_os_error(errno)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_files_get_their_blocks() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).expect("mkdir");
        let path = sub.join("sparse");
        let f = std::fs::File::create(&path).expect("create");
        f.set_len(4 << 20).expect("set_len");
        drop(f);
        let before = std::fs::metadata(&path).expect("meta").blocks() * 512;
        preallocate(dir.path()).expect("preallocate");
        let after = std::fs::metadata(&path).expect("meta").blocks() * 512;
        assert!(before < 4 << 20, "{before}");
        assert!(after >= 4 << 20, "{after}");
        assert!(free_bytes(dir.path()).expect("statvfs") > 0);
        assert!(matches!(
            check_free(dir.path(), u64::MAX),
            Err(StoreError::DiskFull { .. })
        ));
        assert!(check_free(dir.path(), 0).is_ok());
    }
}
