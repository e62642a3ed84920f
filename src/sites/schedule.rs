//! Scan schedules: standard five-field cron expressions (minute hour day-of-month month
//! day-of-week, Sunday = 0, in UTC), never firing more often than every five minutes.
//! (croner rather than the `cron` crate: `cron` wants a seconds field and counts Sunday as 1,
//! which silently shifts a crontab written by hand by one day.)

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

pub const MIN_INTERVAL_MINUTES: i64 = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("is not a cron expression: {0}")]
    Syntax(String),
    #[error("needs five fields (minute hour day-of-month month day-of-week), e.g. `0 6 * * *`")]
    FieldCount,
    #[error("never fires")]
    Never,
    #[error("fires more often than every {MIN_INTERVAL_MINUTES} minutes")]
    TooFrequent,
}

/// Reads the expression without checking how often it fires.
fn read(text: &str) -> Result<Cron, ScheduleError> {
    let text = text.trim();
    if !text.starts_with('@') && text.split_whitespace().count() != 5 {
        return Err(ScheduleError::FieldCount);
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| ScheduleError::Syntax(e.to_string()))
}

/// Validates a schedule as typed: syntax, and no more often than every five minutes.
pub fn parse(text: &str) -> Result<Cron, ScheduleError> {
    let cron = read(text)?;
    // The tightest gap over the next firings decides (cron gaps vary, e.g. `*/7`).
    let mut previous: Option<DateTime<Utc>> = None;
    let mut now = Utc::now();
    for _ in 0..50 {
        let next = cron
            .find_next_occurrence(&now, false)
            .map_err(|_| ScheduleError::Never)?;
        if let Some(previous) = previous
            && (next - previous).num_minutes() < MIN_INTERVAL_MINUTES
        {
            return Err(ScheduleError::TooFrequent);
        }
        previous = Some(next);
        now = next;
    }
    Ok(cron)
}

/// The longest wait for the next firing of a valid schedule from any moment of the coming year
/// (sampled hourly; a schedule's firings repeat within a year): `None` if it never fires.
pub fn longest_gap(text: &str) -> Option<chrono::Duration> {
    let cron = read(text).ok()?;
    let start = Utc::now();
    let mut longest = chrono::Duration::zero();
    let mut at = start;
    while at - start < chrono::Duration::days(400) {
        let next = cron.find_next_occurrence(&at, false).ok()?;
        longest = longest.max(next - at);
        // Jump over long gaps at once; never step less than an hour.
        at = next.max(at + chrono::Duration::hours(1));
    }
    Some(longest)
}

/// The next time a stored (already validated) schedule fires after `after`.
pub fn next_run(text: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    read(text).ok()?.find_next_occurrence(&after, false).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crontab_expressions_parse_with_sunday_as_zero() {
        assert!(parse("0 6 * * *").is_ok());
        assert!(parse("*/15 * * * 1-5").is_ok());
        assert!(parse("@daily").is_ok());
        let start = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // 2026-11-23 is a Monday; `0 9 * * 0` is next Sunday.
        let next = next_run("0 9 * * 0", start).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-11-29T09:00:00+00:00");
    }

    #[test]
    fn the_longest_gap_between_firings_is_found() {
        let days = |text: &str| longest_gap(text).unwrap().num_hours() as f64 / 24.0;
        assert!(days("0 6 * * *") <= 1.0);
        assert!((days("0 6 * * 1") - 7.0).abs() < 0.01);
        assert!(days("0 6 1 * *") >= 28.0);
        // Every day, but only in January: almost a year between the 31st and the 1st.
        assert!(days("0 6 * 1 *") > 300.0);
        assert!(days("*/5 * * * *") < 0.01);
        // Every five minutes, but never in December: a month without a scan.
        assert!(days("*/5 * * 1-11 *") > 28.0);
    }

    #[test]
    fn bad_and_too_frequent_schedules_are_refused() {
        assert_eq!(parse("* * * * *").unwrap_err(), ScheduleError::TooFrequent);
        assert_eq!(
            parse("*/2 * * * *").unwrap_err(),
            ScheduleError::TooFrequent
        );
        assert_eq!(parse("0 6 * *").unwrap_err(), ScheduleError::FieldCount);
        assert_eq!(parse("0 0 6 * * *").unwrap_err(), ScheduleError::FieldCount);
        assert!(matches!(parse("61 * * * *"), Err(ScheduleError::Syntax(_))));
        assert!(matches!(
            parse("0 0 31 2 *"),
            Err(ScheduleError::Never | ScheduleError::Syntax(_))
        ));
    }
}
