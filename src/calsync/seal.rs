//! Calendar passwords at rest: ChaCha20-Poly1305 (`ring`, which rustls already builds)
//! under a 32-byte server key, a fresh random nonce per password, and the calendar's id
//! as associated data, so a sealed password copied onto another calendar's row does not
//! open. Stored as `v1:` + base64(nonce ‖ ciphertext ‖ tag).
//!
//! The key: `CALENDAR_SECRET_KEY` (64 hex digits or base64 of 32 bytes); without it,
//! with SQLite, `calendar.key` beside the database, made (mode 0600) on first need. A
//! PostgreSQL cluster shares no directory, so there the variable is required to store
//! a password (every instance must hold the same key).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};

const PREFIX: &str = "v1:";

/// Where the key comes from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// `CALENDAR_SECRET_KEY`, as given.
    Given(String),
    /// A key file (made when missing).
    File(PathBuf),
    None,
}

impl KeySource {
    /// From the configuration: the variable, else a file beside a SQLite database.
    pub fn of(given: Option<&str>, database_url: &str) -> KeySource {
        if let Some(k) = given.filter(|k| !k.trim().is_empty()) {
            return KeySource::Given(k.trim().to_string());
        }
        match database_url.strip_prefix("sqlite://") {
            Some(path) => {
                let dir = Path::new(path).parent().unwrap_or(Path::new("."));
                KeySource::File(dir.join("calendar.key"))
            }
            None => KeySource::None,
        }
    }

    /// The 32-byte key; an error names what is wrong (never the key).
    pub fn key(&self) -> Result<[u8; 32], String> {
        match self {
            KeySource::Given(k) => decode(k).ok_or_else(|| {
                "CALENDAR_SECRET_KEY must be 32 bytes, as 64 hex digits or base64".to_string()
            }),
            KeySource::File(path) => file_key(path),
            KeySource::None => {
                Err("set CALENDAR_SECRET_KEY to store calendar passwords (PostgreSQL)".to_string())
            }
        }
    }
}

fn decode(k: &str) -> Option<[u8; 32]> {
    let k = k.trim();
    let bytes = hex::decode(k)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(k).ok())?;
    bytes.try_into().ok()
}

fn file_key(path: &Path) -> Result<[u8; 32], String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return decode(&text).ok_or_else(|| format!("{} does not hold a key", path.display()));
    }
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let write = opts
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, hex::encode(key).as_bytes()));
    match write {
        Ok(()) => Ok(key),
        // Made by someone else meanwhile: read theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => file_key(path),
        Err(e) => Err(format!("cannot write {}: {e}", path.display())),
    }
}

fn aead(key: &[u8; 32]) -> Result<LessSafeKey, String> {
    UnboundKey::new(&CHACHA20_POLY1305, key)
        .map(LessSafeKey::new)
        .map_err(|_| "bad key".to_string())
}

/// Seals `secret` for calendar `id`.
pub fn seal(key: &[u8; 32], id: &str, secret: &str) -> Result<String, String> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let mut data = secret.as_bytes().to_vec();
    aead(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(id.as_bytes()),
            &mut data,
        )
        .map_err(|_| "sealing failed".to_string())?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(out)
    ))
}

/// Opens what [`seal`] made for calendar `id`.
pub fn open(key: &[u8; 32], id: &str, sealed: &str) -> Result<String, String> {
    let bad = || "the stored password does not open with this key".to_string();
    let raw = sealed
        .strip_prefix(PREFIX)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .ok_or_else(bad)?;
    if raw.len() < NONCE_LEN {
        return Err(bad());
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
    let mut data = rest.to_vec();
    let plain = aead(key)?
        .open_in_place(nonce, Aad::from(id.as_bytes()), &mut data)
        .map_err(|_| bad())?;
    String::from_utf8(plain.to_vec()).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_passwords_open_only_for_their_calendar_and_key() {
        let key = [7u8; 32];
        let sealed = seal(&key, "cal1", "hunter2").unwrap();
        assert!(sealed.starts_with("v1:") && !sealed.contains("hunter2"));
        assert_eq!(open(&key, "cal1", &sealed).unwrap(), "hunter2");
        assert!(
            open(&key, "cal2", &sealed).is_err(),
            "bound to its calendar"
        );
        assert!(
            open(&[8u8; 32], "cal1", &sealed).is_err(),
            "bound to the key"
        );
        assert_ne!(
            sealed,
            seal(&key, "cal1", "hunter2").unwrap(),
            "fresh nonce"
        );
        assert!(open(&key, "cal1", "v1:AAAA").is_err());
    }

    #[test]
    fn keys_are_hex_or_base64_of_32_bytes_or_a_file() {
        let hexed = hex::encode([1u8; 32]);
        assert_eq!(KeySource::of(Some(&hexed), "x").key().unwrap(), [1u8; 32]);
        let b64 = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
        assert_eq!(KeySource::of(Some(&b64), "x").key().unwrap(), [2u8; 32]);
        assert!(KeySource::of(Some("short"), "x").key().is_err());
        assert!(KeySource::of(None, "postgres://db").key().is_err());
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/statusd.db", dir.path().display());
        let first = KeySource::of(None, &url).key().unwrap();
        assert_eq!(KeySource::of(None, &url).key().unwrap(), first, "kept");
    }
}
