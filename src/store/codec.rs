//! The row codecs both stores share: times as BIGINT/INTEGER milliseconds since the
//! epoch, statuses by their names. Written once, so the two stores cannot read the same
//! value two ways.

use chrono::{DateTime, TimeZone, Utc};

use crate::model::{ConnStatus, Status};

/// A time as stored: milliseconds since the epoch.
pub(super) fn ms(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A stored time; one out of chrono's range reads as the epoch rather than failing the
/// whole load.
pub(super) fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// A stored status; an unknown name reads as offline.
pub(super) fn status_of(s: &str) -> Status {
    Status::parse(s).unwrap_or(Status::Offline)
}

/// A stored connection status; anything but `away` reads as online.
pub(super) fn conn_status_of(s: &str) -> ConnStatus {
    if s == "away" {
        ConnStatus::Away
    } else {
        ConnStatus::Online
    }
}

pub(super) fn conn_status_str(s: ConnStatus) -> &'static str {
    match s {
        ConnStatus::Online => "online",
        ConnStatus::Away => "away",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written() {
        let t = from_ms(1_700_000_000_123);
        assert_eq!(ms(&t), 1_700_000_000_123);
        assert_eq!(from_ms(i64::MAX), from_ms(0), "out of range: the epoch");
        for s in [Status::Online, Status::Away, Status::Busy, Status::Offline] {
            assert_eq!(status_of(s.as_str()), s);
        }
        assert_eq!(status_of("bogus"), Status::Offline);
        for s in [ConnStatus::Online, ConnStatus::Away] {
            assert_eq!(conn_status_of(conn_status_str(s)), s);
        }
    }
}
