//! DSSE envelopes (`https://github.com/secure-systems-lab/dsse`): a payload
//! signed over its pre-authentication encoding
//! `DSSEv1 <len(type)> <type> <len(body)> <body>` with an Ed25519 or ECDSA
//! P-256 (SHA-256, DER signature) key from a PKCS#8 PEM file, and checked
//! with the public key's PEM. The key never leaves this module: not in
//! output, logs or files (the envelope names it by a key id only).

use crate::util::error::{Error, Result};
use ring::signature::{self, KeyPair};
use serde_json::{json, Value};
use sha2::Digest;
use std::path::{Path, PathBuf};

/// A private key loaded for signing.
pub enum Key {
    Ed25519(signature::Ed25519KeyPair),
    Ecdsa(signature::EcdsaKeyPair),
}

/// The DER inside the first PEM block labelled `label`.
fn pem(text: &str, labels: &[&str]) -> Option<(String, Vec<u8>)> {
    for label in labels {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        if let Some(start) = text.find(&begin) {
            let rest = &text[start + begin.len()..];
            let body: String = rest[..rest.find(&end)?].split_whitespace().collect();
            return Some((label.to_string(), crate::util::base64::decode(&body)?));
        }
    }
    None
}

/// Where a signing key is: its PKCS#8 PEM file and, for an encrypted one,
/// the environment variable that holds its passphrase.
#[derive(Debug, Clone)]
pub struct KeyFile {
    pub path: PathBuf,
    pub passphrase_env: String,
}

/// The variable an encrypted key's passphrase is read from by default.
pub const PASSPHRASE_ENV: &str = "STRATA_SIGN_PASSPHRASE";

impl Key {
    /// Load the PKCS#8 PEM private key `file` names, decrypting it with
    /// the passphrase in its variable when it is encrypted (PBES2).
    pub fn load(file: &KeyFile) -> Result<Key> {
        let bad = |why: String| {
            Error::input(format!("sign key `{}`: {why}", file.path.display())).help(
                "give a PKCS#8 PEM key: `openssl genpkey -algorithm ed25519 -out key.pem` \
                 (or `-algorithm EC -pkeyopt ec_paramgen_curve:P-256`); add `-aes256` to \
                 encrypt it, with its passphrase in the environment",
            )
        };
        let text =
            std::fs::read_to_string(&file.path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let der = match pem(&text, &["ENCRYPTED PRIVATE KEY", "PRIVATE KEY"]) {
            Some((label, der)) if label.starts_with("ENCRYPTED") => {
                decrypt(&der, file).map_err(bad)?
            }
            Some((_, der)) => der,
            None => return Err(bad("no `PRIVATE KEY` (PKCS#8) block in it".into())),
        };
        if let Ok(k) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            return Ok(Key::Ed25519(k));
        }
        let rng = ring::rand::SystemRandom::new();
        signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng)
            .map(Key::Ecdsa)
            .map_err(|_| bad("it is neither an Ed25519 nor an ECDSA P-256 key".into()))
    }

    fn public(&self) -> &[u8] {
        match self {
            Key::Ed25519(k) => k.public_key().as_ref(),
            Key::Ecdsa(k) => k.public_key().as_ref(),
        }
    }

    /// The key id: the SHA-256 of the raw public key, in hex.
    pub fn id(&self) -> String {
        format!("{:x}", sha2::Sha256::digest(self.public()))
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match self {
            Key::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            Key::Ecdsa(k) => k
                .sign(&ring::rand::SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| Error::input("the ECDSA signature could not be made")),
        }
    }
}

/// The plain PKCS#8 DER inside an encrypted one, with the passphrase from
/// the key file's variable. The passphrase is dropped as soon as it is used.
fn decrypt(der: &[u8], file: &KeyFile) -> std::result::Result<Vec<u8>, String> {
    let var = &file.passphrase_env;
    let passphrase = std::env::var(var)
        .map_err(|_| format!("the key is encrypted and `{var}` holds no passphrase"))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|e| format!("not an encrypted PKCS#8 key: {e}"))?;
    let plain = info.decrypt(passphrase.as_bytes()).map_err(|_| {
        format!("the passphrase in `{var}` does not open it (or its cipher is not PBES2 with AES)")
    })?;
    Ok(plain.as_bytes().to_vec())
}

/// DSSE's pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// `payload` in a DSSE envelope signed with `key`.
pub fn envelope(payload_type: &str, payload: &[u8], key: &Key) -> Result<Value> {
    let sig = key.sign(&pae(payload_type, payload))?;
    Ok(json!({
        "payloadType": payload_type,
        "payload": crate::util::base64::encode(payload),
        "signatures": [{"keyid": key.id(), "sig": crate::util::base64::encode(&sig)}],
    }))
}

/// Check `envelope` against the public key PEM at `public`: the payload,
/// when a signature verifies.
pub fn open(envelope: &Value, public: &Path) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::input(format!("the envelope does not verify: {why}"));
    let text = std::fs::read_to_string(public)
        .map_err(|e| Error::input(format!("cannot read `{}`: {e}", public.display())))?;
    let (_, spki) = pem(&text, &["PUBLIC KEY"]).ok_or_else(|| {
        Error::input(format!(
            "`{}` holds no `PUBLIC KEY` block",
            public.display()
        ))
    })?;
    // The SubjectPublicKeyInfo's last bytes are the raw key: 32 for Ed25519,
    // 65 (uncompressed point) for P-256.
    let (alg, raw): (&dyn signature::VerificationAlgorithm, &[u8]) = match spki.len() {
        44 => (&signature::ED25519, &spki[12..]),
        91 => (&signature::ECDSA_P256_SHA256_ASN1, &spki[26..]),
        _ => return Err(bad("the public key is neither Ed25519 nor ECDSA P-256")),
    };
    let payload_type = envelope["payloadType"]
        .as_str()
        .ok_or_else(|| bad("no payloadType"))?;
    let payload = envelope["payload"]
        .as_str()
        .and_then(crate::util::base64::decode)
        .ok_or_else(|| bad("no payload"))?;
    let message = pae(payload_type, &payload);
    let key = signature::UnparsedPublicKey::new(alg, raw);
    let sigs = envelope["signatures"]
        .as_array()
        .ok_or_else(|| bad("no signatures"))?;
    let ok = sigs
        .iter()
        .filter_map(|s| s["sig"].as_str().and_then(crate::util::base64::decode))
        .any(|sig| key.verify(&message, &sig).is_ok());
    match ok {
        true => Ok(payload),
        false => Err(bad("no signature matches the key")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(super::pae("t", b"ab"), b"DSSEv1 1 t 2 ab");
    }
}
