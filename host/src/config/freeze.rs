//! A tier's freeze windows (`freeze = [{ from = "Fri 16:00", to = "Mon 08:00", tz = "Europe/Berlin" }]`): weekly spans of wall-clock time in a named time zone, parsed once, asked by the planner whether they hold at a given instant.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

const MINUTES_A_WEEK: i64 = 7 * 24 * 60;

/// A moment of the week: `Fri 16:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekTime {
    /// Minutes since Monday 00:00.
    minute: i64,
}

impl FromStr for WeekTime {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shape = || format!("{text:?} is not a time of the week (use e.g. \"Fri 16:00\")");
        let (day, time) = text.trim().split_once(' ').ok_or_else(shape)?;
        let day: Weekday = day.parse().map_err(|_| shape())?;
        let (hour, minute) = time.trim().split_once(':').ok_or_else(shape)?;
        let (hour, minute): (i64, i64) =
            (hour.parse().map_err(|_| shape())?, minute.parse().map_err(|_| shape())?);
        if !(0..24).contains(&hour) || !(0..60).contains(&minute) || time.trim().len() != 5 {
            return Err(shape());
        }
        Ok(WeekTime { minute: i64::from(day.num_days_from_monday()) * 1440 + hour * 60 + minute })
    }
}

impl fmt::Display for WeekTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(self.minute / 1440) as usize];
        write!(f, "{day} {:02}:{:02}", self.minute % 1440 / 60, self.minute % 60)
    }
}

/// One weekly freeze window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeWindow {
    from: WeekTime,
    to: WeekTime,
    tz: Tz,
}

impl FreezeWindow {
    /// A window from `from` to `to` (wrapping past Sunday midnight when
    /// `to` comes first in the week) in `tz`; refused when it has no length.
    pub fn new(from: WeekTime, to: WeekTime, tz: Tz) -> Result<Self, String> {
        if from == to {
            return Err(format!("the window from {from} to {to} has no length"));
        }
        Ok(FreezeWindow { from, to, tz })
    }

    /// When the window holds at `now`: the instant it ends.
    pub fn holds_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.span_at(now).map(|(_, end)| end)
    }

    /// When the window holds at `now`: the instants it began and ends.
    pub fn span_at(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let local = now.with_timezone(&self.tz).naive_local();
        let minute = i64::from(local.weekday().num_days_from_monday()) * 1440
            + i64::from(local.hour()) * 60
            + i64::from(local.minute());
        let (from, to) = (self.from.minute, self.to.minute);
        let inside =
            if from < to { from <= minute && minute < to } else { minute >= from || minute < to };
        if !inside {
            return None;
        }
        let left = (to - minute).rem_euclid(MINUTES_A_WEEK);
        let gone = (minute - from).rem_euclid(MINUTES_A_WEEK);
        let start_of_minute = local.with_second(0).and_then(|t| t.with_nanosecond(0))?;
        let start = self.instant(start_of_minute - Duration::minutes(gone), |at| at <= now);
        let end = self.instant(start_of_minute + Duration::minutes(left), |at| at > now);
        // A wall-clock end the clock change put behind us (an end in the
        // repeated hour, read on its second pass): the window is over.
        (end > now).then_some((start, end))
    }

    /// The UTC instant of a wall-clock time in the window's zone: of a time
    /// a clock change repeats, the earliest that `fits` (else the latest);
    /// a time it skips counts from the first valid minute after it.
    fn instant(
        &self,
        mut wall: NaiveDateTime,
        fits: impl Fn(DateTime<Utc>) -> bool,
    ) -> DateTime<Utc> {
        for _ in 0..180 {
            let local = self.tz.from_local_datetime(&wall);
            let (earliest, latest) = (local.earliest(), local.latest());
            if let (Some(earliest), Some(latest)) = (earliest, latest) {
                let earliest = earliest.with_timezone(&Utc);
                return if fits(earliest) { earliest } else { latest.with_timezone(&Utc) };
            }
            wall += Duration::minutes(1);
        }
        Utc.from_utc_datetime(&wall)
    }
}

impl fmt::Display for FreezeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {} ({})", self.from, self.to, self.tz)
    }
}

/// A time zone by its IANA name, for a window's `tz`.
pub fn zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("{name:?} is not a time zone (use an IANA name, e.g. \"Europe/Berlin\")")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn window(from: &str, to: &str, tz: &str) -> FreezeWindow {
        FreezeWindow::new(from.parse().unwrap(), to.parse().unwrap(), zone(tz).unwrap()).unwrap()
    }

    #[test]
    fn a_weekend_window_holds_from_friday_to_monday_in_its_zone() {
        let w = window("Fri 16:00", "Mon 08:00", "Europe/Berlin");
        // 2026-12-04 is a Friday; Berlin is UTC+1 in December.
        assert_eq!(w.holds_at(at("2026-12-04T14:59:00Z")), None);
        assert_eq!(w.holds_at(at("2026-12-04T15:00:00Z")), Some(at("2026-12-07T07:00:00Z")));
        assert_eq!(w.holds_at(at("2026-12-06T23:30:00Z")), Some(at("2026-12-07T07:00:00Z")));
        assert_eq!(w.holds_at(at("2026-12-07T07:00:00Z")), None);
    }

    #[test]
    fn a_window_inside_one_day_and_across_a_clock_change() {
        let w = window("Sun 01:00", "Sun 05:00", "Europe/Berlin");
        // 2027-03-28: Berlin skips from 02:00 to 03:00 (UTC+1 to UTC+2).
        assert_eq!(w.holds_at(at("2027-03-28T00:30:00Z")), Some(at("2027-03-28T03:00:00Z")));
        assert_eq!(w.holds_at(at("2027-03-28T03:00:00Z")), None);
    }

    #[test]
    fn a_window_ending_in_the_repeated_hour_ends_after_now_and_never_in_the_past() {
        // 2027-10-31: Berlin's 02:00-03:00 comes twice (CEST, then CET).
        let w = window("Sat 22:00", "Sun 02:45", "Europe/Berlin");
        // 02:10 CEST, the first pass: ends at 02:45 CEST.
        assert_eq!(w.holds_at(at("2027-10-31T00:10:00Z")), Some(at("2027-10-31T00:45:00Z")));
        // 02:10 CET, the second pass: 02:45 CET is still ahead.
        assert_eq!(w.holds_at(at("2027-10-31T01:10:00Z")), Some(at("2027-10-31T01:45:00Z")));
        assert_eq!(w.holds_at(at("2027-10-31T01:45:00Z")), None);
    }

    #[test]
    fn malformed_times_and_zones_say_what_to_write() {
        assert_eq!(
            "Fri 4pm".parse::<WeekTime>().unwrap_err(),
            "\"Fri 4pm\" is not a time of the week (use e.g. \"Fri 16:00\")"
        );
        assert!("Fri 24:00".parse::<WeekTime>().is_err());
        assert!("Fri 9:00".parse::<WeekTime>().is_err());
        assert_eq!(
            zone("Mars/Olympus").unwrap_err(),
            "\"Mars/Olympus\" is not a time zone (use an IANA name, e.g. \"Europe/Berlin\")"
        );
        let same = "Fri 16:00".parse::<WeekTime>().unwrap();
        assert!(FreezeWindow::new(same, same, Tz::UTC).is_err());
    }
}
