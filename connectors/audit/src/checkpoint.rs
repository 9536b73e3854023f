//! Checkpoints: signed notes in the C2SP formats, so any transparency-log tooling (Go's `sumdb/note`,
//! `transparency-dev/formats`) can read and check them.
//!
//! - A signed note (c2sp.org/signed-note) is a text ending in a newline, a blank line, then signature lines
//!   `— <key name> <base64(key id || signature)>`; the signature covers the text (with its final newline). For
//!   Ed25519 the key id is the first 4 bytes of `SHA-256(key name || 0x0A || 0x01 || public key)`.
//! - A checkpoint (c2sp.org/tlog-checkpoint) is a note whose text is the origin line, the tree size in decimal,
//!   and the base64 root hash, each ending in a newline.
//! - Keys are written as Go's `sumdb/note` writes them: a verifier key `<name>+<hex key id>+<base64(0x01 ||
//!   public key)>`, a signer key `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>`.
//!
//! Each partition is a log of its own: origin `<origin>/<topic>/<partition>`, one leaf per row.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::merkle::Hash;

/// The signature type byte of Ed25519 in the note formats.
const ED25519_TYPE: u8 = 0x01;

/// Why a key, note or checkpoint is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key is malformed.
    #[error("malformed {what} key: {why}")]
    Key {
        /// `signer` or `verifier`.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The note is malformed.
    #[error("malformed note: {0}")]
    Malformed(String),
    /// No signature line of the key verifies.
    #[error("the note has no valid signature by {0}")]
    Unsigned(String),
}

fn key_error(what: &'static str, why: impl Into<String>) -> NoteError {
    NoteError::Key {
        what,
        why: why.into(),
    }
}

/// The 4-byte key id of an Ed25519 key.
pub fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(&[0x0A, ED25519_TYPE]);
    ctx.update(public);
    let d = ctx.finish();
    let mut id = [0u8; 4];
    id.copy_from_slice(&d.as_ref()[..4]);
    id
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

fn parse_id(hex: &str, what: &'static str) -> Result<[u8; 4], NoteError> {
    if hex.len() != 8 {
        return Err(key_error(what, "the key id is not 8 hex digits"));
    }
    let v = u32::from_str_radix(hex, 16).map_err(|_| key_error(what, "the key id is not hex"))?;
    Ok(v.to_be_bytes())
}

/// An Ed25519 note signer.
pub struct Signer {
    name: String,
    pair: Ed25519KeyPair,
    id: [u8; 4],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Parses a signer key: `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`; the id is checked.
    pub fn parse(skey: &str) -> Result<Signer, NoteError> {
        const W: &str = "signer";
        let rest = skey
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| key_error(W, "it does not start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(key_error(W, "expected PRIVATE+KEY+<name>+<id>+<key>"));
        };
        if !valid_name(name) {
            return Err(key_error(W, "bad key name"));
        }
        let id = parse_id(id, W)?;
        let raw = B64
            .decode(key)
            .map_err(|_| key_error(W, "the key is not base64"))?;
        let seed = match raw.split_first() {
            Some((&ED25519_TYPE, seed)) if seed.len() == 32 => seed,
            _ => return Err(key_error(W, "not an Ed25519 key (0x01 and 32 bytes)")),
        };
        let signer = Signer::from_seed(name, seed)?;
        if signer.id != id {
            return Err(key_error(W, "the key id does not match the key"));
        }
        Ok(signer)
    }

    /// A signer named `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8]) -> Result<Signer, NoteError> {
        if !valid_name(name) {
            return Err(key_error("signer", "bad key name"));
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| key_error("signer", "not a 32-byte Ed25519 seed"))?;
        let id = key_id(name, pair.public_key().as_ref());
        Ok(Signer {
            name: name.to_owned(),
            pair,
            id,
        })
    }

    /// A new random key: `(signer key, verifier key)` texts.
    pub fn generate(name: &str) -> Result<(String, String), NoteError> {
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| key_error("signer", "no randomness"))?;
        let signer = Signer::from_seed(name, &seed)?;
        let mut sk = vec![ED25519_TYPE];
        sk.extend_from_slice(&seed);
        let skey = format!(
            "PRIVATE+KEY+{}+{}+{}",
            name,
            crate::merkle::hex(&signer.id),
            B64.encode(sk)
        );
        Ok((skey, signer.verifier_key()))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key text.
    pub fn verifier_key(&self) -> String {
        let mut pk = vec![ED25519_TYPE];
        pk.extend_from_slice(self.pair.public_key().as_ref());
        format!(
            "{}+{}+{}",
            self.name,
            crate::merkle::hex(&self.id),
            B64.encode(pk)
        )
    }

    /// Signs `text` (which must end in a newline): the signed note.
    pub fn sign(&self, text: &str) -> String {
        let sig = self.pair.sign(text.as_bytes());
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(sig.as_ref());
        format!("{text}\n\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// An Ed25519 note verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: [u8; 4],
    public: Vec<u8>,
}

impl Verifier {
    /// Parses a verifier key `<name>+<hex id>+<base64(0x01 || public key)>`; the id is checked.
    pub fn parse(vkey: &str) -> Result<Verifier, NoteError> {
        const W: &str = "verifier";
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(key_error(W, "expected <name>+<id>+<key>"));
        };
        if !valid_name(name) {
            return Err(key_error(W, "bad key name"));
        }
        let id = parse_id(id, W)?;
        let raw = B64
            .decode(key)
            .map_err(|_| key_error(W, "the key is not base64"))?;
        let public = match raw.split_first() {
            Some((&ED25519_TYPE, pk)) if pk.len() == 32 => pk.to_vec(),
            _ => return Err(key_error(W, "not an Ed25519 key (0x01 and 32 bytes)")),
        };
        if key_id(name, &public) != id {
            return Err(key_error(W, "the key id does not match the key"));
        }
        Ok(Verifier {
            name: name.to_owned(),
            id,
            public,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks a signed note and returns its text (with the final newline), if a signature line of this key
    /// verifies; lines of other keys are ignored.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let (text, sigs) = split_note(note)?;
        let key = UnparsedPublicKey::new(&ED25519, &self.public);
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(NoteError::Malformed(format!("bad signature line {line:?}")));
            };
            let Some((name, sig)) = rest.split_once(' ') else {
                return Err(NoteError::Malformed(format!("bad signature line {line:?}")));
            };
            if name != self.name {
                continue;
            }
            let Ok(blob) = B64.decode(sig) else {
                continue;
            };
            if blob.len() == 4 + 64
                && blob[..4] == self.id
                && key.verify(text.as_bytes(), &blob[4..]).is_ok()
            {
                return Ok(text);
            }
        }
        Err(NoteError::Unsigned(self.name.clone()))
    }
}

/// A note's text (with its final newline) and its signature lines, split at the last blank line.
fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed("control characters".into()));
    }
    let at = note
        .rfind("\n\n")
        .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
    let (text, sigs) = (&note[..=at], &note[at + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::Malformed(
            "the signatures do not end in a newline".into(),
        ));
    }
    Ok((text, sigs))
}

/// A checkpoint's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin.
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a note text (extension lines after the root are allowed and ignored).
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |why: &str| NoteError::Malformed(format!("checkpoint: {why}"));
        let mut lines = text.split_terminator('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin"))?;
        let size = lines
            .next()
            .and_then(|s| {
                (!s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_digit())
                    && (s == "0" || !s.starts_with('0')))
                .then(|| s.parse::<u64>().ok())
                .flatten()
            })
            .ok_or_else(|| bad("bad tree size"))?;
        let root = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .ok_or_else(|| bad("bad root hash"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// The origin of a partition's log.
pub fn origin(prefix: &str, topic: &str, partition: i32) -> String {
    format!("{prefix}/{topic}/{partition}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// The example of Go's golang.org/x/mod/sumdb/note (its documentation and tests): our notes are
    /// byte-for-byte what that implementation writes and reads.
    #[test]
    fn sumdb_note_vector() {
        let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let signer = Signer::parse(skey).unwrap();
        assert_eq!(signer.verifier_key(), vkey);
        let note = signer.sign(text);
        assert_eq!(
            note,
            format!(
                "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            )
        );
        let v = Verifier::parse(vkey).unwrap();
        assert_eq!(v.open(&note).unwrap(), text);
        let forged = note.replace("cryptography", "cryptographY");
        assert_eq!(
            v.open(&forged).unwrap_err(),
            NoteError::Unsigned("PeterNeumann".into())
        );
        assert!(
            Verifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                .is_err()
        );
    }

    #[test]
    fn checkpoints_round_trip() {
        let (skey, vkey) = Signer::generate("audit.example/log").unwrap();
        let signer = Signer::parse(&skey).unwrap();
        let cp = Checkpoint {
            origin: origin("audit.example/log", "system.audit-log", 2),
            size: 20852163,
            root: [7u8; 32],
        };
        let note = signer.sign(&cp.text());
        let text = Verifier::parse(&vkey).unwrap().open(&note).unwrap();
        assert_eq!(Checkpoint::parse(text).unwrap(), cp);
        assert!(Checkpoint::parse("o\n01\nAAAA\n").is_err());
        // Another key's lines are ignored, ours still verifies.
        let (_, other) = Signer::generate("other").unwrap();
        assert!(Verifier::parse(&other).unwrap().open(&note).is_err());
    }
}
