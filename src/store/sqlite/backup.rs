//! `statusd backup` and `statusd restore` for the SQLite store.
//!
//! A backup copies the live database with SQLite's online backup API, safe while a
//! server writes to it: the copy reads inside one read transaction held across all
//! its steps, so it is one consistent snapshot (every commit acknowledged before the
//! backup began is in it) and never restarts however busy the server is. In WAL mode a
//! reader does not block the writer; the copy still goes in steps of pages with a short
//! pause between them so it does not hog the disk.
//!
//! Every file is written atomically: into a temporary file (0600) in the target's
//! folder, fsynced, then renamed over the target, and the folder fsynced. A restore
//! first checks the file is a statusd database (its schema is there, `quick_check`
//! passes, not from a newer statusd) and refuses while a process has the target open.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use rusqlite::backup::Backup;
use rusqlite::{Connection, OpenFlags};

/// Pages copied per step (4 MiB at SQLite's default 4 KiB page) and the pause between
/// steps.
const PAGES_PER_STEP: i32 = 1024;
const PAUSE: Duration = Duration::from_millis(5);

/// Copies the database at `db` (which may be in use by a server) to `dest`. Returns
/// the number of pages copied.
pub fn backup(db: &Path, dest: &Path) -> anyhow::Result<i32> {
    backup_in_steps(db, dest, PAGES_PER_STEP)
}

fn backup_in_steps(db: &Path, dest: &Path, pages_per_step: i32) -> anyhow::Result<i32> {
    if same_file(db, dest) {
        bail!("{} is the database itself", dest.display());
    }
    let src = open(db)?;
    // The read transaction that makes the copy one snapshot (see the module header).
    src.execute_batch("BEGIN")?;
    src.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .with_context(|| format!("reading {}", db.display()))?;
    let pages = write_atomically(dest, |tmp| copy(&src, tmp, pages_per_step))?;
    src.execute_batch("COMMIT")?;
    Ok(pages)
}

/// Replaces the database at `db` with the statusd database in `file`. Refuses when
/// `file` is not one, or while a process (a running server) has `db` open.
pub fn restore(file: &Path, db: &Path) -> anyhow::Result<()> {
    if same_file(file, db) {
        bail!("{} is the database itself", file.display());
    }
    if !file.is_file() {
        bail!("{}: no such file", file.display());
    }
    let src = open(file)?;
    verify(&src, file)?;
    if in_use(db)? {
        bail!(
            "{} is in use (a server is running on it?): stop the server, then restore",
            db.display()
        );
    }
    if let Some(dir) = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .with_context(|| format!("creating the folder {}", dir.display()))?;
    }
    write_atomically(db, |tmp| copy(&src, tmp, PAGES_PER_STEP).map(|_| ()))?;
    Ok(())
}

/// Is `file` a statusd database this binary can open?
fn verify(conn: &Connection, file: &Path) -> anyhow::Result<()> {
    let not_ours = || format!("{} is not a statusd database", file.display());
    let has = |table: &str| -> anyhow::Result<bool> {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            [table],
            |r| r.get(0),
        )
        .with_context(not_ours)
    };
    if !has("schema_migrations")? || !has("users")? || !has("settings")? {
        bail!(not_ours());
    }
    let version: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .with_context(not_ours)?;
    let known = super::MIGRATIONS.len() as i64;
    match version {
        None => bail!(not_ours()),
        Some(v) if v > known => bail!(
            "{} has schema version {v}, newer than this statusd knows ({known})",
            file.display()
        ),
        Some(_) => {}
    }
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .with_context(not_ours)?;
    if check != "ok" {
        bail!("{} is damaged: {check}", file.display());
    }
    Ok(())
}

fn open(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Copies `src` into the (empty) database file `tmp`, `pages` at a time.
fn copy(src: &Connection, tmp: &Path, pages: i32) -> anyhow::Result<i32> {
    let mut dst = Connection::open(tmp).with_context(|| format!("opening {}", tmp.display()))?;
    let total = {
        let backup = Backup::new(src, &mut dst)?;
        backup.run_to_completion(pages, PAUSE, None)?;
        backup.progress().pagecount
    };
    dst.close()
        .map_err(|(_, e)| e)
        .with_context(|| format!("closing {}", tmp.display()))?;
    Ok(total)
}

/// Writes `target` through a temporary 0600 file in its folder: `fill` writes it, then
/// it is fsynced and renamed over `target`, any `-wal`/`-shm` of the old file removed
/// first (they would be replayed onto the new one), and the folder fsynced.
fn write_atomically<T>(
    target: &Path,
    fill: impl FnOnce(&Path) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let dir = match target.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .with_context(|| format!("{} names no file", target.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let result = fill(&tmp).and_then(|value| {
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", tmp.display()))?;
        for suffix in ["-wal", "-shm"] {
            let mut side = target.as_os_str().to_owned();
            side.push(suffix);
            match std::fs::remove_file(&side) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("removing {}", Path::new(&side).display()))
                }
            }
        }
        std::fs::rename(&tmp, target)
            .with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
        Ok(value)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Does another process have the database at `db` open? Every SQLite connection to a
/// WAL database holds a shared lock on the "DMS" byte (offset 128) of its `-shm` file
/// while open; SQLite itself tests that byte to learn whether it is the first
/// connection. A lock there held by another process means a server (or a command) is on
/// the database.
#[cfg(unix)]
fn in_use(db: &Path) -> anyhow::Result<bool> {
    use std::os::unix::io::AsRawFd;
    let mut shm = db.as_os_str().to_owned();
    shm.push("-shm");
    let file = match OpenOptions::new().read(true).write(true).open(&shm) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("opening {}", Path::new(&shm).display())),
    };
    // SAFETY: a plain-old-data struct, zeroed is a valid value; fcntl only reads and
    // writes it during the call.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = 128;
    lock.l_len = 1;
    // SAFETY: a valid open descriptor and a pointer to a live flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("testing the lock of {}", Path::new(&shm).display()));
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(not(unix))]
fn in_use(_db: &Path) -> anyhow::Result<bool> {
    Ok(false)
}

/// [`in_use`] for a process that has the database open itself (an admin command
/// waiting for the server, `crate::external`). Closing any descriptor of a file drops
/// every POSIX lock the process holds on it, the ones its own SQLite connections hold
/// included: so the `-shm` file is opened once and never closed.
#[cfg(unix)]
pub fn others_have_open(db: &Path) -> anyhow::Result<bool> {
    use std::os::unix::io::AsRawFd;
    static SHM: std::sync::Mutex<Option<(PathBuf, File)>> = std::sync::Mutex::new(None);
    let mut held = SHM.lock().unwrap_or_else(|e| e.into_inner());
    if held.as_ref().is_none_or(|(p, _)| p != db) {
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        match OpenOptions::new().read(true).write(true).open(&shm) {
            // Another database's file is never closed either: leaked, not dropped.
            Ok(f) => {
                if let Some((_, old)) = held.replace((db.to_path_buf(), f)) {
                    std::mem::forget(old);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(e).with_context(|| format!("opening {}", Path::new(&shm).display()))
            }
        }
    }
    let Some((_, file)) = held.as_ref() else {
        return Ok(false);
    };
    // SAFETY: as in `in_use`.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = 128;
    lock.l_len = 1;
    // SAFETY: a valid open descriptor and a pointer to a live flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("testing the lock of the -shm file");
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(not(unix))]
pub fn others_have_open(_db: &Path) -> anyhow::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    use std::sync::Arc;

    /// A copy in many small steps while another connection commits all the time
    /// finishes (it does not restart on each commit) and holds every row committed
    /// before it began, and only whole commits.
    #[test]
    fn a_stepped_backup_is_one_snapshot_under_concurrent_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (n INTEGER PRIMARY KEY, pad BLOB, twin INTEGER);",
        )
        .unwrap();
        // ~2000 pages, so a step of 8 pages takes hundreds of steps.
        for n in 0..2000 {
            conn.execute(
                "INSERT INTO t (n, pad, twin) VALUES (?1, zeroblob(3000), ?1)",
                [n],
            )
            .unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let last = Arc::new(AtomicI64::new(1999));
        let writer = {
            let (db, stop, last) = (db.clone(), stop.clone(), last.clone());
            std::thread::spawn(move || {
                let conn = Connection::open(&db).unwrap();
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                let mut n = 2000;
                let mut commits = 0;
                while !stop.load(Ordering::SeqCst) {
                    // Two rows per commit: a torn copy would hold one without the other.
                    conn.execute_batch(&format!(
                        "BEGIN; INSERT INTO t (n, pad, twin) VALUES ({n}, zeroblob(3000), {n});\
                         UPDATE t SET twin = {n} WHERE n = 0; COMMIT;"
                    ))
                    .unwrap();
                    last.store(n, Ordering::SeqCst);
                    n += 1;
                    commits += 1;
                }
                commits
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let before = last.load(Ordering::SeqCst);
        let out = dir.path().join("copy.db");
        let pages = backup_in_steps(&db, &out, 8).unwrap();
        stop.store(true, Ordering::SeqCst);
        let commits = writer.join().unwrap();
        assert!(pages > 1000, "{pages} pages");
        assert!(commits > 0);
        let copy = Connection::open(&out).unwrap();
        let check: String = copy
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let max: i64 = copy
            .query_row("SELECT MAX(n) FROM t", [], |r| r.get(0))
            .unwrap();
        assert!(
            max >= before,
            "the copy ends at {max}, {before} was committed before it"
        );
        let twin: i64 = copy
            .query_row("SELECT twin FROM t WHERE n = 0", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            twin.max(1999),
            max,
            "row 0 and the last row come from one commit"
        );
        let count: i64 = copy
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, max + 1);
    }
}
