//! SHA-256 digests as results record them, in lowercase hexadecimal: of bytes held in memory
//! (a scenario file as read) and of files read a piece at a time (a shard's rows, which can
//! be gigabytes).

use std::fs;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The digest of `bytes`.
pub fn of_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The digest of the file at `path`, read in pieces rather than into memory at once.
pub fn of_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hex(&hash.finalize()));
        }
        hash.update(&buffer[..n]);
    }
}

/// A finished digest in lowercase hexadecimal.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_read_in_pieces_hashes_as_its_bytes_do() {
        // "abc" is the FIPS 180-2 example.
        assert_eq!(
            of_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("f");
        // Longer than one piece, and not a multiple of it.
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &bytes).unwrap();
        assert_eq!(of_file(&path).unwrap(), of_bytes(&bytes));
    }
}
