//! The password rules: one is required where one is set, and only Rocket.Chat's stored
//! form is kept: bcrypt of the password's lowercase hex SHA-256, so a DDP login (which
//! sends the digest), a REST login and a hash imported from Rocket.Chat verify alike.

use crate::auth::secrets;
use crate::error::{Error, Result};

use super::METHOD;

/// An empty password is refused where a password is being set.
pub fn required(plain: &str) -> Result<()> {
    if plain.is_empty() {
        return Err(Error::refused("error-invalid-password", "Password is required").by(METHOD));
    }
    Ok(())
}

/// The stored form of `plain`. Slow by design (bcrypt): never on the async workers
/// or the writer thread; see `hash_off_thread`.
pub fn hash(plain: &str) -> Result<String> {
    secrets::hash_password_digest(&secrets::sha256_hex(plain))
        .map_err(|_| Error::Unavailable("hashing failed".into()))
}

/// `hash` on a thread of its own at the lowest priority (`secrets::off_thread`).
pub async fn hash_off_thread(plain: &str) -> Result<String> {
    let plain = plain.to_string();
    secrets::off_thread(move || hash(&plain))
        .await
        .ok_or_else(|| Error::Unavailable("hashing failed".into()))?
}

/// Does the SHA-256 hex `digest` match the stored hash? Slow by design, as `hash`.
pub fn verify_digest(digest: &str, stored: &str) -> bool {
    secrets::verify_digest(digest, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hashes_to_the_bcrypt_of_its_digest() {
        assert!(required("").is_err());
        assert!(required(" ").is_ok());
        let stored = hash("s3cret").unwrap();
        assert!(verify_digest(&secrets::sha256_hex("s3cret"), &stored));
        assert!(verify_digest(
            &secrets::sha256_hex("s3cret").to_uppercase(),
            &stored
        ));
        assert!(!verify_digest(&secrets::sha256_hex("other"), &stored));
    }
}
