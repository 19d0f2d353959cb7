//! Durations drawn from a distribution: pod start-up and deletion latency,
//! match lengths.
//!
//! A spec is written `fixed:30m`, `uniform:1s,5s`, `lognormal:MEDIAN,SIGMA`
//! (`lognormal:40m,0.35`: half the draws below the median, `SIGMA` the
//! standard deviation of the logarithm) or, on the command line,
//! `file:PATH[:COLUMN]` (an empirical distribution, loaded by the caller and
//! handed over as [`Distribution::Empirical`]).

use std::fmt;
use std::time::Duration;

use maestro_engine::Millis;
use rand::Rng;
use rand_distr::{Distribution as _, LogNormal};

/// A distribution of durations, sampled with the caller's RNG so a run stays
/// a function of its seed.
#[derive(Clone, Debug, PartialEq)]
pub enum Distribution {
    Fixed(Millis),
    /// Uniform between the bounds, both included.
    Uniform(Millis, Millis),
    LogNormal {
        median: Millis,
        sigma: f64,
    },
    /// Draws one of the samples, each with the same chance. Never empty.
    Empirical(Vec<Millis>),
}

/// Why a distribution spec cannot be used; the message follows the flag or
/// field that gave it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DistributionError {
    #[error(
        "`{0}` is not a distribution: use fixed:D, uniform:D,D, lognormal:MEDIAN,SIGMA or file:PATH[:COLUMN]"
    )]
    Unknown(String),
    #[error("`{0}` is not a duration such as 500ms, 30s or 40m")]
    Duration(String),
    #[error("uniform:{0},{1}: the lower bound is above the upper one")]
    Bounds(String, String),
    #[error("`{0}` is not a sigma: a finite number from 0 to 10")]
    Sigma(String),
    #[error("an empirical distribution needs at least one sample")]
    Empty,
}

/// A spec as written, before a `file:` spec's samples are read.
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    Ready(Distribution),
    /// `file:PATH[:COLUMN]`: the caller reads the samples.
    File {
        path: String,
        column: Option<String>,
    },
}

impl Distribution {
    /// Parses every spec but `file:`, which [`Distribution::parse_spec`] leaves
    /// to the caller.
    pub fn parse(spec: &str) -> Result<Distribution, DistributionError> {
        match Distribution::parse_spec(spec)? {
            Spec::Ready(d) => Ok(d),
            Spec::File { .. } => Err(DistributionError::Unknown(spec.to_string())),
        }
    }

    pub fn parse_spec(spec: &str) -> Result<Spec, DistributionError> {
        let unknown = || DistributionError::Unknown(spec.to_string());
        let (kind, args) = spec.split_once(':').ok_or_else(unknown)?;
        match kind {
            "fixed" => Ok(Spec::Ready(Distribution::Fixed(duration(args)?))),
            "uniform" => {
                let (lo, hi) = args.split_once(',').ok_or_else(unknown)?;
                let (lo_ms, hi_ms) = (duration(lo)?, duration(hi)?);
                if lo_ms > hi_ms {
                    return Err(DistributionError::Bounds(
                        lo.trim().to_string(),
                        hi.trim().to_string(),
                    ));
                }
                Ok(Spec::Ready(Distribution::Uniform(lo_ms, hi_ms)))
            }
            "lognormal" => {
                let (median, sigma) = args.split_once(',').ok_or_else(unknown)?;
                let sigma_value: f64 = sigma
                    .trim()
                    .parse()
                    .map_err(|_| DistributionError::Sigma(sigma.trim().to_string()))?;
                if !(0.0..=10.0).contains(&sigma_value) {
                    return Err(DistributionError::Sigma(sigma.trim().to_string()));
                }
                Ok(Spec::Ready(Distribution::LogNormal {
                    median: duration(median)?,
                    sigma: sigma_value,
                }))
            }
            "file" => {
                let (path, column) = match args.rsplit_once(':') {
                    // A Windows drive letter or a path with colons keeps them
                    // when the tail is not a plausible column name.
                    Some((path, column)) if !column.contains('/') && !path.is_empty() => {
                        (path.to_string(), Some(column.to_string()))
                    }
                    _ => (args.to_string(), None),
                };
                if path.is_empty() {
                    return Err(unknown());
                }
                Ok(Spec::File { path, column })
            }
            _ => Err(unknown()),
        }
    }

    pub fn empirical(samples: Vec<Millis>) -> Result<Distribution, DistributionError> {
        if samples.is_empty() {
            return Err(DistributionError::Empty);
        }
        Ok(Distribution::Empirical(samples))
    }

    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Millis {
        match self {
            Distribution::Fixed(d) => *d,
            Distribution::Uniform(lo, hi) => Millis(rng.random_range(lo.0..=hi.0)),
            Distribution::LogNormal { median, sigma } => {
                let mu = (median.0.max(1) as f64).ln();
                match LogNormal::new(mu, *sigma) {
                    // Capped at a year: a draw from the far tail must not
                    // overflow the simulated clock.
                    Ok(d) => Millis(d.sample(rng).clamp(0.0, 31_536_000_000.0) as u64),
                    Err(_) => *median,
                }
            }
            Distribution::Empirical(samples) => {
                let i = rng.random_range(0..samples.len().max(1));
                samples.get(i).copied().unwrap_or(Millis::ZERO)
            }
        }
    }

    /// The mean, for reports and sanity checks.
    pub fn mean(&self) -> f64 {
        match self {
            Distribution::Fixed(d) => d.0 as f64,
            Distribution::Uniform(lo, hi) => (lo.0 as f64 + hi.0 as f64) / 2.0,
            Distribution::LogNormal { median, sigma } => {
                median.0 as f64 * (sigma * sigma / 2.0).exp()
            }
            Distribution::Empirical(samples) => {
                samples.iter().map(|m| m.0 as f64).sum::<f64>() / samples.len().max(1) as f64
            }
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |m: &Millis| humantime::format_duration(Duration::from_millis(m.0)).to_string();
        match self {
            Distribution::Fixed(m) => write!(f, "fixed:{}", d(m)),
            Distribution::Uniform(lo, hi) => write!(f, "uniform:{},{}", d(lo), d(hi)),
            Distribution::LogNormal { median, sigma } => {
                write!(f, "lognormal:{},{sigma}", d(median))
            }
            Distribution::Empirical(samples) => write!(f, "empirical ({} samples)", samples.len()),
        }
    }
}

/// A duration such as `500ms`, `30s`, `40m` or `1h 30m`.
pub fn duration(text: &str) -> Result<Millis, DistributionError> {
    let text = text.trim();
    humantime::parse_duration(text)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .map(Millis)
        .ok_or_else(|| DistributionError::Duration(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn parses_every_kind_and_names_what_is_wrong() {
        assert_eq!(
            Distribution::parse("fixed:30m"),
            Ok(Distribution::Fixed(Millis(1_800_000)))
        );
        assert_eq!(
            Distribution::parse("uniform:1s, 5s"),
            Ok(Distribution::Uniform(Millis(1_000), Millis(5_000)))
        );
        assert_eq!(
            Distribution::parse("lognormal:40m,0.35"),
            Ok(Distribution::LogNormal {
                median: Millis(2_400_000),
                sigma: 0.35
            })
        );
        assert_eq!(
            Distribution::parse_spec("file:../data/dota.csv:duration"),
            Ok(Spec::File {
                path: "../data/dota.csv".to_string(),
                column: Some("duration".to_string())
            })
        );
        assert_eq!(
            Distribution::parse("uniform:5s,1s"),
            Err(DistributionError::Bounds("5s".into(), "1s".into()))
        );
        assert_eq!(
            Distribution::parse("fixed:soon"),
            Err(DistributionError::Duration("soon".into()))
        );
        assert_eq!(
            Distribution::parse("lognormal:1m,-1"),
            Err(DistributionError::Sigma("-1".into()))
        );
        assert!(matches!(
            Distribution::parse("gamma:1,2"),
            Err(DistributionError::Unknown(_))
        ));
        assert_eq!(
            Distribution::empirical(vec![]),
            Err(DistributionError::Empty)
        );
    }

    #[test]
    fn samples_stay_in_range_and_lognormal_centres_on_its_median() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let uniform = Distribution::Uniform(Millis(100), Millis(200));
        for _ in 0..1_000 {
            let m = uniform.sample(&mut rng);
            assert!((100..=200).contains(&m.0), "{m}");
        }
        let lognormal = Distribution::LogNormal {
            median: Millis(60_000),
            sigma: 0.5,
        };
        let mut draws: Vec<u64> = (0..10_001).map(|_| lognormal.sample(&mut rng).0).collect();
        draws.sort_unstable();
        let median = draws[5_000] as f64;
        assert!(
            (54_000.0..66_000.0).contains(&median),
            "median of 10 001 draws: {median}"
        );
        let empirical = Distribution::Empirical(vec![Millis(1), Millis(2)]);
        let ones = (0..1_000)
            .filter(|_| empirical.sample(&mut rng) == Millis(1))
            .count();
        assert!((400..600).contains(&ones), "{ones} of 1000");
    }
}
