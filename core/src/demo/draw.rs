//! Labels and plots for the demo's figures: text from an 8×8 bitmap font (`font8x8`), a
//! labelled grid of panels, and a line chart with error bars (the learning curve).

use image::{Rgb, RgbImage};

const INK: Rgb<u8> = Rgb([20, 20, 20]);
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 8 * scale
}

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel a `scale × scale` block.
/// Characters outside ASCII are drawn as `?`; pixels outside the image are skipped.
pub fn text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, colour: Rgb<u8>) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for (i, c) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY[if c.is_ascii() {
            c as usize
        } else {
            b'?' as usize
        }];
        let x0 = x + (i as i64) * 8 * scale as i64;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 0 {
                    continue;
                }
                for dy in 0..scale as i64 {
                    for dx in 0..scale as i64 {
                        let px = x0 + col * scale as i64 + dx;
                        let py = y + row as i64 * scale as i64 + dy;
                        if (0..w).contains(&px) && (0..h).contains(&py) {
                            img.put_pixel(px as u32, py as u32, colour);
                        }
                    }
                }
            }
        }
    }
}

/// A grid of equally sized panels with a title, column labels above and row labels to the
/// left; `None` cells stay blank.
pub fn labelled_grid(
    title: &[String],
    col_labels: &[String],
    row_labels: &[String],
    cells: &[Vec<Option<RgbImage>>],
) -> RgbImage {
    let (pw, ph) = cells
        .iter()
        .flatten()
        .flatten()
        .map(|p| (p.width(), p.height()))
        .next()
        .unwrap_or((64, 64));
    let gap = 6;
    let label_w = row_labels
        .iter()
        .map(|l| text_width(l, 1))
        .max()
        .unwrap_or(0)
        + 10;
    let title_h = title.len() as u32 * 12 + if title.is_empty() { 0 } else { 6 };
    let head_h = 14;
    let cols = col_labels
        .len()
        .max(cells.iter().map(Vec::len).max().unwrap_or(0)) as u32;
    let rows = cells.len() as u32;
    let w = label_w + cols * (pw + gap) + gap;
    let h = title_h + head_h + rows * (ph + gap) + gap;
    let mut out = RgbImage::from_pixel(w, h, WHITE);
    let fit = (w.saturating_sub(12) / 8) as usize;
    for (i, line) in title.iter().enumerate() {
        let shown: String = if line.chars().count() > fit {
            line.chars()
                .take(fit.saturating_sub(3))
                .chain("...".chars())
                .collect()
        } else {
            line.clone()
        };
        text(&mut out, 6, 4 + i as i64 * 12, &shown, 1, INK);
    }
    for (c, l) in col_labels.iter().enumerate() {
        let x = label_w + c as u32 * (pw + gap) + (pw.saturating_sub(text_width(l, 1))) / 2;
        text(&mut out, x as i64, (title_h + 3) as i64, l, 1, INK);
    }
    for (r, row) in cells.iter().enumerate() {
        let y = title_h + head_h + r as u32 * (ph + gap);
        if let Some(l) = row_labels.get(r) {
            text(&mut out, 4, (y + ph / 2 - 4) as i64, l, 1, INK);
        }
        for (c, cell) in row.iter().enumerate() {
            if let Some(p) = cell {
                let x = label_w + c as u32 * (pw + gap);
                image::imageops::overlay(&mut out, p, x as i64, y as i64);
            }
        }
    }
    out
}

/// One line of a [`line_chart`]: points `(x, y, ± err)` and a colour.
pub struct Series {
    pub name: String,
    pub colour: Rgb<u8>,
    pub points: Vec<(f64, f64, f64)>,
}

/// A line chart with error bars; `log_x` spaces the x ticks logarithmically. Axis ranges
/// come from the data (y padded, ticks at the data's x values).
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> RgbImage {
    let (w, h) = (560u32, 380u32);
    let mut img = RgbImage::from_pixel(w, h, WHITE);
    let Some(frame) = Frame::new(series, log_x, (w, h)) else {
        text(&mut img, 64, 10, title, 1, INK);
        return img;
    };
    text(&mut img, frame.left, 10, title, 1, INK);
    frame.axes(&mut img, series);
    text(
        &mut img,
        frame.left + frame.pw as i64 / 2 - text_width(x_label, 1) as i64 / 2,
        h as i64 - 18,
        x_label,
        1,
        INK,
    );
    text(&mut img, 4, frame.top - 14, y_label, 1, INK);
    for (i, s) in series.iter().enumerate() {
        frame.series(&mut img, s, i);
    }
    img
}

/// The plot area of a [`line_chart`]: data ranges and their mapping to pixels.
struct Frame {
    left: i64,
    top: i64,
    pw: f64,
    ph: f64,
    log_x: bool,
    x0: f64,
    span_x: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    /// The frame of `series` in a `w × h` image; `None` without points.
    fn new(series: &[Series], log_x: bool, (w, h): (u32, u32)) -> Option<Self> {
        let (left, right, top, bottom) = (64i64, 130i64, 36i64, 48i64);
        let fx = |x: f64| if log_x { x.max(1e-9).ln() } else { x };
        let pts: Vec<&(f64, f64, f64)> = series.iter().flat_map(|s| s.points.iter()).collect();
        if pts.is_empty() {
            return None;
        }
        let (x0, x1) = pts
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(fx(p.0)), b.max(fx(p.0)))
            });
        let (y0, y1) = pts
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.1 - p.2), b.max(p.1 + p.2))
            });
        let pad = ((y1 - y0) * 0.1).max(0.02);
        Some(Self {
            left,
            top,
            pw: (w as i64 - left - right) as f64,
            ph: (h as i64 - top - bottom) as f64,
            log_x,
            x0,
            span_x: if x1 > x0 { x1 - x0 } else { 1.0 },
            y0: (y0 - pad).max(0.0),
            y1: (y1 + pad).min(1.0),
        })
    }

    fn px(&self, x: f64) -> i64 {
        let fx = if self.log_x { x.max(1e-9).ln() } else { x };
        self.left + (((fx - self.x0) / self.span_x) * self.pw * 0.9 + self.pw * 0.05) as i64
    }

    fn py(&self, y: f64) -> i64 {
        self.top + ((1.0 - (y - self.y0) / (self.y1 - self.y0)) * self.ph) as i64
    }

    /// Axes, y ticks every 10 points with a dotted grid, x ticks at the data's x values.
    fn axes(&self, img: &mut RgbImage, series: &[Series]) {
        let (left, top, bottom) = (self.left, self.top, self.top + self.ph as i64);
        line(img, (left, top), (left, bottom), INK);
        line(img, (left, bottom), (left + self.pw as i64, bottom), INK);
        let mut t = (self.y0 * 10.0).ceil() / 10.0;
        while t <= self.y1 + 1e-9 {
            let y = self.py(t);
            line(img, (left - 4, y), (left, y), INK);
            for x in (left + 2..left + self.pw as i64).step_by(6) {
                img.put_pixel(x as u32, y as u32, Rgb([210, 210, 210]));
            }
            let l = format!("{:.0}%", t * 100.0);
            text(img, left - 8 - text_width(&l, 1) as i64, y - 4, &l, 1, INK);
            t += 0.1;
        }
        let mut xs: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        for &x in &xs {
            let cx = self.px(x);
            line(img, (cx, bottom), (cx, bottom + 4), INK);
            let l = format!("{x}");
            text(
                img,
                cx - text_width(&l, 1) as i64 / 2,
                bottom + 8,
                &l,
                1,
                INK,
            );
        }
    }

    /// Series `i`: its points with error bars, joined, and its legend entry.
    fn series(&self, img: &mut RgbImage, s: &Series, i: usize) {
        let mut prev: Option<(i64, i64)> = None;
        for &(x, y, e) in &s.points {
            let (cx, cy) = (self.px(x), self.py(y));
            line(img, (cx, self.py(y - e)), (cx, self.py(y + e)), s.colour);
            line(
                img,
                (cx - 4, self.py(y - e)),
                (cx + 4, self.py(y - e)),
                s.colour,
            );
            line(
                img,
                (cx - 4, self.py(y + e)),
                (cx + 4, self.py(y + e)),
                s.colour,
            );
            for d in -2..=2 {
                line(img, (cx - 2, cy + d), (cx + 2, cy + d), s.colour);
            }
            if let Some(p) = prev {
                thick_line(img, p, (cx, cy), s.colour);
            }
            prev = Some((cx, cy));
        }
        let ly = self.top + 10 + i as i64 * 16;
        let lx = self.left + self.pw as i64 + 12;
        thick_line(img, (lx, ly + 3), (lx + 18, ly + 3), s.colour);
        text(img, lx + 24, ly, &s.name, 1, INK);
    }
}

fn line(img: &mut RgbImage, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb<u8>) {
    let n = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
    for i in 0..=n {
        let x = x0 + (x1 - x0) * i / n;
        let y = y0 + (y1 - y0) * i / n;
        if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, c);
        }
    }
}

fn thick_line(img: &mut RgbImage, a: (i64, i64), b: (i64, i64), c: Rgb<u8>) {
    for d in -1..=1 {
        line(img, (a.0, a.1 + d), (b.0, b.1 + d), c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_marks_pixels_inside_its_box() {
        let mut img = RgbImage::from_pixel(40, 12, WHITE);
        text(&mut img, 2, 2, "Hi", 1, INK);
        let inked: Vec<(u32, u32)> = img
            .enumerate_pixels()
            .filter(|(_, _, p)| **p == INK)
            .map(|(x, y, _)| (x, y))
            .collect();
        assert!(!inked.is_empty());
        assert!(
            inked
                .iter()
                .all(|&(x, y)| (2..18).contains(&x) && (2..10).contains(&y))
        );
        assert_eq!(text_width("Hi", 2), 32);
    }

    #[test]
    fn chart_draws_each_series() {
        let s = |name: &str, colour, y: f64| Series {
            name: name.into(),
            colour,
            points: vec![
                (300.0, y, 0.02),
                (1200.0, y + 0.1, 0.01),
                (4800.0, y + 0.2, 0.0),
            ],
        };
        let red = Rgb([200, 30, 30]);
        let blue = Rgb([30, 30, 200]);
        let img = line_chart("t", "x", "y", &[s("a", red, 0.3), s("b", blue, 0.5)], true);
        for c in [red, blue] {
            assert!(img.pixels().filter(|p| **p == c).count() > 50);
        }
    }
}
