//! The refresh contract between the webhook and `agent watch`: the opt-in annotation, the
//! interval grammar and its bounds, and where the watcher publishes its version marker and
//! status file (names an app may watch, which no secret path can take).

use std::fmt;
use std::time::Duration;

/// Pod annotation opting a pod in (or, with `off`, out of an install-wide default):
/// `flyte-secret-agent/refresh: "5m"`.
pub const REFRESH_ANNOTATION: &str = "flyte-secret-agent/refresh";

/// Shortest refresh interval: every tick is one batch per backend per pod, and thousands of
/// pods multiply it.
pub const MIN_INTERVAL: Duration = Duration::from_secs(30);
/// Longest refresh interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Directory under the mount path holding [`VERSION_FILE`] and [`STATUS_FILE`]. It starts
/// with `..`, which [`crate::SecretPath`] refuses at the top level, so no secret's file can
/// take (or be taken by) it, and the writer's sweep never touches it (not a `..<stamp>`).
pub const STATE_DIR: &str = "..flyte-secret-agent";
/// The version marker: a decimal number, bumped after each publish of a changed set.
pub const VERSION_FILE: &str = "version";
/// The watcher's status (JSON: last success, last error, consecutive failures).
pub const STATUS_FILE: &str = "status";

/// Why an interval does not parse or is out of bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalError(String);

impl fmt::Display for IntervalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IntervalError {}

/// What a refresh setting asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// No refresh (`off`, `false` or `0`).
    Off,
    /// Refresh every interval (±10% jitter), within [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
    Every(Duration),
}

/// Parses a refresh setting: `off`, or a duration of `<n>h`, `<n>m`, `<n>s` parts in that
/// order (`90s`, `5m`, `1h30m`), bounded by [`MIN_INTERVAL`] and [`MAX_INTERVAL`].
pub fn parse(text: &str) -> Result<Refresh, IntervalError> {
    let text = text.trim();
    if matches!(text, "off" | "false" | "0") {
        return Ok(Refresh::Off);
    }
    let every = parse_duration(text)?;
    if every < MIN_INTERVAL || every > MAX_INTERVAL {
        return Err(IntervalError(format!(
            "refresh interval {text:?} is out of bounds ({} to {})",
            format(MIN_INTERVAL),
            format(MAX_INTERVAL)
        )));
    }
    Ok(Refresh::Every(every))
}

/// Parses `<n>h<n>m<n>s` (each part optional, at least one, in that order), without bounds.
pub fn parse_duration(text: &str) -> Result<Duration, IntervalError> {
    let bad = || {
        IntervalError(format!(
            "refresh interval {text:?} is not a duration like 30s, 5m or 1h30m (or off)"
        ))
    };
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_unit = 0u64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = match rest.as_bytes().get(digits) {
            Some(b'h') => 3600,
            Some(b'm') => 60,
            Some(b's') => 1,
            _ => return Err(bad()),
        };
        // Units strictly decreasing: `5m1h` and `5m5m` are typos, not durations.
        if last_unit != 0 && unit >= last_unit {
            return Err(bad());
        }
        last_unit = unit;
        total = total.checked_add(n * unit).ok_or_else(bad)?;
        rest = &rest[digits + 1..];
    }
    Ok(Duration::from_secs(total))
}

/// The canonical form the webhook hands the agent: whole seconds (`300s`).
pub fn format(every: Duration) -> String {
    format!("{}s", every.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_bounds() {
        assert_eq!(parse("5m"), Ok(Refresh::Every(Duration::from_secs(300))));
        assert_eq!(
            parse("1h30m"),
            Ok(Refresh::Every(Duration::from_secs(5400)))
        );
        assert_eq!(parse(" 30s "), Ok(Refresh::Every(MIN_INTERVAL)));
        assert_eq!(parse("24h"), Ok(Refresh::Every(MAX_INTERVAL)));
        assert_eq!(parse("off"), Ok(Refresh::Off));
        assert_eq!(parse("0"), Ok(Refresh::Off));
        for bad in [
            "29s",
            "25h",
            "",
            "5",
            "m",
            "5x",
            "5m1h",
            "5m5m",
            "-5m",
            "1.5h",
            "9999999999s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(
            parse("10s")
                .unwrap_err()
                .to_string()
                .contains("out of bounds")
        );
        assert_eq!(format(Duration::from_secs(300)), "300s");
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn the_state_dir_is_no_secret_path() {
        assert!(crate::SecretPath::new(STATE_DIR).is_err());
        assert!(crate::SecretPath::new(format!("{STATE_DIR}/{VERSION_FILE}")).is_err());
    }
}
