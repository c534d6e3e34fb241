//! Medians and percentiles of measured durations.

use std::time::Duration;

/// Samples of one measurement.
#[derive(Debug, Clone, Default)]
pub(crate) struct Samples(Vec<Duration>);

impl Samples {
    pub(crate) fn push(&mut self, sample: Duration) {
        self.0.push(sample);
    }

    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        match sorted.len() {
            0 => Duration::ZERO,
            n => sorted[((n - 1) as f64 * q).round() as usize],
        }
    }

    pub(crate) fn median(&self) -> Duration {
        self.quantile(0.5)
    }

    pub(crate) fn p90(&self) -> Duration {
        self.quantile(0.9)
    }
}

/// A duration for a table: µs below 10 ms, else ms.
pub(crate) fn show(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 10_000.0 {
        format!("{micros:.1} µs")
    } else {
        format!("{:.1} ms", micros / 1000.0)
    }
}

/// `a / b`, as `1.23×`.
pub(crate) fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        "–".to_owned()
    } else {
        format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64())
    }
}
