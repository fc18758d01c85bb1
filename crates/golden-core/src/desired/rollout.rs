//! Safe-rollout settings: promotion rules (`[policy.<marker>]`), maintenance windows and the
//! time zones they are read in.
//!
//! Times are computed with `jiff` and its bundled copy of the IANA time zone database, so a
//! plan is the same on every machine whatever its `/usr/share/zoneinfo` holds, and daylight
//! saving changes are the database's business, not golden's: a window `Sat 02:00-06:00` in
//! `Europe/Berlin` starts at 01:00 UTC in winter and 00:00 UTC in summer. A window start that
//! does not exist on a spring-forward day (02:30 on the last Sunday of March) starts when the
//! clock resumes (03:30); one that exists twice on a fall-back day starts at the first.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanTotal, Timestamp, Unit};
use serde::Serialize;

use crate::ids::MarkerName;

/// `[policy.<marker>]`: when a marker may move to a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// The marker may only point at a version this marker has pointed at ...
    pub after: MarkerName,
    /// ... for at least this long (zero: once its pools run it).
    pub soak: Soak,
}

/// How long a version must have soaked under the `after` marker: `72h`, `3d`, `90m`, `1w`
/// (a day is 24 hours here: a soak is a stretch of time, not a calendar date).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Soak(SignedDuration);

impl Soak {
    pub fn duration(self) -> SignedDuration {
        self.0
    }
}

impl FromStr for Soak {
    type Err = String;

    fn from_str(text: &str) -> Result<Soak, String> {
        let bad = || format!("`{text}` is not a duration; write it like `72h`, `3d`, `90m` or `1w`");
        let span: Span = text.trim().parse().map_err(|_| bad())?;
        let seconds = span.total(SpanTotal::from(Unit::Second).days_are_24_hours()).map_err(|_| bad())?;
        if seconds < 0.0 {
            return Err(format!("`{text}` is negative; a soak is a duration such as `72h`"));
        }
        Ok(Soak(SignedDuration::from_secs(seconds as i64)))
    }
}

impl fmt::Display for Soak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        match secs {
            0 => f.write_str("0h"),
            s if s % 86_400 == 0 && s >= 86_400 * 2 => write!(f, "{}d", s / 86_400),
            s if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl Serialize for Soak {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A site's time zone: an IANA name such as `Europe/Berlin`; UTC when a site names none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    pub fn utc() -> Zone {
        Zone { name: "UTC".to_owned(), tz: TimeZone::UTC }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// Time zone names close to `name`, for a "did you mean" hint.
    pub fn suggest(name: &str) -> Option<String> {
        let lower = name.to_ascii_lowercase();
        jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_owned())
            .map(|n| (strsim::jaro_winkler(&lower, &n.to_ascii_lowercase()), n))
            .filter(|(score, _)| *score > 0.85)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, n)| n)
    }
}

impl FromStr for Zone {
    type Err = String;

    fn from_str(name: &str) -> Result<Zone, String> {
        let tz = jiff::tz::db().get(name).map_err(|_| {
            format!("`{name}` is not a time zone golden knows (an IANA name such as `Europe/Berlin`)")
        })?;
        Ok(Zone { name: name.to_owned(), tz })
    }
}

impl Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

/// A weekly maintenance window: `Sat 02:00-06:00`, `Mon-Fri 22:00-04:00` (an end before the
/// start runs past midnight into the next day), `Sat,Sun 01:00-05:00`, or `daily 02:00-04:00`
/// (also written without the days). Days name the day a window starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Monday first.
    days: [bool; 7],
    start: Time,
    end: Time,
    text: String,
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn day_index(word: &str) -> Option<usize> {
    let word = word.trim().to_ascii_lowercase();
    DAYS.iter().position(|(short, day)| {
        word == *short || word == format!("{day:?}").to_ascii_lowercase() // "saturday"
    })
}

impl FromStr for Window {
    type Err = String;

    fn from_str(text: &str) -> Result<Window, String> {
        let bad = |why: &str| {
            format!("window `{text}`: {why}; write it like `Sat 02:00-06:00` or `Mon-Fri 22:00-04:00`")
        };
        let (days_text, times) = match text.trim().rsplit_once(' ') {
            Some((d, t)) => (d.trim(), t),
            None => ("daily", text.trim()),
        };
        let mut days = [false; 7];
        if days_text.eq_ignore_ascii_case("daily") {
            days = [true; 7];
        } else {
            for part in days_text.split(',') {
                match part.split_once('-') {
                    Some((a, b)) => {
                        let a = day_index(a).ok_or_else(|| bad(&format!("`{a}` is not a day")))?;
                        let b = day_index(b).ok_or_else(|| bad(&format!("`{b}` is not a day")))?;
                        let mut i = a;
                        loop {
                            days[i] = true;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => {
                        let i =
                            day_index(part).ok_or_else(|| bad(&format!("`{}` is not a day", part.trim())))?;
                        days[i] = true;
                    }
                }
            }
        }
        let (start, end) = times.split_once('-').ok_or_else(|| bad("no `-` between start and end"))?;
        let time = |t: &str| -> Result<Time, String> {
            let (h, m) = t.trim().split_once(':').ok_or_else(|| bad(&format!("`{t}` is not HH:MM")))?;
            let (h, m): (i8, i8) = (
                h.parse().map_err(|_| bad(&format!("`{t}` is not HH:MM")))?,
                m.parse().map_err(|_| bad(&format!("`{t}` is not HH:MM")))?,
            );
            // 24:00 is the end of the day.
            if (h, m) == (24, 0) {
                return Ok(Time::MAX);
            }
            Time::new(h, m, 0, 0).map_err(|_| bad(&format!("`{t}` is not a time of day")))
        };
        let (start, end) = (time(start)?, time(end)?);
        if start == end {
            return Err(bad("it starts when it ends"));
        }
        Ok(Window { days, start, end, text: text.trim().to_owned() })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// An instant as people read it in plans, reasons and reports: `2026-12-05 01:00 UTC`.
pub fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// When a push may run: at once (inside a window), or from a window start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    Now,
    At(Timestamp),
}

impl Window {
    /// Whether `now` is inside the window in `zone`, and if not, when the window next opens.
    pub fn opening(&self, now: Timestamp, zone: &Zone) -> Opening {
        let today = zone.tz().to_datetime(now).date();
        // Yesterday's window may run past midnight into today; a week and a day ahead covers
        // every weekday.
        for offset in -1..=8 {
            let Ok(date) = today.checked_add(Span::new().days(offset)) else { continue };
            let Some((start, end)) = self.on(date, zone) else { continue };
            if start <= now && now < end {
                return Opening::Now;
            }
            if start > now {
                return Opening::At(start);
            }
        }
        // Unreachable for a window with at least one day; a window with none never opens.
        Opening::Now
    }

    /// The window that starts on `date`, as instants, if it has one.
    fn on(&self, date: Date, zone: &Zone) -> Option<(Timestamp, Timestamp)> {
        let index = DAYS.iter().position(|(_, d)| *d == date.weekday())?;
        if !self.days[index] {
            return None;
        }
        let at = |d: Date, t: Time| zone.tz().to_ambiguous_timestamp(d.to_datetime(t)).compatible().ok();
        let start = at(date, self.start)?;
        let end = if self.end == Time::MAX {
            at(date.tomorrow().ok()?, Time::MIN)?
        } else if self.end > self.start {
            at(date, self.end)?
        } else {
            at(date.tomorrow().ok()?, self.end)?
        };
        Some((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn berlin() -> Zone {
        "Europe/Berlin".parse().expect("Berlin is in the bundled database")
    }

    #[test]
    fn instants_read_in_utc_to_the_minute() {
        assert_eq!(utc(Timestamp::UNIX_EPOCH), "1970-01-01 00:00 UTC");
        assert_eq!(utc(ts("2026-12-03T02:00:00Z")), "2026-12-03 02:00 UTC");
        assert_eq!(utc(ts("2026-12-03T02:00:59.9Z")), "2026-12-03 02:00 UTC");
    }

    #[test]
    fn soak_reads_hours_days_and_weeks() {
        let secs = |s: &str| s.parse::<Soak>().map(|s| s.duration().as_secs());
        assert_eq!(secs("72h"), Ok(72 * 3600));
        assert_eq!(secs("3d"), Ok(72 * 3600));
        assert_eq!(secs("1w"), Ok(7 * 24 * 3600));
        assert_eq!(secs("90m"), Ok(90 * 60));
        assert_eq!(secs("1h30m"), Ok(90 * 60));
        assert!("soon".parse::<Soak>().is_err());
        assert!("-2h".parse::<Soak>().is_err());
        assert_eq!("72h".parse::<Soak>().map(|s| s.to_string()).as_deref(), Ok("3d"));
        assert_eq!("36h".parse::<Soak>().map(|s| s.to_string()).as_deref(), Ok("36h"));
    }

    #[test]
    fn windows_parse_days_ranges_lists_and_midnight() {
        let w: Window = "Mon-Fri 22:00-04:00".parse().expect("valid");
        assert_eq!(w.days, [true, true, true, true, true, false, false]);
        let w: Window = "Fri-Mon 01:00-02:00".parse().expect("valid");
        assert_eq!(w.days, [true, false, false, false, true, true, true]);
        let w: Window = "sat,Sunday 01:00-05:00".parse().expect("valid");
        assert_eq!(w.days, [false, false, false, false, false, true, true]);
        assert_eq!("02:00-04:00".parse::<Window>().map(|w| w.days), Ok([true; 7]));
        assert!("Sat 02:00".parse::<Window>().is_err());
        assert!("Caturday 02:00-03:00".parse::<Window>().is_err());
        assert!("Sat 25:00-26:00".parse::<Window>().is_err());
        assert!("Sat 02:00-02:00".parse::<Window>().is_err());
    }

    #[test]
    fn inside_a_window_pushes_now_outside_it_waits_for_the_next_start() {
        let w: Window = "Sat 02:00-06:00".parse().expect("valid");
        let utc = Zone::utc();
        // 2026-12-05 is a Saturday.
        assert_eq!(w.opening(ts("2026-12-05T03:00:00Z"), &utc), Opening::Now);
        assert_eq!(w.opening(ts("2026-12-05T06:00:00Z"), &utc), Opening::At(ts("2026-12-12T02:00:00Z")));
        assert_eq!(w.opening(ts("2026-12-02T18:00:00Z"), &utc), Opening::At(ts("2026-12-05T02:00:00Z")));
        // A window past midnight is open early on the next day.
        let night: Window = "Fri 22:00-04:00".parse().expect("valid");
        assert_eq!(night.opening(ts("2026-12-05T03:00:00Z"), &utc), Opening::Now);
    }

    #[test]
    fn window_starts_follow_daylight_saving_time() {
        let w: Window = "Sat 02:00-06:00".parse().expect("valid");
        // Summer time (UTC+2): Saturday 2026-10-24 02:00 in Berlin is 00:00 UTC.
        assert_eq!(w.opening(ts("2026-10-21T12:00:00Z"), &berlin()), Opening::At(ts("2026-10-24T00:00:00Z")));
        // Across the change of Sunday 2026-10-25: planned in summer time, a Monday window
        // opens in winter time (UTC+1), at 01:00 UTC, not 00:00.
        let monday: Window = "Mon 02:00-06:00".parse().expect("valid");
        assert_eq!(
            monday.opening(ts("2026-10-23T12:00:00Z"), &berlin()),
            Opening::At(ts("2026-10-26T01:00:00Z"))
        );
        // Spring forward, Sunday 2026-03-29: 02:30 does not exist in Berlin; the window opens
        // when the clock resumes, 03:30 summer time (01:30 UTC).
        let gap: Window = "Sun 02:30-05:00".parse().expect("valid");
        assert_eq!(
            gap.opening(ts("2026-03-27T12:00:00Z"), &berlin()),
            Opening::At(ts("2026-03-29T01:30:00Z"))
        );
    }

    #[test]
    fn zones_come_from_the_bundled_database() {
        assert!("Europe/Berlin".parse::<Zone>().is_ok());
        assert!("Mars/Olympus".parse::<Zone>().is_err());
        assert_eq!(Zone::suggest("Europe/Berln").as_deref(), Some("Europe/Berlin"));
    }
}
