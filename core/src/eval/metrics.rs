//! Metrics over predictions (see [`super`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{EvalItem, Prediction};
use crate::lavit::targets::{normalise, top_k};

/// Accuracy overall and per question type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub overall: f64,
    pub n: usize,
    pub per_type: BTreeMap<String, f64>,
    /// On the questions whose prior answer is wrong (`prior_key ≠ key`): where a model that
    /// answers from the question fails and one that looks succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<PriorAccuracy>,
}

/// Accuracy split by the task's language prior.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriorAccuracy {
    /// Accuracy on the prior-contradicting questions.
    pub contradicting: f64,
    /// How many there are.
    pub n_contradicting: usize,
    /// Share of the prior-contradicting questions answered with the prior's (wrong) answer.
    pub answered_prior: f64,
    /// Accuracy on the questions whose prior answer is right.
    pub agreeing: f64,
    pub n_agreeing: usize,
}

pub fn accuracy(preds: &[Prediction]) -> Accuracy {
    let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for p in preds {
        let e = per.entry(p.qtype.clone()).or_default();
        e.0 += p.correct as usize;
        e.1 += 1;
    }
    let right = preds.iter().filter(|p| p.correct).count();
    Accuracy {
        overall: right as f64 / preds.len().max(1) as f64,
        n: preds.len(),
        per_type: per
            .into_iter()
            .map(|(k, (r, n))| (k, r as f64 / n as f64))
            .collect(),
        prior: prior_accuracy(preds),
    }
}

/// [`PriorAccuracy`] of `preds` (`None` when none has a prior answer).
pub fn prior_accuracy(preds: &[Prediction]) -> Option<PriorAccuracy> {
    let (contra, agree): (Vec<&Prediction>, Vec<&Prediction>) = preds
        .iter()
        .filter(|p| p.prior.is_some())
        .partition(|p| p.prior.as_ref().is_some_and(|q| q.contradicts));
    if contra.is_empty() && agree.is_empty() {
        return None;
    }
    let share = |v: &[&Prediction], f: &dyn Fn(&Prediction) -> bool| {
        v.iter().filter(|p| f(p)).count() as f64 / v.len().max(1) as f64
    };
    let said_prior = |p: &Prediction| p.prior.as_ref().is_some_and(|q| p.predicted == q.key);
    Some(PriorAccuracy {
        contradicting: share(&contra, &|p| p.correct),
        n_contradicting: contra.len(),
        answered_prior: share(&contra, &said_prior),
        agreeing: share(&agree, &|p| p.correct),
        n_agreeing: agree.len(),
    })
}

/// `KL(p ‖ q)` with `q` smoothed by `1e-6` (maps are normalised first).
pub fn kl(p: &[f32], q: &[f32]) -> f64 {
    let p = normalise(p);
    let q: Vec<f32> = normalise(q).iter().map(|v| v + 1e-6).collect();
    let z: f32 = q.iter().sum();
    p.iter()
        .zip(&q)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| (*a as f64) * ((*a as f64).ln() - ((*b / z) as f64).ln()))
        .sum()
}

/// `|topK(p) ∩ topK(q)| / K`.
pub fn top_k_overlap(p: &[f32], q: &[f32], k: usize) -> f64 {
    let a = top_k(p, k);
    let b = top_k(q, k);
    a.iter().filter(|i| b.contains(i)).count() as f64 / k.min(p.len()).max(1) as f64
}

/// Which merged-grid cells have their centre inside any region (regions in original pixels).
pub fn region_cells(
    regions: &[[u32; 4]],
    grid: (usize, usize),
    image_size: (usize, usize),
) -> Vec<bool> {
    let (gh, gw) = grid;
    let (ih, iw) = image_size;
    let mut cells = vec![false; gh * gw];
    for y in 0..gh {
        for x in 0..gw {
            let cx = (x as f64 + 0.5) * iw as f64 / gw as f64;
            let cy = (y as f64 + 0.5) * ih as f64 / gh as f64;
            cells[y * gw + x] = regions.iter().any(|r| {
                cx >= r[0] as f64 && cx < r[2] as f64 && cy >= r[1] as f64 && cy < r[3] as f64
            });
        }
    }
    cells
}

/// Gaze and grounding of one family of maps (e.g. a student's raw attention).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MapMetrics {
    /// Mean `KL(teacher ‖ map)` over latent steps and samples.
    pub kl_to_teacher: Option<f64>,
    /// Mean top-K overlap with the teacher map.
    pub topk_overlap: Option<f64>,
    /// Mean attention mass on cells inside the ground-truth regions.
    pub mass_in_regions: Option<f64>,
    /// Share of samples whose arg-max cell lies in a region.
    pub pointing: Option<f64>,
    /// Mean total of a map before normalisation: for raw attention rows, the share of the
    /// latent token's attention that goes to the image at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_mass: Option<f64>,
    /// Samples the numbers are over.
    pub n: usize,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Metrics of `maps(pred)` against teacher maps (same grid, `K` per sample) and regions.
pub fn map_metrics(
    items: &[EvalItem],
    preds: &[Prediction],
    teacher: &BTreeMap<String, Vec<Vec<f32>>>,
    maps: impl Fn(&Prediction) -> &Vec<Vec<f32>>,
    k_top: usize,
) -> MapMetrics {
    let (mut kls, mut ovs, mut mass, mut point) = (vec![], vec![], vec![], vec![]);
    let mut totals = vec![];
    let mut n = 0;
    for (it, p) in items.iter().zip(preds) {
        let m = maps(p);
        if m.is_empty() || m.iter().any(|x| x.len() != p.grid.0 * p.grid.1) {
            continue;
        }
        n += 1;
        totals.extend(m.iter().map(|x| x.iter().map(|&v| v as f64).sum::<f64>()));
        if let Some(t) = teacher.get(&it.id) {
            for (tm, sm) in t.iter().zip(m) {
                if tm.len() == sm.len() {
                    kls.push(kl(tm, sm));
                    ovs.push(top_k_overlap(tm, sm, k_top));
                }
            }
        }
        if !it.regions.is_empty() {
            let cells = region_cells(&it.regions, p.grid, p.image_size);
            // The sample's gaze: its latent-step maps averaged.
            let mut avg = vec![0f32; cells.len()];
            for sm in m {
                for (a, b) in avg.iter_mut().zip(normalise(sm)) {
                    *a += b / m.len() as f32;
                }
            }
            mass.push(
                avg.iter()
                    .zip(&cells)
                    .filter(|(_, c)| **c)
                    .map(|(v, _)| *v as f64)
                    .sum(),
            );
            point.push(top_k(&avg, 1).first().is_some_and(|&i| cells[i]) as u8 as f64);
        }
    }
    MapMetrics {
        kl_to_teacher: mean(&kls),
        topk_overlap: mean(&ovs),
        mass_in_regions: mean(&mass),
        pointing: mean(&point),
        image_mass: mean(&totals),
        n,
    }
}

/// Grounding of maps that come with the items (e.g. the teacher's own trajectory).
pub fn grounding_of(
    items: &[EvalItem],
    maps: &BTreeMap<String, Vec<Vec<f32>>>,
    grid: impl Fn(&EvalItem) -> ((usize, usize), (usize, usize)),
) -> MapMetrics {
    let (mut mass, mut point) = (vec![], vec![]);
    for it in items {
        let (Some(m), false) = (maps.get(&it.id), it.regions.is_empty()) else {
            continue;
        };
        let (g, size) = grid(it);
        let cells = region_cells(&it.regions, g, size);
        let mut avg = vec![0f32; cells.len()];
        for sm in m {
            if sm.len() != cells.len() {
                continue;
            }
            for (a, b) in avg.iter_mut().zip(normalise(sm)) {
                *a += b / m.len() as f32;
            }
        }
        mass.push(
            avg.iter()
                .zip(&cells)
                .filter(|(_, c)| **c)
                .map(|(v, _)| *v as f64)
                .sum(),
        );
        point.push(top_k(&avg, 1).first().is_some_and(|&i| cells[i]) as u8 as f64);
    }
    MapMetrics {
        kl_to_teacher: None,
        topk_overlap: None,
        mass_in_regions: mean(&mass),
        pointing: mean(&point),
        image_mass: None,
        n: mass.len(),
    }
}

/// [`map_metrics`] over the items of each question type.
pub fn map_metrics_by_type(
    items: &[EvalItem],
    preds: &[Prediction],
    teacher: &BTreeMap<String, Vec<Vec<f32>>>,
    maps: impl Fn(&Prediction) -> &Vec<Vec<f32>>,
    k_top: usize,
) -> BTreeMap<String, MapMetrics> {
    let types: std::collections::BTreeSet<&str> = items.iter().map(|i| i.qtype.as_str()).collect();
    types
        .into_iter()
        .map(|t| {
            let (it, pr): (Vec<EvalItem>, Vec<Prediction>) = items
                .iter()
                .zip(preds)
                .filter(|(i, _)| i.qtype == t)
                .map(|(i, p)| (i.clone(), p.clone()))
                .unzip();
            (t.to_string(), map_metrics(&it, &pr, teacher, &maps, k_top))
        })
        .collect()
}

/// [`grounding_of`] over the items of each question type.
pub fn grounding_by_type(
    items: &[EvalItem],
    maps: &BTreeMap<String, Vec<Vec<f32>>>,
    grid: impl Fn(&EvalItem) -> ((usize, usize), (usize, usize)),
) -> BTreeMap<String, MapMetrics> {
    let types: std::collections::BTreeSet<&str> = items.iter().map(|i| i.qtype.as_str()).collect();
    types
        .into_iter()
        .map(|t| {
            let it: Vec<EvalItem> = items.iter().filter(|i| i.qtype == t).cloned().collect();
            (t.to_string(), grounding_of(&it, maps, &grid))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_and_overlap() {
        let p = [0.0, 1.0, 0.0, 0.0];
        assert!(kl(&p, &p) < 1e-4);
        assert!(kl(&p, &[1.0, 0.0, 0.0, 0.0]) > 5.0);
        assert_eq!(
            top_k_overlap(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0], 2),
            0.0
        );
        assert_eq!(
            top_k_overlap(&[1.0, 2.0, 3.0, 4.0], &[0.0, 0.0, 3.0, 4.0], 2),
            1.0
        );
    }

    #[test]
    fn cells_inside_regions() {
        // 2x2 grid over a 56x56 image, region covers the top-left quarter.
        let c = region_cells(&[[0, 0, 28, 28]], (2, 2), (56, 56));
        assert_eq!(c, vec![true, false, false, false]);
    }
}
