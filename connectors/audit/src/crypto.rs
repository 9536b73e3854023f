//! Encryption for crypto-shredding (AES-256-GCM, from `ring`): one data key per data subject, wrapped by a master
//! key; each PII field sealed on its own, bound to the row and field it belongs to.
//!
//! - A sealed field is `0x01 || be64(data key id) || nonce (12) || ciphertext || tag (16)`, with a random nonce and
//!   associated data `"ursa-audit-pii/v1\n" || str(topic) || be32(partition) || be64(offset) || be32(n)`, n being
//!   the field's position among the record's sealed fields: a ciphertext moved to another row or field does not
//!   open.
//! - A wrapped data key is `nonce (12) || ciphertext || tag` under the master key, with associated data
//!   `"ursa-audit-dek/v1\n" || subject`; the master key's id (the first 8 bytes of
//!   `SHA-256("ursa-audit-master/v1\n" || key)`) is stored with it, so a wrong master key is named as such.
//! - Forgetting a subject deletes its wrapped keys: its fields can no longer be opened, by anyone.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

/// The version byte of a sealed field.
const SEALED_V1: u8 = 0x01;

/// Bytes a sealed field adds to its plaintext.
pub const SEAL_OVERHEAD: usize = 1 + 8 + NONCE_LEN + 16;

/// Why something could not be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The master key is not 32 bytes of base64 (or 64 hex digits).
    #[error("the master key must be 32 bytes, base64 or hex")]
    BadMasterKey,
    /// A wrapped key was made with another master key.
    #[error(
        "data key of {subject} was wrapped by master key {stored}, not by the configured one ({ours})"
    )]
    WrongMasterKey {
        /// The subject.
        subject: String,
        /// The id stored with it.
        stored: String,
        /// The configured key's id.
        ours: String,
    },
    /// Decryption failed: tampered data or the wrong key.
    #[error("{0} does not decrypt: tampered with, or not this key's")]
    Decrypt(&'static str),
    /// The system has no randomness.
    #[error("no randomness available")]
    Random,
}

/// Associated data of a sealed field.
#[derive(Debug, Clone, Copy)]
pub struct FieldContext<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

impl FieldContext<'_> {
    fn aad(&self, index: u32) -> Vec<u8> {
        let mut a = Vec::with_capacity(48 + self.topic.len());
        a.extend_from_slice(b"ursa-audit-pii/v1\n");
        a.extend_from_slice(&(self.topic.len() as u64).to_be_bytes());
        a.extend_from_slice(self.topic.as_bytes());
        a.extend_from_slice(&self.partition.to_be_bytes());
        a.extend_from_slice(&self.offset.to_be_bytes());
        a.extend_from_slice(&index.to_be_bytes());
        a
    }
}

fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| CryptoError::Random)?;
    Ok(b)
}

/// Random bytes fetched from the system per refill of a thread's nonce pool: one `getrandom` call gives
/// 256 nonces instead of one (the system call was a quarter of the time spent sealing a field).
const NONCE_POOL: usize = NONCE_LEN * 256;

thread_local! {
    /// Unused system randomness of this thread, and where the unused part starts. Each byte is handed out
    /// once.
    static NONCES: std::cell::RefCell<([u8; NONCE_POOL], usize)> =
        const { std::cell::RefCell::new(([0; NONCE_POOL], NONCE_POOL)) };
}

/// A random nonce: 96 bits from the system's generator, as [`random`] gives, taken from a per-thread pool.
fn nonce() -> Result<[u8; NONCE_LEN], CryptoError> {
    NONCES.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (bytes, used) = &mut *pool;
        if *used + NONCE_LEN > NONCE_POOL {
            SystemRandom::new()
                .fill(bytes)
                .map_err(|_| CryptoError::Random)?;
            *used = 0;
        }
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&bytes[*used..*used + NONCE_LEN]);
        // Spent: never handed out again, and not left readable.
        bytes[*used..*used + NONCE_LEN].fill(0);
        *used += NONCE_LEN;
        Ok(n)
    })
}

fn aes_key(bytes: &[u8]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::BadMasterKey)
}

fn seal_with(
    key: &LessSafeKey,
    aad: &[u8],
    plain: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let nonce = nonce()?;
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plain);
    let mut body = out.split_off(start);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .map_err(|_| CryptoError::Random)?;
    out.extend_from_slice(&body);
    Ok(())
}

fn open_with(
    key: &LessSafeKey,
    aad: &[u8],
    sealed: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Decrypt(what));
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Decrypt(what))?;
    let mut body = body.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut body)
        .map_err(|_| CryptoError::Decrypt(what))?;
    Ok(plain.to_vec())
}

/// The master key that wraps data keys.
pub struct MasterKey {
    key: LessSafeKey,
    id: [u8; 8],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", crate::merkle::hex(&self.id))
    }
}

impl MasterKey {
    /// From 32 bytes written as base64 or as 64 hex digits.
    pub fn parse(text: &str) -> Result<MasterKey, CryptoError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| CryptoError::BadMasterKey)?
        } else {
            B64.decode(text).map_err(|_| CryptoError::BadMasterKey)?
        };
        if bytes.len() != 32 {
            return Err(CryptoError::BadMasterKey);
        }
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"ursa-audit-master/v1\n");
        ctx.update(&bytes);
        let mut id = [0u8; 8];
        id.copy_from_slice(&ctx.finish().as_ref()[..8]);
        Ok(MasterKey {
            key: aes_key(&bytes)?,
            id,
        })
    }

    /// A new random master key, base64.
    pub fn generate() -> Result<String, CryptoError> {
        Ok(B64.encode(random::<32>()?))
    }

    /// Its id, stored with every key it wraps.
    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    fn aad(subject: &str) -> Vec<u8> {
        let mut a = b"ursa-audit-dek/v1\n".to_vec();
        a.extend_from_slice(subject.as_bytes());
        a
    }

    /// A new data key for `subject`: `(raw key, wrapped key)`.
    pub fn new_data_key(&self, subject: &str) -> Result<([u8; 32], Vec<u8>), CryptoError> {
        let raw = random::<32>()?;
        let mut wrapped = Vec::with_capacity(NONCE_LEN + 48);
        seal_with(&self.key, &Self::aad(subject), &raw, &mut wrapped)?;
        Ok((raw, wrapped))
    }

    /// Unwraps a data key of `subject` (stored with master key id `stored_id`).
    pub fn unwrap(
        &self,
        subject: &str,
        key_id: i64,
        wrapped: &[u8],
        stored_id: &[u8],
    ) -> Result<DataKey, CryptoError> {
        if stored_id != self.id {
            return Err(CryptoError::WrongMasterKey {
                subject: subject.to_owned(),
                stored: crate::merkle::hex(stored_id),
                ours: crate::merkle::hex(&self.id),
            });
        }
        let raw = open_with(
            &self.key,
            &Self::aad(subject),
            wrapped,
            "a wrapped data key",
        )?;
        DataKey::new(key_id, &raw)
    }
}

/// A subject's data key.
pub struct DataKey {
    id: i64,
    key: LessSafeKey,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({})", self.id)
    }
}

impl DataKey {
    /// The key `id` with these 32 bytes.
    pub fn new(id: i64, raw: &[u8]) -> Result<DataKey, CryptoError> {
        Ok(DataKey {
            id,
            key: aes_key(raw).map_err(|_| CryptoError::Decrypt("a data key"))?,
        })
    }

    /// Its id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Seals the `index`-th PII field of the record at `ctx`.
    pub fn seal(
        &self,
        ctx: &FieldContext<'_>,
        index: u32,
        plain: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
        out.push(SEALED_V1);
        out.extend_from_slice(&self.id.to_be_bytes());
        seal_with(&self.key, &ctx.aad(index), plain, &mut out)?;
        Ok(out)
    }

    /// Opens a field this key sealed.
    pub fn open(
        &self,
        ctx: &FieldContext<'_>,
        index: u32,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        match sealed_key_id(sealed) {
            Some(id) if id == self.id => {
                open_with(&self.key, &ctx.aad(index), &sealed[9..], "a sealed field")
            }
            _ => Err(CryptoError::Decrypt("a sealed field")),
        }
    }
}

/// The data key id of a sealed field.
pub fn sealed_key_id(sealed: &[u8]) -> Option<i64> {
    match sealed.split_first() {
        Some((&SEALED_V1, rest)) if rest.len() >= 8 + NONCE_LEN + 16 => {
            Some(i64::from_be_bytes(rest[..8].try_into().ok()?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn pooled_nonces_never_repeat_across_refills() {
        let draws = 5 * NONCE_POOL / NONCE_LEN + 7;
        let seen: std::collections::HashSet<[u8; NONCE_LEN]> =
            (0..draws).map(|_| nonce().unwrap()).collect();
        assert_eq!(seen.len(), draws);
        assert!(
            !seen.contains(&[0; NONCE_LEN]),
            "a spent (zeroed) slot was handed out"
        );
    }

    #[test]
    fn fields_open_only_where_they_were_sealed() {
        let master = MasterKey::parse(&MasterKey::generate().unwrap()).unwrap();
        let (raw, wrapped) = master.new_data_key("child-1").unwrap();
        let key = master.unwrap("child-1", 9, &wrapped, &master.id()).unwrap();
        assert!(master.unwrap("child-2", 9, &wrapped, &master.id()).is_err());
        let other = MasterKey::parse(&"ab".repeat(32)).unwrap();
        assert!(matches!(
            other.unwrap("child-1", 9, &wrapped, &master.id()),
            Err(CryptoError::WrongMasterKey { .. })
        ));
        let ctx = FieldContext {
            topic: "t",
            partition: 0,
            offset: 5,
        };
        let sealed = key.seal(&ctx, 0, b"Ada").unwrap();
        assert_eq!(sealed.len(), 3 + SEAL_OVERHEAD);
        assert_eq!(sealed_key_id(&sealed), Some(9));
        assert!(!sealed.windows(3).any(|w| w == b"Ada"));
        assert_eq!(key.open(&ctx, 0, &sealed).unwrap(), b"Ada");
        assert!(key.open(&ctx, 1, &sealed).is_err());
        assert!(
            key.open(&FieldContext { offset: 6, ..ctx }, 0, &sealed)
                .is_err()
        );
        let same = DataKey::new(9, &raw).unwrap();
        assert_eq!(same.open(&ctx, 0, &sealed).unwrap(), b"Ada");
        assert!(MasterKey::parse("c2hvcnQ=").is_err());
    }
}
