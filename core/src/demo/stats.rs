//! The analysis of paired differences over seeds (the pre-registered one, `docs/PREREGISTRATION.md`):
//! mean ± standard error, a two-sided 95 % t interval, and the sign count.

use serde::{Deserialize, Serialize};

/// Summary of paired differences `d_1..d_n` (one per seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation / √n.
    pub se: f64,
    /// `mean ± t_{0.975, n−1} · se` (`None` under two seeds).
    pub ci95: Option<(f64, f64)>,
    /// Seeds with `d > 0`, `d < 0`.
    pub positive: usize,
    pub negative: usize,
}

impl Paired {
    pub fn of(d: &[f64]) -> Self {
        let n = d.len();
        let mean = d.iter().sum::<f64>() / n.max(1) as f64;
        let var = if n > 1 {
            d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let se = var.sqrt() / (n.max(1) as f64).sqrt();
        let ci95 = (n > 1).then(|| {
            let t = t975(n - 1);
            (mean - t * se, mean + t * se)
        });
        Self {
            n,
            mean,
            se,
            ci95,
            positive: d.iter().filter(|&&x| x > 0.0).count(),
            negative: d.iter().filter(|&&x| x < 0.0).count(),
        }
    }

    /// `+1.2 ± 0.8 (95 % CI −0.6 … +3.0; 7+ / 3−)` in points for differences of fractions.
    pub fn points(&self) -> String {
        let ci = self
            .ci95
            .map(|(lo, hi)| format!("; 95 % CI {:+.1} … {:+.1}", lo * 100.0, hi * 100.0))
            .unwrap_or_default();
        format!(
            "{:+.1} ± {:.1}{ci}; {}+ / {}−",
            self.mean * 100.0,
            self.se * 100.0,
            self.positive,
            self.negative
        )
    }
}

/// The 0.975 quantile of ModelBundle's t with `df` degrees of freedom (table to 30, then 1.96).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        d if d <= 30 => T[d - 1],
        _ => 1.96,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked by hand: d = (1, 2, 3, 4) → mean 2.5, sd 1.291, se 0.6455, t(3) = 3.182.
    #[test]
    fn paired_summary() {
        let p = Paired::of(&[0.01, 0.02, 0.03, 0.04]);
        assert!((p.mean - 0.025).abs() < 1e-12);
        assert!((p.se - 0.006455).abs() < 1e-6);
        let (lo, hi) = p.ci95.unwrap();
        assert!((lo - (0.025 - 3.182 * 0.0064550)).abs() < 1e-6 && hi > p.mean);
        assert_eq!((p.positive, p.negative), (4, 0));
        assert_eq!(Paired::of(&[0.1]).ci95, None);
        assert_eq!(t975(9), 2.262);
    }
}
