//! Curriculum sensory gating (docs/ARCHITECTURE.md): gated queries — the answer tokens after the latent
//! block and, by default, the prompt text after the image — get an additive score bias
//! `ln g(step)` on image keys (`g = 0` blocks them, `g = 1` is the plain causal mask). The
//! latent tokens always see the image, so early in training visual information reaches the
//! answer only through them.

use burn::prelude::*;

/// How the open fraction `g` evolves with the training step.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GateSchedule {
    /// No gating (`g = 1` throughout).
    Off,
    /// Closed (`g = 0`) for `closed_steps`, then open — the reference's two stages.
    TwoStage { closed_steps: usize },
    /// Closed for `closed_steps`, then `g` rises linearly to 1 over `ramp_steps`.
    Linear {
        closed_steps: usize,
        ramp_steps: usize,
    },
    /// Closed for `closed_steps`, then `g = (1 − cos(π·u)) / 2` over `ramp_steps`.
    Cosine {
        closed_steps: usize,
        ramp_steps: usize,
    },
}

impl GateSchedule {
    /// Open fraction `g ∈ [0, 1]` at `step`.
    pub fn open_fraction(&self, step: usize) -> f64 {
        let ramp = |closed: usize, ramp: usize, f: &dyn Fn(f64) -> f64| {
            if step < closed {
                0.0
            } else if ramp == 0 {
                1.0
            } else {
                f(((step - closed) as f64 / ramp as f64).min(1.0))
            }
        };
        match *self {
            GateSchedule::Off => 1.0,
            GateSchedule::TwoStage { closed_steps } => ramp(closed_steps, 0, &|u| u),
            GateSchedule::Linear {
                closed_steps,
                ramp_steps,
            } => ramp(closed_steps, ramp_steps, &|u| u),
            GateSchedule::Cosine {
                closed_steps,
                ramp_steps,
            } => ramp(closed_steps, ramp_steps, &|u| {
                (1.0 - (std::f64::consts::PI * u).cos()) / 2.0
            }),
        }
    }

    /// Parses `off`, `two-stage:S`, `linear:S:R`, `cosine:S:R`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize| -> Result<usize, String> {
            parts
                .get(i)
                .ok_or_else(|| format!("gate schedule `{s}`: missing number #{i}"))?
                .parse()
                .map_err(|_| format!("gate schedule `{s}`: `{}` is not a number", parts[i]))
        };
        match parts[0] {
            "off" => Ok(GateSchedule::Off),
            "two-stage" => Ok(GateSchedule::TwoStage {
                closed_steps: num(1)?,
            }),
            "linear" => Ok(GateSchedule::Linear {
                closed_steps: num(1)?,
                ramp_steps: num(2)?,
            }),
            "cosine" => Ok(GateSchedule::Cosine {
                closed_steps: num(1)?,
                ramp_steps: num(2)?,
            }),
            other => Err(format!(
                "unknown gate schedule `{other}` (off, two-stage:S, linear:S:R, cosine:S:R)"
            )),
        }
    }
}

/// Which rows are gated and which columns are image keys, for one sequence.
#[derive(Debug, Clone)]
pub struct GateLayout {
    pub seq_len: usize,
    /// Query positions that are gated.
    pub gated_rows: Vec<usize>,
    /// Key positions of image tokens.
    pub image_cols: Vec<usize>,
}

impl GateLayout {
    /// Gated rows: every position from `answer_start` on, plus (if `gate_prompt`) the
    /// positions strictly between the last image token and `latent_start`.
    pub fn new(
        seq_len: usize,
        image_cols: Vec<usize>,
        latent_start: usize,
        answer_start: usize,
        gate_prompt: bool,
    ) -> Self {
        let mut rows = Vec::new();
        if gate_prompt && let Some(&last_img) = image_cols.last() {
            rows.extend(last_img + 1..latent_start);
        }
        rows.extend(answer_start..seq_len);
        Self {
            seq_len,
            gated_rows: rows,
            image_cols,
        }
    }

    /// The additive bias `[1, 1, S, S]` for open fraction `g`, or `None` when `g = 1` (the
    /// plain causal mask). `g = 0` puts `−∞` on gated (row, image column) pairs.
    pub fn bias(&self, g: f64, device: &Device) -> Option<Tensor<4>> {
        if g >= 1.0 || self.gated_rows.is_empty() || self.image_cols.is_empty() {
            return None;
        }
        let value = if g <= 0.0 {
            f32::NEG_INFINITY
        } else {
            g.ln() as f32
        };
        let s = self.seq_len;
        let mut data = vec![0f32; s * s];
        for &r in &self.gated_rows {
            for &c in &self.image_cols {
                data[r * s + c] = value;
            }
        }
        Some(Tensor::<2>::from_data(TensorData::new(data, [s, s]), device).unsqueeze::<4>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let two = GateSchedule::TwoStage { closed_steps: 10 };
        assert_eq!(two.open_fraction(9), 0.0);
        assert_eq!(two.open_fraction(10), 1.0);
        let lin = GateSchedule::Linear {
            closed_steps: 2,
            ramp_steps: 4,
        };
        assert_eq!(lin.open_fraction(1), 0.0);
        assert_eq!(lin.open_fraction(4), 0.5);
        assert_eq!(lin.open_fraction(100), 1.0);
        let cos = GateSchedule::Cosine {
            closed_steps: 0,
            ramp_steps: 2,
        };
        assert!((cos.open_fraction(1) - 0.5).abs() < 1e-12);
        assert_eq!(GateSchedule::Off.open_fraction(0), 1.0);
        assert_eq!(
            GateSchedule::parse("linear:3:7").unwrap(),
            GateSchedule::Linear {
                closed_steps: 3,
                ramp_steps: 7
            }
        );
        assert!(GateSchedule::parse("sometimes").is_err());
    }

    #[test]
    fn layout_rows() {
        // [sys 0..2][img 2..5][prompt 5..7][latent 7..9][answer 9..12]
        let l = GateLayout::new(12, vec![2, 3, 4], 7, 9, true);
        assert_eq!(l.gated_rows, vec![5, 6, 9, 10, 11]);
        let l = GateLayout::new(12, vec![2, 3, 4], 7, 9, false);
        assert_eq!(l.gated_rows, vec![9, 10, 11]);
    }
}
