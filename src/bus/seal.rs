//! The seal on every cluster message: HMAC-SHA256 over the subject and the payload
//! with the cluster's shared secret (`CLUSTER_SECRET`). Anyone who can publish on the
//! NATS subject but does not hold the secret cannot make a message an instance will
//! apply; a message changed on the way no longer verifies.
//!
//! Rotation: messages are sealed with the current secret and accepted under the
//! current or the previous one (`CLUSTER_SECRET_PREVIOUS`), so instances can be
//! restarted one at a time with a new secret (docs/cluster.md).
//!
//! A sealed message is `1` (the format's version), the 32-byte tag, then the payload.
//! The tag covers the subject too, so a message cannot be moved to another cluster's
//! subject that happens to share the secret.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The version byte of the format.
const VERSION: u8 = 1;
/// The length of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// Why a message was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Too short to hold a seal, or of an unknown format version.
    Unsealed,
    /// The seal does not verify under any accepted secret (forged, tampered with, or
    /// sealed with a secret this instance does not know).
    BadSeal,
}

impl Rejected {
    /// The `reason` label of the rejection counter.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Unsealed => "unsealed",
            Rejected::BadSeal => "bad_seal",
        }
    }
}

/// The secrets of one cluster.
#[derive(Clone)]
pub struct Sealer {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl std::fmt::Debug for Sealer {
    // Never the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("previous", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn new(current: &str, previous: Option<&str>) -> Sealer {
        Sealer {
            current: current.as_bytes().to_vec(),
            previous: previous.map(|p| p.as_bytes().to_vec()),
        }
    }

    /// The sealed message for `payload` on `subject`.
    pub fn seal(&self, subject: &str, payload: &[u8]) -> Vec<u8> {
        let tag = mac(&self.current, subject, payload).finalize().into_bytes();
        let mut out = Vec::with_capacity(1 + TAG_LEN + payload.len());
        out.push(VERSION);
        out.extend_from_slice(&tag);
        out.extend_from_slice(payload);
        out
    }

    /// The payload of a sealed message, if its seal verifies under the current or the
    /// previous secret (compared in constant time).
    pub fn open<'a>(&self, subject: &str, message: &'a [u8]) -> Result<&'a [u8], Rejected> {
        if message.len() < 1 + TAG_LEN || message[0] != VERSION {
            return Err(Rejected::Unsealed);
        }
        let (tag, payload) = message[1..].split_at(TAG_LEN);
        let verifies = |key: &[u8]| mac(key, subject, payload).verify_slice(tag).is_ok();
        if verifies(&self.current) || self.previous.as_deref().is_some_and(verifies) {
            Ok(payload)
        } else {
            Err(Rejected::BadSeal)
        }
    }
}

fn mac(key: &[u8], subject: &str, payload: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(b"statusd-cluster\0");
    m.update(subject.as_bytes());
    m.update(b"\0");
    m.update(payload);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a-secret-of-thirty-two-characters-at-least";
    const B: &str = "another-secret-of-thirty-two-characters-too";
    const SUBJECT: &str = "statusd.changes";

    #[test]
    fn a_sealed_message_opens_to_its_payload() {
        let s = Sealer::new(A, None);
        let sealed = s.seal(SUBJECT, b"{\"changes\":[]}");
        assert_eq!(s.open(SUBJECT, &sealed), Ok(&b"{\"changes\":[]}"[..]));
        assert_eq!(s.open(SUBJECT, &s.seal(SUBJECT, b"")), Ok(&b""[..]));
    }

    #[test]
    fn a_tampered_message_is_rejected() {
        let s = Sealer::new(A, None);
        let sealed = s.seal(SUBJECT, b"{\"user\":\"alice\"}");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(s.open(SUBJECT, &bad).is_err(), "byte {i} flipped");
        }
        let mut longer = sealed.clone();
        longer.push(b' ');
        assert_eq!(s.open(SUBJECT, &longer), Err(Rejected::BadSeal));
    }

    #[test]
    fn an_unsigned_or_truncated_message_is_rejected() {
        let s = Sealer::new(A, None);
        assert_eq!(s.open(SUBJECT, b""), Err(Rejected::Unsealed));
        assert_eq!(
            s.open(SUBJECT, b"{\"origin\":\"x\",\"changes\":[]}"),
            Err(Rejected::Unsealed),
            "plain JSON long enough to hold a tag"
        );
        assert_eq!(s.open(SUBJECT, b"{}"), Err(Rejected::Unsealed));
        let sealed = s.seal(SUBJECT, b"payload");
        for len in 0..sealed.len() {
            assert!(s.open(SUBJECT, &sealed[..len]).is_err(), "cut to {len}");
        }
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert_eq!(s.open(SUBJECT, &v2), Err(Rejected::Unsealed));
    }

    #[test]
    fn a_message_sealed_with_another_key_or_subject_is_rejected() {
        let ours = Sealer::new(A, None);
        let theirs = Sealer::new(B, None);
        let sealed = theirs.seal(SUBJECT, b"payload");
        assert_eq!(ours.open(SUBJECT, &sealed), Err(Rejected::BadSeal));
        let elsewhere = ours.seal("other.changes", b"payload");
        assert_eq!(ours.open(SUBJECT, &elsewhere), Err(Rejected::BadSeal));
    }

    #[test]
    fn the_previous_key_opens_but_never_seals() {
        let old = Sealer::new(A, None);
        let rotated = Sealer::new(B, Some(A));
        let from_old = old.seal(SUBJECT, b"payload");
        assert_eq!(rotated.open(SUBJECT, &from_old), Ok(&b"payload"[..]));
        let from_rotated = rotated.seal(SUBJECT, b"payload");
        assert_eq!(
            old.open(SUBJECT, &from_rotated),
            Err(Rejected::BadSeal),
            "sealed with the new secret"
        );
        assert_eq!(
            Sealer::new(B, None).open(SUBJECT, &from_rotated),
            Ok(&b"payload"[..])
        );
        assert!(!format!("{rotated:?}").contains(A) && !format!("{rotated:?}").contains(B));
    }
}
