//! Fetching a calendar: an ICS feed by a conditional GET (`If-None-Match`,
//! `If-Modified-Since`), a CalDAV collection by its `getctag` (PROPFIND, depth 0) and,
//! when that changed, a `calendar-query` REPORT with a time range (RFC 4791 §7.8).
//!
//! What a hostile URL can do (SSRF): the URL is http(s) only, without credentials;
//! every address it resolves to, and every literal address, must be public (not
//! loopback, private, link-local, unique-local, CGNAT, multicast or unspecified)
//! unless `CALENDAR_ALLOW_PRIVATE` says otherwise, checked in the DNS resolver itself
//! so a name cannot resolve to a public address at the check and a private one at the
//! connection; at most 3 redirects, each to http(s) and a public literal address;
//! `Authorization` is dropped on a redirect to another host (reqwest's rule). A
//! response is read up to 5 MiB and 15 s, then abandoned.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quick_xml::events::Event as Xml;
use reqwest::header::{
    HeaderMap, HeaderValue, CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use reqwest::{Method, StatusCode};

/// The most bytes of one response read.
pub const MAX_BODY: usize = 5 * 1024 * 1024;
/// The whole of one request, connection to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(15);
const MAX_REDIRECTS: usize = 3;

/// Is this address one a server should not fetch for a user unless allowed?
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The DNS resolver of the calendar client: the system's, less private addresses.
struct Guard {
    allow_private: bool,
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow || !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Is a URL's host a literal address that is refused?
pub fn literal_refused(url: &reqwest::Url, allow_private: bool) -> bool {
    if allow_private {
        return false;
    }
    url.host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
        .is_some_and(is_private)
}

/// The client every calendar fetch uses.
pub fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .dns_resolver(Arc::new(Guard { allow_private }))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            let to = attempt.url();
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if !matches!(to.scheme(), "http" | "https") {
                attempt.error("redirect to another scheme")
            } else if literal_refused(to, allow_private) {
                attempt.error("redirect to a private address")
            } else {
                attempt.follow()
            }
        }))
        .user_agent(concat!("statusd/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What the last successful fetch said about the content, to ask "changed since?".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub ctag: Option<String>,
}

/// What a fetch found.
#[derive(Debug)]
pub enum Fetched {
    /// The same as last time (304, or the same ctag).
    Unchanged,
    /// The calendar's iCalendar documents, and what to ask next time.
    Changed(Vec<String>, Validators),
}

/// Credentials for Basic authentication.
pub struct Login<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

fn auth(req: reqwest::RequestBuilder, login: Option<&Login>) -> reqwest::RequestBuilder {
    match login {
        Some(l) => req.basic_auth(l.username, Some(l.password)),
        None => req,
    }
}

/// Reads a body up to [`MAX_BODY`].
async fn body(mut resp: reqwest::Response) -> Result<String, String> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(format!("the calendar is larger than {MAX_BODY} bytes"));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(describe)? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(format!("the calendar is larger than {MAX_BODY} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    String::from_utf8(out).map_err(|_| "the calendar is not UTF-8".to_string())
}

/// An error's text without the URL (it may hold a token in its query).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

fn status_error(status: StatusCode) -> String {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            format!("the server refused the credentials ({status})")
        }
        _ => format!("the server answered {status}"),
    }
}

fn header(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// An ICS feed: a GET, conditional when `last` holds validators.
pub async fn ics(
    client: &reqwest::Client,
    url: &str,
    login: Option<&Login<'_>>,
    last: Option<&Validators>,
) -> Result<Fetched, String> {
    let mut req = auth(client.get(url), login).header("Accept", "text/calendar");
    if let Some(v) = last {
        if let Some(etag) = v
            .etag
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
        {
            req = req.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = v
            .last_modified
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
        {
            req = req.header(IF_MODIFIED_SINCE, lm);
        }
    }
    let resp = req.send().await.map_err(describe)?;
    let status = resp.status();
    if status == StatusCode::NOT_MODIFIED && last.is_some() {
        return Ok(Fetched::Unchanged);
    }
    if !status.is_success() {
        return Err(status_error(status));
    }
    let validators = Validators {
        etag: header(resp.headers(), ETAG),
        last_modified: header(resp.headers(), LAST_MODIFIED),
        ctag: None,
    };
    Ok(Fetched::Changed(vec![body(resp).await?], validators))
}

const PROPFIND_CTAG: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/">
  <d:prop><cs:getctag/><d:sync-token/></d:prop>
</d:propfind>"#;

fn calendar_query(from: &str, to: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
  <d:prop><d:getetag/><c:calendar-data/></d:prop>
  <c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">
    <c:time-range start="{from}" end="{to}"/>
  </c:comp-filter></c:comp-filter></c:filter>
</c:calendar-query>"#
    )
}

/// The text of every element with local name `name` in an XML document.
pub fn texts_of(xml: &str, name: &str) -> Result<Vec<String>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Xml::Start(e)) if e.local_name().as_ref() == name => {
                current = Some(String::new());
            }
            Ok(Xml::End(e)) if e.local_name().as_ref() == name => {
                if let Some(t) = current.take() {
                    out.push(t);
                }
            }
            Ok(Xml::Text(t)) => {
                if let Some(c) = current.as_mut() {
                    let raw = t.into_inner();
                    let text =
                        quick_xml::escape::unescape(&raw).map_err(|e| format!("bad XML: {e}"))?;
                    c.push_str(&text);
                }
            }
            Ok(Xml::GeneralRef(r)) => {
                if let Some(c) = current.as_mut() {
                    let entity = format!("&{};", r.into_inner());
                    let text = quick_xml::escape::unescape(&entity)
                        .map_err(|e| format!("bad XML: {e}"))?;
                    c.push_str(&text);
                }
            }
            Ok(Xml::CData(t)) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t.into_inner());
                }
            }
            Ok(Xml::Eof) => return Ok(out),
            Err(e) => return Err(format!("bad XML: {e}")),
            _ => {}
        }
    }
}

/// A CalDAV collection: unchanged when its ctag is the one of `last`, else the events
/// overlapping `from..to` (UTC, `YYYYMMDDTHHMMSSZ`).
pub async fn caldav(
    client: &reqwest::Client,
    url: &str,
    login: Option<&Login<'_>>,
    last: Option<&Validators>,
    from: &str,
    to: &str,
) -> Result<Fetched, String> {
    let propfind = Method::from_bytes(b"PROPFIND").map_err(|e| e.to_string())?;
    let resp = auth(client.request(propfind, url), login)
        .header("Depth", "0")
        .header(CONTENT_TYPE, "application/xml; charset=utf-8")
        .body(PROPFIND_CTAG)
        .send()
        .await
        .map_err(describe)?;
    if !resp.status().is_success() {
        return Err(status_error(resp.status()));
    }
    let props = body(resp).await?;
    let ctag = texts_of(&props, "getctag")?
        .into_iter()
        .chain(texts_of(&props, "sync-token")?)
        .map(|t| t.trim().to_string())
        .find(|t| !t.is_empty());
    if let (Some(now), Some(last)) = (&ctag, last) {
        if last.ctag.as_ref() == Some(now) {
            return Ok(Fetched::Unchanged);
        }
    }
    let report = Method::from_bytes(b"REPORT").map_err(|e| e.to_string())?;
    let resp = auth(client.request(report, url), login)
        .header("Depth", "1")
        .header(CONTENT_TYPE, "application/xml; charset=utf-8")
        .body(calendar_query(from, to))
        .send()
        .await
        .map_err(describe)?;
    if !resp.status().is_success() {
        return Err(status_error(resp.status()));
    }
    let xml = body(resp).await?;
    let docs = texts_of(&xml, "calendar-data")?;
    Ok(Fetched::Changed(
        docs,
        Validators {
            ctag,
            ..Validators::default()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn multistatus_calendar_data_is_read_with_its_escapes() {
        let xml = r#"<?xml version="1.0"?><multistatus xmlns="DAV:"
            xmlns:C="urn:ietf:params:xml:ns:caldav"><response><propstat><prop>
            <C:calendar-data>BEGIN:VCALENDAR&#13;
SUMMARY:a &amp; b&#13;
END:VCALENDAR</C:calendar-data></prop></propstat></response>
            <response><propstat><prop><C:calendar-data><![CDATA[X]]></C:calendar-data>
            </prop></propstat></response></multistatus>"#;
        let got = texts_of(xml, "calendar-data").unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].contains("SUMMARY:a & b\r\n"), "{:?}", got[0]);
        assert_eq!(got[1], "X");
    }
}
