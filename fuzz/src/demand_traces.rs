//! Demand as `maestro sim` imports it: the four trace formats
//! (`steamcharts`, `series`, `sessions`, `swf`), the synthetic generator's
//! spec and the match-duration specs. Any text must get the demand or an
//! error naming the file, line and field, never a panic; what is imported
//! must be usable: samples in time order with finite values of zero or
//! more, matches in start order.
//!
//! The first byte picks the importer (and the Steam app id); the rest is
//! the file's text.
//!
//! Run: `cargo fuzz run -s none demand_traces -- -max_total_time=60`;
//! `cargo test` in `fuzz/` replays `fuzz/seeds/demand_traces/`.

use maestro_engine::Millis;
use maestro_sim::demand::synthetic::Synthetic;
use maestro_sim::demand::{Demand, Format, parse};
use maestro_sim::dist::{Distribution, duration};

pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let format = match selector % 6 {
        0 => Format::SteamCharts {
            app_id: u64::from(selector / 6),
        },
        1 => Format::Series,
        2 => Format::Sessions,
        3 => Format::Swf,
        4 => return synthetic(&text),
        _ => return distribution(&text),
    };
    let Ok(imported) = parse("fuzz.csv", &text, &format, Millis::from_secs(3 * 3600)) else {
        return;
    };
    match imported.demand {
        Demand::Players(series) => {
            assert!(!series.points.is_empty(), "a series without samples");
            assert!(
                series.points.windows(2).all(|w| w[0].0 < w[1].0),
                "samples out of time order"
            );
            for (_, v) in &series.points {
                assert!(v.is_finite() && *v >= 0.0, "a sample of {v}");
            }
            let (start, end) = (series.start(), series.end());
            for t in [start, end, start + Millis(end.since(start).0 / 2)] {
                let v = series.at(t);
                assert!(v.is_finite() && v >= 0.0, "{v} players at {t:?}");
            }
        }
        Demand::Sessions(matches) | Demand::Matches(matches) => {
            assert!(
                matches.windows(2).all(|w| w[0].at <= w[1].at),
                "matches out of start order"
            );
        }
    }
}

fn synthetic(spec: &str) {
    let Ok(synthetic) = Synthetic::parse(spec) else {
        return;
    };
    let series = synthetic.series(7);
    assert!(!series.points.is_empty());
    for (_, v) in &series.points {
        assert!(v.is_finite() && *v >= 0.0, "a synthetic sample of {v}");
    }
}

fn distribution(spec: &str) {
    let _ = duration(spec);
    if let Ok(distribution) = Distribution::parse(spec) {
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(7);
        for _ in 0..16 {
            let _ = distribution.sample(&mut rng);
        }
    }
}
