//! The `[sending]` table: how fast Roster may send, for all email and across replicas.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendingSettings {
    /// `rate = "14/s"` (or per minute, `"600/m"`, or per hour, `"10000/h"`): at most
    /// this many emails, spaced evenly. Unset, email goes as fast as SMTP takes it.
    pub rate: Option<SendRate>,
}

/// A send rate: `count` emails per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SendRate {
    pub count: u32,
    pub per: Duration,
}

impl SendRate {
    /// The time between two sends.
    pub fn interval(&self) -> Duration {
        self.per / self.count
    }
}

impl TryFrom<String> for SendRate {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let problem = || {
            format!(
                "{text:?} is not a send rate: write a whole number of emails per second, \
                 minute or hour, e.g. \"14/s\", \"600/m\" or \"10000/h\""
            )
        };
        let (count, unit) = text.split_once('/').ok_or_else(problem)?;
        let count: u32 = count.trim().parse().map_err(|_| problem())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(problem()),
        };
        if count == 0 || count > 1_000_000 {
            return Err(format!(
                "{text:?}: a send rate is from 1 to 1,000,000 emails per unit"
            ));
        }
        Ok(Self { count, per })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Result<SendRate, String> {
        SendRate::try_from(text.to_owned())
    }

    #[test]
    fn rates_per_second_minute_and_hour() {
        assert_eq!(
            rate("14/s").unwrap().interval(),
            Duration::from_nanos(71_428_571)
        );
        assert_eq!(
            rate("600 / min").unwrap().interval(),
            Duration::from_millis(100)
        );
        assert_eq!(rate("3600/h").unwrap().interval(), Duration::from_secs(1));
    }

    #[test]
    fn malformed_rates_say_what_to_write() {
        for bad in [
            "14",
            "14/d",
            "/s",
            "-1/s",
            "0/s",
            "1.5/s",
            "2000000/s",
            "14/s/s",
        ] {
            let error = rate(bad).unwrap_err();
            assert!(error.contains("send rate"), "{bad}: {error}");
        }
    }
}
