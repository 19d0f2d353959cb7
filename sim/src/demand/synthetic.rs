//! Synthetic demand for tests and what-ifs: a daily cycle with noise, an
//! optional spike and an optional launch ramp.
//!
//! Written `synthetic:KEY=VALUE,...` on the command line, for example
//! `synthetic:days=7,peak=5000,trough=1500,noise=0.05,spike=3@2.5,launch=2`:
//! seven days of concurrent players between 1,500 (at 04:00 UTC) and 5,000
//! (at 16:00 UTC), ±5 % noise, demand ×2.5 on day 3, and a launch ramp
//! from nothing over the first two days.

use std::f64::consts::PI;

use maestro_engine::{Millis, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Series;

#[derive(Clone, Debug, PartialEq)]
pub struct Synthetic {
    pub days: f64,
    pub peak: f64,
    pub trough: f64,
    /// Relative noise on each sample (0.05: ±5 %).
    pub noise: f64,
    /// `(day, factor)`: the whole of that day (0-based) scaled.
    pub spike: Option<(u32, f64)>,
    /// Days over which demand ramps up from zero.
    pub launch_days: f64,
    /// Time between samples.
    pub step: Millis,
    pub start: Time,
}

impl Default for Synthetic {
    fn default() -> Self {
        Synthetic {
            days: 7.0,
            peak: 5_000.0,
            trough: 1_500.0,
            noise: 0.0,
            spike: None,
            launch_days: 0.0,
            step: Millis::from_secs(300),
            // 2025-01-01T00:00:00Z
            start: Time(1_735_689_600_000),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("synthetic demand: {key}: {problem}")]
pub struct SyntheticError {
    pub key: String,
    pub problem: String,
}

/// The longest synthetic demand: ten years, about a million samples at
/// the default step (the curve is held in memory).
pub const MAX_DAYS: f64 = 3650.0;

impl Synthetic {
    /// Parses the part after `synthetic:` (empty: the defaults).
    pub fn parse(spec: &str) -> Result<Synthetic, SyntheticError> {
        let mut s = Synthetic::default();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let err = |problem: &str| SyntheticError {
                key: pair.split('=').next().unwrap_or(pair).to_string(),
                problem: problem.to_string(),
            };
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| err("expected KEY=VALUE"))?;
            let number = |v: &str| -> Result<f64, SyntheticError> {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| err("must be a number of 0 or more"))
            };
            match key.trim() {
                "days" => s.days = number(value)?,
                "peak" => s.peak = number(value)?,
                "trough" => s.trough = number(value)?,
                "noise" => s.noise = number(value)?.min(1.0),
                "launch" => s.launch_days = number(value)?,
                "spike" => {
                    let (day, factor) = value
                        .split_once('@')
                        .ok_or_else(|| err("expected DAY@FACTOR, e.g. 3@2.5"))?;
                    let day = number(day)? as u32;
                    s.spike = Some((day, number(factor)?));
                }
                _ => {
                    return Err(err(
                        "unknown key: use days, peak, trough, noise, spike or launch",
                    ));
                }
            }
        }
        if s.trough > s.peak {
            return Err(SyntheticError {
                key: "trough".to_string(),
                problem: format!("{} is above the peak {}", s.trough, s.peak),
            });
        }
        if s.days <= 0.0 || s.days > MAX_DAYS {
            return Err(SyntheticError {
                key: "days".to_string(),
                problem: format!("must be more than 0 and at most {MAX_DAYS}"),
            });
        }
        Ok(s)
    }

    /// The curve, sampled every `step`, its noise drawn from `seed`.
    pub fn series(&self, seed: u64) -> Series {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let day_ms = 86_400_000.0;
        let total = (self.days * day_ms) as u64;
        let step = self.step.0.max(1);
        let mut points = Vec::with_capacity((total / step + 1) as usize);
        let mut t = 0;
        while t <= total {
            let day = t as f64 / day_ms;
            // Lowest at 04:00 UTC, highest at 16:00 UTC.
            let phase = 2.0 * PI * (day.fract() - 4.0 / 24.0);
            let cycle = 0.5 - 0.5 * phase.cos();
            let mut v = self.trough + (self.peak - self.trough) * cycle;
            if let Some((spike_day, factor)) = self.spike
                && day.floor() as u32 == spike_day
            {
                v *= factor;
            }
            if self.launch_days > 0.0 {
                v *= (day / self.launch_days).min(1.0);
            }
            if self.noise > 0.0 {
                v *= 1.0 + rng.random_range(-self.noise..=self.noise);
            }
            points.push((self.start + Millis(t), v.max(0.0)));
            t += step;
        }
        Series {
            points,
            max_gap: Millis(step * 2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daily_cycle_between_trough_and_peak() {
        let s = Synthetic::parse("days=2,peak=1000,trough=100").unwrap();
        let series = s.series(1);
        let at = |h: u64| series.at(s.start + Millis::from_secs(h * 3600));
        assert!((at(4) - 100.0).abs() < 1e-6, "{}", at(4));
        assert!((at(16) - 1000.0).abs() < 1e-6, "{}", at(16));
        assert!((at(28) - 100.0).abs() < 1e-6);
        assert_eq!(series.points.len(), 2 * 288 + 1);
    }

    #[test]
    fn spikes_launches_and_noise_shape_it_and_bad_keys_are_named() {
        let s =
            Synthetic::parse("days=3,peak=1000,trough=1000,spike=1@3,launch=1,noise=0.1").unwrap();
        let series = s.series(7);
        let at = |h: u64| series.at(s.start + Millis::from_secs(h * 3600));
        assert!(at(6) < 400.0, "ramping: {}", at(6));
        assert!((2_600.0..3_400.0).contains(&at(36)), "spike: {}", at(36));
        assert!((900.0..1_100.0).contains(&at(60)), "noise: {}", at(60));
        assert_eq!(s.series(7), series, "the same seed, the same curve");
        let err = Synthetic::parse("days=1,peek=5").unwrap_err();
        assert_eq!(err.key, "peek");
        let err = Synthetic::parse("peak=10,trough=20").unwrap_err();
        assert_eq!(err.key, "trough");
    }
}
