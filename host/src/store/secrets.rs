//! Encryption at rest for connector secrets (passwords, client secrets).
//!
//! The key is 32 random bytes in `secret.key` beside the database (mode 0600),
//! so a copied database alone does not reveal secrets.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

use super::StoreError;

/// Seals and opens secret blobs with ChaCha20-Poly1305.
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl SecretBox {
    /// Open the key at `path`, creating it on first use.
    pub fn open_or_create(path: &Path) -> Result<Self, StoreError> {
        let key = match std::fs::read(path) {
            Ok(bytes) if bytes.len() == 32 => bytes,
            Ok(bytes) => {
                return Err(StoreError::SecretKey(format!(
                    "{} holds {} bytes, expected 32; restore it from a backup",
                    path.display(),
                    bytes.len()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts
                    .open(path)
                    .map_err(|e| StoreError::SecretKey(format!("{}: {e}", path.display())))?;
                f.write_all(&key)?;
                f.sync_all()?;
                key
            }
            Err(e) => return Err(StoreError::SecretKey(format!("{}: {e}", path.display()))),
        };
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }

    /// Encrypt: a random 12-byte nonce followed by the ciphertext.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        // Encryption with a fresh nonce cannot fail for in-memory buffers.
        out.extend(
            self.cipher
                .encrypt(Nonce::from_slice(&nonce), plain)
                .expect("chacha20poly1305 encryption"),
        );
        out
    }

    /// Decrypt what [`seal`](Self::seal) produced.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        if sealed.len() < 12 {
            return Err(StoreError::Corrupt {
                what: "secret".into(),
                message: "too short".into(),
            });
        }
        let (nonce, ct) = sealed.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| StoreError::Corrupt {
                what: "secret".into(),
                message: "cannot decrypt: wrong secret.key for this database?".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let b = SecretBox::open_or_create(&dir.path().join("k")).unwrap();
        let sealed = b.seal(b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(b.open(&sealed).unwrap(), b"hunter2");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(b.open(&bad).is_err());
        // The same key file opens again.
        let b2 = SecretBox::open_or_create(&dir.path().join("k")).unwrap();
        assert_eq!(b2.open(&sealed).unwrap(), b"hunter2");
    }
}
