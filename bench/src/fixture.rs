//! Seeding users. Two ways:
//!
//! * REST (`users.create` then `login` for each user): the honest path, bcrypt-bound
//!   (cost 10, about 15–30 per second per core here), so it is used for small runs
//!   (the smoke run) and measured as `users.create/s` in every run.
//! * Fixture: rows written straight into the SQLite file of a stopped server, after the
//!   server itself created the schema (its migrations) on first start. Every user gets
//!   the same bcrypt hash (a bcrypt hash carries its own salt, so one hash verifies the
//!   shared password for all) and one login token. This is a test fixture, used because
//!   10,000 (or 100,000) bcrypt hashes would take minutes of the 5-minute budget.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::http::{self, Auth, Client};

pub const USER_PASS: &str = "bench-user-pass";
const ID_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";

/// A seeded user: id, username and a login token.
#[derive(Clone, Debug)]
pub struct BenchUser {
    pub id: String,
    pub username: String,
    pub token: String,
}

pub fn username(i: usize) -> String {
    format!("benchuser{i:06}")
}

/// A 17-character Meteor-style id derived from the index (so reruns are reproducible).
pub fn fixture_id(i: usize) -> String {
    let mut n = i as u64 + 1_000_003;
    let mut out = vec![b'B'; 17];
    for slot in out.iter_mut().rev().take(12) {
        *slot = ID_ALPHABET[(n % ID_ALPHABET.len() as u64) as usize];
        n /= ID_ALPHABET.len() as u64;
    }
    String::from_utf8(out).expect("ascii")
}

pub fn fixture_token(i: usize) -> String {
    format!("benchtoken{i:033}")
}

pub fn hash_token(token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(token.as_bytes()))
}

pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `count` users (and a login token each, when `tokens`) into the database of a
/// stopped server.
pub fn write_users(db: &Path, count: usize, tokens: bool) -> anyhow::Result<Vec<BenchUser>> {
    let hash = bcrypt::hash(sha256_hex(USER_PASS), 10)?;
    let mut conn = rusqlite::Connection::open(db)
        .with_context(|| format!("opening the fixture database {}", db.display()))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let tx = conn.transaction()?;
    let mut users = Vec::with_capacity(count);
    {
        let mut ins_user = tx
            .prepare(
                "INSERT INTO users (id, username, username_lower, name, emails, password_hash, roles,
                    active, kind, status, status_default, status_connection, status_text, status_source,
                    status_expires_at, previous_state, utc_offset, created_at, updated_at, last_login)
                 VALUES (?1, ?2, ?2, ?3, ?4, ?5, '[\"user\"]', 1, 'user', 'offline', 'online', 'offline',
                    '', NULL, NULL, NULL, 0, ?6, ?6, NULL)",
            )
            .context("the users table no longer has the columns the fixture writes")?;
        let mut ins_token = tx
            .prepare(
                "INSERT INTO tokens (hashed, user_id, kind, name, last_part, created_at)
                 VALUES (?1, ?2, 'login', NULL, NULL, ?3)",
            )
            .context("the tokens table no longer has the columns the fixture writes")?;
        for i in 0..count {
            let u = BenchUser {
                id: fixture_id(i),
                username: username(i),
                token: fixture_token(i),
            };
            let emails = format!(
                r#"[{{"address":"{}@bench.local","verified":false}}]"#,
                u.username
            );
            ins_user.execute(rusqlite::params![
                u.id,
                u.username,
                format!("Bench User {i}"),
                emails,
                hash,
                now
            ])?;
            if tokens {
                ins_token.execute(rusqlite::params![hash_token(&u.token), u.id, now])?;
            }
            users.push(u);
        }
    }
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(users)
}

/// Adds the login token of each of the first `count` fixture users (a stopped server).
pub fn write_tokens(db: &Path, count: usize) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(db)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let tx = conn.transaction()?;
    {
        let mut ins = tx.prepare(
            "INSERT OR IGNORE INTO tokens (hashed, user_id, kind, name, last_part, created_at)
             VALUES (?1, ?2, 'login', NULL, NULL, ?3)",
        )?;
        for i in 0..count {
            ins.execute(rusqlite::params![
                hash_token(&fixture_token(i)),
                fixture_id(i),
                now
            ])?;
        }
    }
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

/// Creates users through `POST /api/v1/users.create` (as the admin) and logs each in
/// through `POST /api/v1/login`, `concurrency` requests at a time. Returns the users and
/// the time the creations took.
pub async fn rest_users(
    addr: std::net::SocketAddr,
    admin: &Auth,
    first: usize,
    count: usize,
    concurrency: usize,
    login: bool,
) -> anyhow::Result<(Vec<BenchUser>, std::time::Duration, std::time::Duration)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let next = Arc::new(AtomicUsize::new(first));
    let end = first + count;
    let t0 = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.min(count.max(1)) {
        let next = next.clone();
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await?;
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let name = username(i);
                let v = c
                    .call_json(http::post(
                        "/api/v1/users.create",
                        Some(&admin),
                        &serde_json::json!({
                            "username": name,
                            "name": format!("Bench User {i}"),
                            "email": format!("{name}@bench.local"),
                            "password": USER_PASS,
                        }),
                    ))
                    .await?;
                let id = v["user"]["_id"]
                    .as_str()
                    .context("users.create: no user._id")?
                    .to_string();
                made.push((
                    i,
                    BenchUser {
                        id,
                        username: name,
                        token: String::new(),
                    },
                ));
            }
            anyhow::Ok(made)
        }));
    }
    let mut users = Vec::new();
    for t in tasks {
        users.extend(t.await??);
    }
    users.sort_by_key(|(i, _)| *i);
    let mut users: Vec<BenchUser> = users.into_iter().map(|(_, u)| u).collect();
    let created = t0.elapsed();
    let t1 = std::time::Instant::now();
    if login {
        let chunk = users.len().div_ceil(concurrency.max(1)).max(1);
        let mut tasks = Vec::new();
        for part in users.chunks(chunk) {
            let mut part = part.to_vec();
            tasks.push(tokio::spawn(async move {
                let mut c = Client::connect(addr).await?;
                for u in part.iter_mut() {
                    u.token = log_in(&mut c, &u.username, USER_PASS).await?.token;
                }
                anyhow::Ok(part)
            }));
        }
        users.clear();
        for t in tasks {
            users.extend(t.await??);
        }
    }
    Ok((users, created, t1.elapsed()))
}

/// `POST /api/v1/login` with a username and password.
pub async fn log_in(c: &mut Client, user: &str, pass: &str) -> anyhow::Result<Auth> {
    let v = c
        .call_json(http::post(
            "/api/v1/login",
            None,
            &serde_json::json!({"user": user, "password": pass}),
        ))
        .await?;
    Ok(Auth {
        user_id: v["data"]["userId"]
            .as_str()
            .context("login: no userId")?
            .to_string(),
        token: v["data"]["authToken"]
            .as_str()
            .context("login: no authToken")?
            .to_string(),
    })
}
