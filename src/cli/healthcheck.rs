//! `statusd healthcheck`: asks the server this configuration describes (`BIND_IP`,
//! `PORT`) for `GET /api/health` and exits 0 when it answers 200. Container images
//! built `FROM scratch` have no curl or wget: their `HEALTHCHECK` runs this instead.
//! Plain HTTP/1.1 over a std socket, with deadlines: it must never hang the runtime
//! that calls it.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::Config;

/// How long the whole check may take, per step.
const TIMEOUT: Duration = Duration::from_secs(5);
/// More than a health answer ever is; a longer one is not statusd's.
const MAX_ANSWER: u64 = 64 * 1024;

/// The address to ask: the bound one, or loopback when the server listens on all.
pub fn target(cfg: &Config) -> SocketAddr {
    let ip = match cfg.bind_ip {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, cfg.port)
}

/// The check: `Ok(body)` on a 200, an error naming what failed otherwise.
pub fn check(cfg: &Config) -> anyhow::Result<String> {
    let addr = target(cfg);
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET /api/health HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: statusd-healthcheck\r\n\
         Connection: close\r\n\r\n"
    )
    .with_context(|| format!("cannot send to {addr}"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .with_context(|| format!("no answer from {addr}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or("");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim())
        .unwrap_or("");
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(format!("healthy: {body}")),
        Some(code) => bail!("unhealthy: HTTP {code} from {addr}: {body}"),
        None => bail!("not an HTTP answer from {addr}"),
    }
}
