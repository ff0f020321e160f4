//! Passwords, tokens and ids, as Rocket.Chat (Meteor) makes them.

use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ID_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";
const SECRET_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
/// bcrypt work factor (Rocket.Chat's default).
pub const BCRYPT_COST: u32 = 10;

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// A 17-character Meteor id.
pub fn new_id() -> String {
    random_from(ID_ALPHABET, 17)
}

/// A 43-character Meteor secret (login tokens, personal access tokens, passwords).
pub fn new_secret() -> String {
    random_from(SECRET_ALPHABET, 43)
}

/// Meteor's `Accounts._hashLoginToken`: base64(sha256(token)). Only this is stored.
pub fn hash_token(token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(token.as_bytes()))
}

/// The lowercase hex SHA-256 a DDP client sends as `password.digest`.
pub fn sha256_hex(password: &str) -> String {
    hex::encode(Sha256::digest(password.as_bytes()))
}

/// bcrypt(sha256 hex(password)): Rocket.Chat's stored form, so digest logins and
/// imported hashes verify alike. Slow by design: call off the async workers.
pub fn hash_password_digest(digest_hex: &str) -> anyhow::Result<String> {
    Ok(bcrypt::hash(digest_hex.to_lowercase(), BCRYPT_COST)?)
}

/// Checks a SHA-256 hex digest against a stored bcrypt hash. Slow by design.
pub fn verify_digest(digest_hex: &str, stored: &str) -> bool {
    bcrypt::verify(digest_hex.to_lowercase(), stored).unwrap_or(false)
}

/// Runs slow password work (bcrypt) on a thread of its own under Linux's `SCHED_IDLE`
/// policy: it gets the CPU only when nothing else wants it. The login semaphore bounds
/// how many run at once; the policy makes a burst of logins take the CPU that status
/// traffic leaves over instead of competing with the async workers and the writer.
/// (At equal priority two bcrypt threads multiplied the setStatus p99 several times on
/// 2 cores; at nice 10 they still took 30 % of setStatus throughput.) A machine
/// saturated by status traffic delays logins rather than the other way round.
/// None if the thread could not be started or panicked.
pub async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("statusd-bcrypt".into())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .ok()?;
    rx.await.ok()
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall wrappers with integer arguments and a valid pointer. On
    // Linux the policy and the nice value are per thread, and pid 0 names the calling
    // thread, so only this one is lowered.
    unsafe {
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// A bcrypt hash to verify against when the user does not exist, so an unknown user
/// costs the same time as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| bcrypt::hash(sha256_hex(&new_secret()), BCRYPT_COST).unwrap_or_default())
}

/// Compares two secrets in constant time.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_secrets_have_meteor_shapes() {
        let id = new_id();
        assert_eq!(id.len(), 17);
        assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)));
        let s = new_secret();
        assert_eq!(s.len(), 43);
        assert_ne!(s, new_secret());
    }

    #[test]
    fn token_hash_is_base64_sha256() {
        // sha256("abc") in base64
        assert_eq!(
            hash_token("abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn password_round_trip_through_digest() {
        let stored = bcrypt::hash(sha256_hex("s3cret"), 4).unwrap();
        assert!(verify_digest(&sha256_hex("s3cret"), &stored));
        assert!(verify_digest(&sha256_hex("s3cret").to_uppercase(), &stored));
        assert!(!verify_digest(&sha256_hex("wrong"), &stored));
        assert!(!verify_digest("x", "not a hash"));
    }
}
