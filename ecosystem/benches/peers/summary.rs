//! Median, spread and percentiles of repeated measurements.

use std::time::Duration;

/// Median with min and max of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Summary {
        assert!(!samples.is_empty(), "no samples");
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Summary {
            median: percentile_sorted(&sorted, 50.0),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }
}

/// The `p`th percentile (nearest rank) of samples already sorted ascending.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "no samples");
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Durations as microseconds, sorted ascending, ready for percentiles.
pub fn sorted_micros(samples: &[Duration]) -> Vec<f64> {
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    us
}
