//! The export archive: a gzip-compressed POSIX tar (ustar), produced as a stream of parts of
//! `PART_BYTES` so that an archive of any size is built and stored with one part in memory at a
//! time. Files are added whole (an artifact is at most a few MiB); each is listed with its size
//! and SHA-256 for the manifest.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The size of every stored part but the last.
pub const PART_BYTES: usize = 8 << 20;

const BLOCK: usize = 512;

/// A file in the archive, as the manifest lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("a path in the archive is too long for tar: {0}")]
    PathTooLong(String),
    #[error("a path in the archive is not plain: {0}")]
    BadPath(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The compressed bytes, cut into parts, and the hash and size of all of them.
#[derive(Default)]
struct Parts {
    current: Vec<u8>,
    full: Vec<Vec<u8>>,
    hasher: Sha256,
    size: u64,
}

impl Write for Parts {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        self.current.extend_from_slice(buf);
        while self.current.len() >= PART_BYTES {
            let rest = self.current.split_off(PART_BYTES);
            self.full.push(std::mem::replace(&mut self.current, rest));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What is left once the archive is complete.
pub struct Finished {
    /// The remaining parts (the last one may be short).
    pub parts: Vec<Vec<u8>>,
    pub sha256: String,
    pub size: u64,
    pub files: Vec<FileEntry>,
}

pub struct ArchiveWriter {
    gz: GzEncoder<Parts>,
    files: Vec<FileEntry>,
    mtime: u64,
}

impl ArchiveWriter {
    /// An archive whose files carry `mtime` (seconds since the epoch) as their time.
    pub fn new(mtime: u64) -> ArchiveWriter {
        ArchiveWriter {
            gz: GzEncoder::new(Parts::default(), Compression::fast()),
            files: Vec::new(),
            mtime,
        }
    }

    /// Adds one file.
    pub fn add(&mut self, path: &str, contents: &[u8]) -> Result<(), ArchiveError> {
        let header = ustar_header(path, contents.len() as u64, self.mtime)?;
        self.gz.write_all(&header)?;
        self.gz.write_all(contents)?;
        let padding = (BLOCK - contents.len() % BLOCK) % BLOCK;
        self.gz.write_all(&[0u8; BLOCK][..padding])?;
        self.files.push(FileEntry {
            path: path.to_string(),
            bytes: contents.len() as u64,
            sha256: hex::encode(Sha256::digest(contents)),
        });
        Ok(())
    }

    /// The files added so far.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// The parts complete so far, to be stored in order.
    pub fn take_full_parts(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.gz.get_mut().full)
    }

    /// Ends the tar (two zero blocks) and the gzip stream.
    pub fn finish(mut self) -> Result<Finished, ArchiveError> {
        self.gz.write_all(&[0u8; 2 * BLOCK])?;
        let mut parts = self.gz.finish()?;
        let mut remaining = std::mem::take(&mut parts.full);
        if !parts.current.is_empty() {
            remaining.push(parts.current);
        }
        Ok(Finished {
            parts: remaining,
            sha256: hex::encode(parts.hasher.finalize()),
            size: parts.size,
            files: self.files,
        })
    }
}

/// A ustar header for a regular file: the path in `name` (≤ 100 bytes) or split between
/// `prefix` (≤ 155) and `name` at a slash.
fn ustar_header(path: &str, size: u64, mtime: u64) -> Result<[u8; BLOCK], ArchiveError> {
    let plain = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
        && path.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if !plain {
        return Err(ArchiveError::BadPath(path.to_string()));
    }
    let (prefix, name) = if path.len() <= 100 {
        ("", path)
    } else {
        path.char_indices()
            .filter(|&(i, c)| c == '/' && i <= 155 && path.len() - i - 1 <= 100)
            .map(|(i, _)| (&path[..i], &path[i + 1..]))
            .next()
            .ok_or_else(|| ArchiveError::PathTooLong(path.to_string()))?
    };
    let mut header = [0u8; BLOCK];
    let mut put = |at: usize, bytes: &[u8]| header[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, format!("{mtime:011o}\0").as_bytes());
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    put(345, prefix.as_bytes());
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Reads a tar made by `ArchiveWriter` back: (path, contents) of every file.
    fn read_back(gz: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut tar)
            .unwrap();
        let mut files = Vec::new();
        let mut at = 0;
        while at + BLOCK <= tar.len() && tar[at..at + BLOCK].iter().any(|&b| b != 0) {
            let header = &tar[at..at + BLOCK];
            let field = |from: usize, len: usize| {
                String::from_utf8(
                    header[from..from + len]
                        .iter()
                        .copied()
                        .take_while(|&b| b != 0)
                        .collect(),
                )
                .unwrap()
            };
            let stored: u32 = header
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u32::from(b)
                    }
                })
                .sum();
            assert_eq!(
                u32::from_str_radix(field(148, 6).trim(), 8).unwrap(),
                stored
            );
            let size = usize::from_str_radix(field(124, 11).trim(), 8).unwrap();
            let prefix = field(345, 155);
            let name = field(0, 100);
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            at += BLOCK;
            files.push((path, tar[at..at + size].to_vec()));
            at += size.div_ceil(BLOCK) * BLOCK;
        }
        files
    }

    #[test]
    fn files_come_back_whole_with_their_hashes_across_parts() {
        let mut writer = ArchiveWriter::new(1_700_000_000);
        // Incompressible (xorshift), so the compressed stream spans parts too.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let big: Vec<u8> = (0..3 * PART_BYTES / 2)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let long = format!("artifacts/{}/page.json", "d".repeat(120));
        writer.add("manifest.json", b"{}").unwrap();
        writer.add("artifacts/a.bin", &big).unwrap();
        writer.add(&long, b"deep").unwrap();
        let mut parts = writer.take_full_parts();
        let finished = writer.finish().unwrap();
        parts.extend(finished.parts);
        assert!(parts.len() >= 2, "the archive spans parts");
        assert!(
            parts[..parts.len() - 1]
                .iter()
                .all(|p| p.len() == PART_BYTES)
        );
        let gz: Vec<u8> = parts.concat();
        assert_eq!(finished.size, gz.len() as u64);
        assert_eq!(finished.sha256, hex::encode(Sha256::digest(&gz)));
        let files = read_back(&gz);
        assert_eq!(files.len(), 3);
        assert_eq!(files[1].0, "artifacts/a.bin");
        assert_eq!(files[1].1, big);
        assert_eq!(files[2].0, long);
        assert_eq!(finished.files[1].sha256, hex::encode(Sha256::digest(&big)));
    }

    #[test]
    fn paths_that_are_not_plain_or_too_long_are_refused() {
        let mut writer = ArchiveWriter::new(0);
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "a/\u{0}b", "é"] {
            assert!(
                matches!(writer.add(bad, b"x"), Err(ArchiveError::BadPath(_))),
                "{bad:?}"
            );
        }
        let too_long = "x".repeat(300);
        assert!(matches!(
            writer.add(&too_long, b"x"),
            Err(ArchiveError::PathTooLong(_))
        ));
        assert!(writer.files().is_empty());
    }
}
