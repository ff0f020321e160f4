//! Do-not-disturb schedules (statusd's own, issue 19): a weekly schedule in the user's
//! IANA time zone. Pure rules, no I/O, no clock reads: whether an instant falls in a
//! do-not-disturb window, the window's start and end, and the next start.
//!
//! A range `{days, start, end}` opens on each of its days at `start` local time and
//! closes at `end` the same day, or the next day when `end <= start` (overnight;
//! `start == end` is the whole 24 hours). Windows that overlap or touch merge into one
//! (a whole weekend is `sat`+`sun` 00:00–00:00). Local times are read in the zone as it
//! is on that date (zones from `chrono-tz`): a time skipped by a daylight-saving jump
//! happens when the clock jumps past it; a repeated time means its first occurrence.
//! A time-zone change of the user is a new schedule, evaluated the same way.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The claim id of a schedule's `busy` (`status::claims`).
pub const CLAIM_ID: &str = "statusd.dnd";
/// At most this many ranges in a schedule.
pub const MAX_RANGES: usize = 14;

/// The week's days, as the API spells them.
pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One weekly range: days (0 = Monday) and seconds since local midnight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub days: Vec<u8>,
    pub start: u32,
    pub end: u32,
}

/// A user's schedule, as stored (JSON in the user's `dnd` column).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    #[serde(rename = "timeZone")]
    pub time_zone: String,
    pub ranges: Vec<Range>,
    #[serde(default)]
    pub text: String,
    /// The start (ms) of the window whose claim the timer applied, if one is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<i64>,
}

/// Parses `"HH:MM"` or `"HH:MM:SS"` (seconds allowed so tests can use short windows).
pub fn parse_time(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let mut vals = [0u32; 3];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        vals[i] = p.parse().ok()?;
    }
    if vals[0] > 23 || vals[1] > 59 || vals[2] > 59 {
        return None;
    }
    Some(vals[0] * 3600 + vals[1] * 60 + vals[2])
}

/// `"HH:MM"`, or `"HH:MM:SS"` when there are seconds.
pub fn format_time(secs: u32) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

pub fn parse_day(s: &str) -> Option<u8> {
    DAYS.iter().position(|d| *d == s).map(|i| i as u8)
}

pub fn parse_zone(s: &str) -> Option<Tz> {
    s.parse::<Tz>().ok()
}

/// The instant of local `naive` in `tz`: a skipped time is when the clock jumps past
/// it, a repeated one its first occurrence.
fn instant(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    let mut n = naive;
    // Gaps are at most a few hours; step to the first local minute that exists.
    for _ in 0..(26 * 60) {
        match tz.from_local_datetime(&n) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, _) => return a.with_timezone(&Utc),
            LocalResult::None => {
                n = (n + Duration::minutes(1))
                    .with_second(0)
                    .unwrap_or(n + Duration::minutes(1))
            }
        }
    }
    naive.and_utc()
}

use chrono::Timelike;

/// The merged windows of `s` around `now` (a week either side), sorted.
fn windows(s: &Schedule, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let Some(tz) = parse_zone(&s.time_zone) else {
        return Vec::new();
    };
    let today: NaiveDate = now.with_timezone(&tz).date_naive();
    let mut raw = Vec::new();
    for offset in -8..=8i64 {
        let date = today + Duration::days(offset);
        let weekday = date.weekday().num_days_from_monday() as u8;
        for r in &s.ranges {
            if !r.days.contains(&weekday) {
                continue;
            }
            let at = |d: NaiveDate, secs: u32| {
                let t = chrono::NaiveTime::from_num_seconds_from_midnight_opt(secs, 0)
                    .unwrap_or_default();
                instant(tz, d.and_time(t))
            };
            let start = at(date, r.start);
            let end_date = if r.end <= r.start {
                date + Duration::days(1)
            } else {
                date
            };
            let end = at(end_date, r.end);
            if end > start {
                raw.push((start, end));
            }
        }
    }
    raw.sort();
    let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (a, b) in raw {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// The do-not-disturb window `now` falls in: its start and end.
pub fn window_at(s: &Schedule, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    windows(s, now)
        .into_iter()
        .find(|(a, b)| *a <= now && now < *b)
}

/// The next window start after `now`, within a week.
pub fn next_start(s: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    windows(s, now).into_iter().map(|w| w.0).find(|a| *a > now)
}

/// What the timer does for a schedule at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A window opened that was not applied yet: set the claim (window start, ms).
    Start(i64),
    /// The applied window closed: end the claim.
    End,
    Nothing,
}

/// The timer's decision. A window is applied once: a manual change during it wins until
/// the next window opens.
pub fn step(s: &Schedule, now: DateTime<Utc>) -> Step {
    match (window_at(s, now), s.applied) {
        (Some((a, _)), applied) if applied != Some(a.timestamp_millis()) => {
            Step::Start(a.timestamp_millis())
        }
        (Some(_), _) => Step::Nothing,
        (None, Some(_)) => Step::End,
        (None, None) => Step::Nothing,
    }
}

/// One range as a request gives it (REST body, DDP parameter).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputRange {
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
}

/// A schedule as a request gives it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Input {
    pub time_zone: String,
    pub ranges: Vec<InputRange>,
    pub text: Option<String>,
}

/// Why a schedule was refused: (error code, reason).
pub type Refusal = (&'static str, &'static str);

/// Checks a request into a schedule: a known zone, 1–14 ranges of 1–7 distinct days
/// and `HH:MM[:SS]` times; the text trimmed and cut to 120 characters.
pub fn check(input: Input) -> Result<Schedule, Refusal> {
    if parse_zone(&input.time_zone).is_none() {
        return Err((
            "error-invalid-time-zone",
            "timeZone must be an IANA time zone name",
        ));
    }
    if input.ranges.is_empty() || input.ranges.len() > MAX_RANGES {
        return Err(("error-invalid-ranges", "ranges must hold 1 to 14 ranges"));
    }
    let mut ranges = Vec::with_capacity(input.ranges.len());
    for r in &input.ranges {
        let mut days = Vec::new();
        for d in &r.days {
            match parse_day(d) {
                Some(d) if !days.contains(&d) => days.push(d),
                _ => {
                    return Err((
                        "error-invalid-ranges",
                        "days must be distinct: mon, tue, wed, thu, fri, sat, sun",
                    ))
                }
            }
        }
        let (Some(start), Some(end), false) =
            (parse_time(&r.start), parse_time(&r.end), days.is_empty())
        else {
            return Err((
                "error-invalid-ranges",
                "each range needs days and start and end as HH:MM or HH:MM:SS",
            ));
        };
        ranges.push(Range { days, start, end });
    }
    Ok(Schedule {
        time_zone: input.time_zone,
        ranges,
        text: input
            .text
            .as_deref()
            .map(crate::status::rules::normalize_text)
            .unwrap_or_default(),
        applied: None,
    })
}

/// The ranges as the API shows them.
pub fn output_ranges(s: &Schedule) -> Vec<InputRange> {
    s.ranges
        .iter()
        .map(|r| InputRange {
            days: r
                .days
                .iter()
                .map(|d| DAYS[*d as usize % 7].to_string())
                .collect(),
            start: format_time(r.start),
            end: format_time(r.end),
        })
        .collect()
}

/// A user's schedule (`dnd` as stored) as the API shows it at `now`:
/// `{"dnd": null | {ranges, text, timeZone}, "endsAt"?, "nextStart"?}`.
pub fn view_json(stored: Option<&str>, now: DateTime<Utc>) -> serde_json::Value {
    let Some(s) = stored.and_then(|j| serde_json::from_str::<Schedule>(j).ok()) else {
        return serde_json::json!({"dnd": null});
    };
    let mut v = serde_json::json!({
        "dnd": {"ranges": output_ranges(&s), "text": s.text, "timeZone": s.time_zone},
    });
    if let Some((_, end)) = window_at(&s, now) {
        v["endsAt"] = crate::model::iso(&end).into();
    }
    if let Some(next) = next_start(&s, now) {
        v["nextStart"] = crate::model::iso(&next).into();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sched(tz: &str, ranges: &[(&[&str], &str, &str)]) -> Schedule {
        Schedule {
            time_zone: tz.into(),
            ranges: ranges
                .iter()
                .map(|(d, a, b)| Range {
                    days: d.iter().map(|d| parse_day(d).unwrap()).collect(),
                    start: parse_time(a).unwrap(),
                    end: parse_time(b).unwrap(),
                })
                .collect(),
            text: String::new(),
            applied: None,
        }
    }

    const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri"];

    /// (zone, ranges, now) → the window (start, end) or none, and the next start.
    #[test]
    fn the_truth_table_of_windows() {
        type Row = (
            &'static str,
            Vec<(&'static [&'static str], &'static str, &'static str)>,
            &'static str,
            Option<(&'static str, &'static str)>,
            Option<&'static str>,
        );
        let evening = || vec![(WEEKDAYS, "18:00", "09:00")];
        let rows: Vec<Row> = vec![
            // Berlin, winter (UTC+1): Tuesday 20:00 local is in Tuesday's overnight window
            (
                "Europe/Berlin",
                evening(),
                "2026-01-13T19:00:00Z",
                Some(("2026-01-13T17:00:00Z", "2026-01-14T08:00:00Z")),
                Some("2026-01-14T17:00:00Z"),
            ),
            // Tuesday 12:00 local: outside, next at 18:00
            (
                "Europe/Berlin",
                evening(),
                "2026-01-13T11:00:00Z",
                None,
                Some("2026-01-13T17:00:00Z"),
            ),
            // Friday night runs into Saturday 09:00, then nothing until Monday 18:00
            (
                "Europe/Berlin",
                evening(),
                "2026-01-17T07:59:59Z",
                Some(("2026-01-16T17:00:00Z", "2026-01-17T08:00:00Z")),
                Some("2026-01-19T17:00:00Z"),
            ),
            (
                "Europe/Berlin",
                evening(),
                "2026-01-17T08:00:00Z",
                None,
                Some("2026-01-19T17:00:00Z"),
            ),
            // the end is exclusive, the start inclusive
            (
                "Europe/Berlin",
                evening(),
                "2026-01-13T17:00:00Z",
                Some(("2026-01-13T17:00:00Z", "2026-01-14T08:00:00Z")),
                Some("2026-01-14T17:00:00Z"),
            ),
            // weeknights + whole weekend merge: Friday 18:00 → Monday 00:00 (Sunday
            // night is not a weeknight here: Monday's range opens at 18:00)
            (
                "Europe/Berlin",
                vec![
                    (WEEKDAYS, "18:00", "09:00"),
                    (&["sat", "sun"], "00:00", "00:00"),
                ],
                "2026-01-18T12:00:00Z",
                Some(("2026-01-16T17:00:00Z", "2026-01-18T23:00:00Z")),
                Some("2026-01-19T17:00:00Z"),
            ),
            // DST spring forward (Berlin 2026-03-29 02:00 → 03:00): Saturday's overnight
            // window ends at 09:00 CEST (UTC+2)
            (
                "Europe/Berlin",
                vec![(&["sat"], "22:00", "09:00")],
                "2026-03-29T06:00:00Z",
                Some(("2026-03-28T21:00:00Z", "2026-03-29T07:00:00Z")),
                Some("2026-04-04T20:00:00Z"),
            ),
            // a start in the skipped hour (02:30) starts when the clock jumps: 03:00 CEST
            (
                "Europe/Berlin",
                vec![(&["sun"], "02:30", "04:00")],
                "2026-03-29T01:00:00Z",
                Some(("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z")),
                Some("2026-04-05T00:30:00Z"),
            ),
            // DST fall back (Berlin 2026-10-25 03:00 → 02:00): 02:30 twice, first counts
            (
                "Europe/Berlin",
                vec![(&["sun"], "02:30", "05:00")],
                "2026-10-25T00:30:00Z",
                Some(("2026-10-25T00:30:00Z", "2026-10-25T04:00:00Z")),
                Some("2026-11-01T01:30:00Z"),
            ),
            // the overnight window across fall back lasts one hour longer (25 h night)
            (
                "Europe/Berlin",
                vec![(&["sat"], "18:00", "18:00")],
                "2026-10-25T12:00:00Z",
                Some(("2026-10-24T16:00:00Z", "2026-10-25T17:00:00Z")),
                Some("2026-10-31T17:00:00Z"),
            ),
            // New York's DST (2026-03-08, not Berlin's date): Sunday evening is EDT
            (
                "America/New_York",
                vec![(&["sun"], "18:00", "09:00")],
                "2026-03-09T12:00:00Z",
                Some(("2026-03-08T22:00:00Z", "2026-03-09T13:00:00Z")),
                Some("2026-03-15T22:00:00Z"),
            ),
            // the Sunday before, still EST
            (
                "America/New_York",
                vec![(&["sun"], "18:00", "09:00")],
                "2026-03-02T12:00:00Z",
                Some(("2026-03-01T23:00:00Z", "2026-03-02T14:00:00Z")),
                Some("2026-03-08T22:00:00Z"),
            ),
            // seconds in the times (short windows in tests)
            (
                "UTC",
                vec![(
                    &["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    "10:00:05",
                    "10:00:07",
                )],
                "2026-01-13T10:00:06Z",
                Some(("2026-01-13T10:00:05Z", "2026-01-13T10:00:07Z")),
                Some("2026-01-14T10:00:05Z"),
            ),
            // an unknown zone never opens
            (
                "Mars/Olympus",
                evening(),
                "2026-01-13T19:00:00Z",
                None,
                None,
            ),
        ];
        for (tz, ranges, now, want, next) in rows {
            let s = sched(tz, &ranges);
            let now_t = utc(now);
            let case = format!("{tz} {ranges:?} at {now}");
            assert_eq!(
                window_at(&s, now_t),
                want.map(|(a, b)| (utc(a), utc(b))),
                "{case}"
            );
            if next.is_some() || want.is_none() {
                assert_eq!(next_start(&s, now_t), next.map(utc), "{case}: next");
            }
        }
    }

    #[test]
    fn a_zone_change_moves_the_window() {
        let mut s = sched("Europe/Berlin", &[(WEEKDAYS, "18:00", "09:00")]);
        let now = utc("2026-01-13T18:00:00Z"); // 19:00 Berlin, 13:00 New York
        assert!(window_at(&s, now).is_some());
        s.time_zone = "America/New_York".into();
        assert_eq!(window_at(&s, now), None);
        assert_eq!(next_start(&s, now), Some(utc("2026-01-13T23:00:00Z")));
    }

    #[test]
    fn the_timer_applies_each_window_once() {
        let mut s = sched("UTC", &[(&["tue"], "10:00", "11:00")]);
        let inside = utc("2026-01-13T10:30:00Z");
        let start = utc("2026-01-13T10:00:00Z").timestamp_millis();
        assert_eq!(step(&s, inside), Step::Start(start));
        s.applied = Some(start);
        assert_eq!(step(&s, inside), Step::Nothing, "a manual change wins");
        assert_eq!(step(&s, utc("2026-01-13T11:00:00Z")), Step::End);
        // the next week's window applies again
        assert_eq!(
            step(&s, utc("2026-01-20T10:00:00Z")),
            Step::Start(utc("2026-01-20T10:00:00Z").timestamp_millis())
        );
        s.applied = None;
        assert_eq!(step(&s, utc("2026-01-13T12:00:00Z")), Step::Nothing);
    }

    #[test]
    fn times_and_days_parse() {
        assert_eq!(parse_time("18:00"), Some(64_800));
        assert_eq!(parse_time("09:00:30"), Some(32_430));
        for bad in [
            "24:00",
            "9:00",
            "12:60",
            "12",
            "12:00:00:00",
            "ab:cd",
            "12:00:60",
            "",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(format_time(64_800), "18:00");
        assert_eq!(format_time(32_430), "09:00:30");
        assert_eq!(parse_day("sun"), Some(6));
        assert_eq!(parse_day("Sunday"), None);
        assert!(parse_zone("Europe/Berlin").is_some());
        assert!(parse_zone("CET+1").is_none());
    }
}
