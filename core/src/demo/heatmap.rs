//! Heatmap PNGs: an attention map over the merged image grid, upsampled bilinearly and blended
//! over the image with a perceptual colour map; panels placed side by side.

use image::{Rgb, RgbImage};

use crate::lavit::targets::bilinear_resize;

/// A compact "inferno"-like colour ramp (black → purple → orange → yellow).
fn ramp(t: f32) -> [f32; 3] {
    const STOPS: [(f32, [f32; 3]); 5] = [
        (0.0, [0.0, 0.0, 4.0]),
        (0.25, [87.0, 16.0, 110.0]),
        (0.5, [188.0, 55.0, 84.0]),
        (0.75, [249.0, 142.0, 9.0]),
        (1.0, [252.0, 255.0, 164.0]),
    ];
    let t = t.clamp(0.0, 1.0);
    for w in STOPS.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if t <= b {
            let u = (t - a) / (b - a);
            return std::array::from_fn(|i| ca[i] + (cb[i] - ca[i]) * u);
        }
    }
    STOPS[4].1
}

/// `map` (row-major over `grid`) blended over `img`; the map is min-max scaled.
pub fn overlay(img: &RgbImage, map: &[f32], grid: (usize, usize)) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let up = bilinear_resize(map, grid, (h, w));
    let lo = up.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = up.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut out = img.clone();
    for (i, p) in out.pixels_mut().enumerate() {
        let t = (up[i] - lo) / span;
        let c = ramp(t);
        let alpha = 0.35 + 0.4 * t;
        *p = Rgb(std::array::from_fn(|k| {
            ((1.0 - alpha) * p.0[k] as f32 + alpha * c[k]).round() as u8
        }));
    }
    out
}

/// Draws the outline of each box (original pixels) in `colour`.
pub fn outline(img: &mut RgbImage, boxes: &[[u32; 4]], colour: [u8; 3]) {
    let (w, h) = (img.width(), img.height());
    for b in boxes {
        let (x0, y0, x1, y1) = (
            b[0].min(w - 1),
            b[1].min(h - 1),
            b[2].min(w) - 1,
            b[3].min(h) - 1,
        );
        for x in x0..=x1 {
            img.put_pixel(x, y0, Rgb(colour));
            img.put_pixel(x, y1, Rgb(colour));
        }
        for y in y0..=y1 {
            img.put_pixel(x0, y, Rgb(colour));
            img.put_pixel(x1, y, Rgb(colour));
        }
    }
}

/// Panels left to right with a white gap.
pub fn side_by_side(panels: &[RgbImage]) -> RgbImage {
    let gap = 6;
    let h = panels.iter().map(|p| p.height()).max().unwrap_or(0);
    let w: u32 =
        panels.iter().map(|p| p.width()).sum::<u32>() + gap * panels.len().saturating_sub(1) as u32;
    let mut out = RgbImage::from_pixel(w.max(1), h.max(1), Rgb([255, 255, 255]));
    let mut x = 0;
    for p in panels {
        image::imageops::overlay(&mut out, p, x as i64, 0);
        x += p.width() + gap;
    }
    out
}
