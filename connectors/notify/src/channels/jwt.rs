//! The cryptography the providers need, on `ring`: JSON Web Tokens signed with ES256 (APNs provider tokens)
//! and RS256 (Google's OAuth2 JWT-bearer grant for FCM), HMAC-SHA256 and Ed25519 (Standard Webhooks v1 and
//! v1a), PEM/PKCS#8 keys, SHA-256 and random ids.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// base64url without padding (JWS).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Standard base64 with padding.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn unb64(text: &str) -> Result<Vec<u8>, KeyError> {
    STANDARD
        .decode(text.trim())
        .map_err(|e| KeyError(format!("invalid base64: {e}")))
}

/// The DER bytes of the first PEM block labelled `label` (e.g. `PRIVATE KEY`).
pub fn pem_block(pem: &str, label: &str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| KeyError(format!("no `{begin}` block")))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| KeyError(format!("no `{end}` line")))?
        + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD
        .decode(body)
        .map_err(|e| KeyError(format!("invalid PEM body: {e}")))
}

/// SHA-256, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A UUID (version 4 layout) from `n` random bytes, or from a hash when `seed` is given (deterministic ids,
/// e.g. an audit event per ledger transition, so a republished one is the same event).
pub fn uuid(seed: Option<&[u8]>) -> String {
    let mut b = [0u8; 16];
    match seed {
        Some(s) => {
            let d = ring::digest::digest(&ring::digest::SHA256, s);
            b.copy_from_slice(&d.as_ref()[..16]);
        }
        None => {
            if SystemRandom::new().fill(&mut b).is_err() {
                let d = ring::digest::digest(
                    &ring::digest::SHA256,
                    format!("{:?}", std::time::SystemTime::now()).as_bytes(),
                );
                b.copy_from_slice(&d.as_ref()[..16]);
            }
        }
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

fn signing_input(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// An ES256 (ECDSA P-256, SHA-256) signing key from a PKCS#8 PEM (`.p8` from Apple) or DER.
pub struct Es256Key {
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for Es256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Es256Key([hidden])")
    }
}

impl Es256Key {
    /// From PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Es256Key, KeyError> {
        Es256Key::from_pkcs8(&pem_block(pem, "PRIVATE KEY")?)
    }

    /// From PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<Es256Key, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der,
            &SystemRandom::new(),
        )
        .map_err(|e| KeyError(format!("not a PKCS#8 P-256 key: {e}")))?;
        Ok(Es256Key { pair })
    }

    /// The public key (uncompressed point), for verifiers.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// A JWT `header.claims.signature`.
    pub fn sign_jwt(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, KeyError> {
        let input = signing_input(header, claims);
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|e| KeyError(format!("ES256 signing failed: {e}")))?;
        Ok(format!("{input}.{}", b64url(sig.as_ref())))
    }
}

/// An RS256 (RSASSA-PKCS1-v1_5, SHA-256) signing key from a PKCS#8 PEM (a Google service account's
/// `private_key`).
pub struct Rs256Key {
    pair: RsaKeyPair,
}

impl std::fmt::Debug for Rs256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rs256Key([hidden])")
    }
}

impl Rs256Key {
    /// From PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Rs256Key, KeyError> {
        let der = pem_block(pem, "PRIVATE KEY")?;
        let pair = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| KeyError(format!("not a PKCS#8 RSA key: {e}")))?;
        Ok(Rs256Key { pair })
    }

    /// The public key (DER RSAPublicKey), for verifiers.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public().as_ref().to_vec()
    }

    /// A JWT `header.claims.signature`.
    pub fn sign_jwt(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, KeyError> {
        let input = signing_input(header, claims);
        let mut sig = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|e| KeyError(format!("RS256 signing failed: {e}")))?;
        Ok(format!("{input}.{}", b64url(&sig)))
    }
}

/// HMAC-SHA256 of `data` with `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&k, data).as_ref().to_vec()
}

/// Constant-time check of an HMAC-SHA256 tag.
pub fn hmac_sha256_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::verify(&k, data, tag).is_ok()
}

/// HMAC-SHA1 (Twilio's `X-Twilio-Signature` on status callbacks), base64.
pub fn hmac_sha1_b64(key: &[u8], data: &[u8]) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    b64(ring::hmac::sign(&k, data).as_ref())
}

/// An Ed25519 signing key (Standard Webhooks v1a, `whsk_…`: base64 of the 32-byte seed, or of the 64-byte
/// seed and public key).
pub struct Ed25519Key {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ed25519Key([hidden])")
    }
}

impl Ed25519Key {
    /// From the raw seed (32 bytes) or seed and public key (64 bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Ed25519Key, KeyError> {
        let pair = match bytes.len() {
            32 => Ed25519KeyPair::from_seed_unchecked(bytes),
            64 => Ed25519KeyPair::from_seed_and_public_key(&bytes[..32], &bytes[32..]),
            n => {
                return Err(KeyError(format!(
                    "an Ed25519 key is 32 or 64 bytes, found {n}"
                )));
            }
        }
        .map_err(|e| KeyError(format!("invalid Ed25519 key: {e}")))?;
        Ok(Ed25519Key { pair })
    }

    /// The public key (32 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// The signature of `data` (64 bytes).
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        self.pair.sign(data).as_ref().to_vec()
    }
}

/// Splits a JWT into its decoded header and claims, and the signing input and signature (for verifiers).
pub fn split_jwt(jwt: &str) -> Option<(serde_json::Value, serde_json::Value, String, Vec<u8>)> {
    let mut parts = jwt.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    Some((header, claims, format!("{h}.{c}"), sig))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn es256_tokens_verify_with_the_public_key() {
        let der = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        let key = Es256Key::from_pkcs8(der.as_ref()).unwrap();
        let jwt = key
            .sign_jwt(
                &serde_json::json!({"alg": "ES256", "kid": "ABC123DEFG"}),
                &serde_json::json!({"iss": "TEAM", "iat": 1}),
            )
            .unwrap();
        let (h, c, input, sig) = split_jwt(&jwt).unwrap();
        assert_eq!(
            (h["kid"].as_str(), c["iss"].as_str()),
            (Some("ABC123DEFG"), Some("TEAM"))
        );
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, key.public_key())
            .verify(input.as_bytes(), &sig)
            .unwrap();
        assert_eq!(uuid(Some(b"x")), uuid(Some(b"x")));
        assert_ne!(uuid(None), uuid(None));
    }
}
