//! When a failed job runs again: exponential backoff from 30 s, capped at 1 h, with
//! jitter over the upper half of each step so that jobs failing together (an SMTP
//! outage) do not retry together.

use std::time::Duration;

const BASE: Duration = Duration::from_secs(30);
const CAP: Duration = Duration::from_secs(60 * 60);

/// The delay before attempt `failed_attempt + 1`: a random point in the upper half of
/// `min(CAP, BASE * 2^(failed_attempt - 1))`, so retries are never immediate.
pub fn backoff(failed_attempt: i32) -> Duration {
    let exponent = u32::try_from(failed_attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    let ceiling = BASE.saturating_mul(1 << exponent).min(CAP);
    let half = ceiling / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..100 {
            let first = backoff(1);
            assert!(
                first >= Duration::from_secs(15) && first <= BASE,
                "{first:?}"
            );
            let third = backoff(3);
            assert!(third >= Duration::from_secs(60) && third <= Duration::from_secs(120));
            let late = backoff(40);
            assert!(late >= CAP / 2 && late <= CAP, "{late:?}");
        }
    }
}
