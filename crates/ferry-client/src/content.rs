//! Hashing local files the way the server addresses content: SHA-256 over the bytes.

use std::path::Path;

use ferry_core::Sha256;
use sha2::Digest;
use tokio::io::AsyncReadExt;

use crate::ClientError;

/// Size of the buffer files are read with.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Hashes a file in chunks, never holding it in memory. `progress` is called after each chunk
/// with the number of bytes hashed so far. Returns the digest and the length.
pub async fn hash_file(path: &Path, progress: impl Fn(u64)) -> Result<(Sha256, u64), ClientError> {
    let mut file = tokio::fs::File::open(path).await.map_err(|e| ClientError::io("open", path, e))?;
    let mut hasher = sha2::Sha256::new();
    let length = hash_reader(&mut file, &mut hasher, progress).await.map_err(|e| ClientError::io("read", path, e))?;
    Ok((finish(hasher), length))
}

/// Feeds everything `reader` yields into `hasher`; returns the byte count.
pub(crate) async fn hash_reader(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    hasher: &mut sha2::Sha256,
    progress: impl Fn(u64),
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        progress(total);
    }
}

pub(crate) fn finish(hasher: sha2::Sha256) -> Sha256 {
    Sha256::from_bytes(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn hashes_files_with_progress() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, vec![7u8; CHUNK * 2 + 5]).unwrap();
        let seen = Cell::new(0);
        let (sha, len) = hash_file(&path, |n| seen.set(n)).await.unwrap();
        assert_eq!(len, (CHUNK * 2 + 5) as u64);
        assert_eq!(seen.get(), len);
        let expected = finish(sha2::Sha256::new_with_prefix(vec![7u8; CHUNK * 2 + 5]));
        assert_eq!(sha, expected);

        std::fs::write(&path, b"abc").unwrap();
        let (sha, _) = hash_file(&path, |_| {}).await.unwrap();
        assert_eq!(sha.as_str(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[tokio::test]
    async fn missing_files_name_the_path() {
        let err = hash_file(Path::new("/nonexistent/ferry.bin"), |_| {}).await.unwrap_err();
        assert!(err.to_string().starts_with("cannot open /nonexistent/ferry.bin:"), "{err}");
    }
}
