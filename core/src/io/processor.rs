//! Image processor of Qwen2-VL / Qwen2.5-VL (HF `Qwen2VLImageProcessor`, torchvision backend).
//!
//! `smart_resize` (both sides multiples of 28, pixel count within `[min_pixels, max_pixels]`),
//! bicubic anti-aliased resize bit-exact with torchvision's uint8 kernel (what HF runs by
//! default), rescale + CLIP normalisation fused as `(x − 255·mean) / (255·std)` in f32, and
//! patch flattening in merge-block order: one row per 14×14 patch laid out `(C, T, P, P)`.

use image::RgbImage;

use crate::error::{LavitError, Result};

/// CLIP mean / std (`OPENAI_CLIP_MEAN`, `OPENAI_CLIP_STD`).
#[allow(clippy::excessive_precision)] // the digits of OPENAI_CLIP_MEAN, as HF writes them
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)] // the digits of OPENAI_CLIP_STD, as HF writes them
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Processor settings (defaults of the Qwen2.5-VL checkpoints).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcessorConfig {
    pub min_pixels: usize,
    pub max_pixels: usize,
    pub patch_size: usize,
    pub merge_size: usize,
    pub temporal_patch_size: usize,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            min_pixels: 56 * 56,
            max_pixels: 28 * 28 * 1280,
            patch_size: 14,
            merge_size: 2,
            temporal_patch_size: 2,
        }
    }
}

/// One processed image: the resized RGB bytes, from which the normalised, patch-flattened
/// pixel values are computed when a forward pass needs them ([`Self::pixel_values`]) — a
/// training set held in memory costs 3 bytes per pixel instead of the `4 · T = 8` floats'
/// 32 bytes.
#[derive(Debug, Clone)]
pub struct ProcessedImage {
    /// The image after `smart_resize`, `[h · w · 3]` interleaved RGB.
    pub rgb: Vec<u8>,
    /// `(t, h, w)` in patches.
    pub grid: [usize; 3],
    /// Size after `smart_resize` (height, width) in pixels.
    pub resized: (usize, usize),
    /// `(patch_size, merge_size, temporal_patch_size)` of the flattening.
    pub geometry: (usize, usize, usize),
}

impl ProcessedImage {
    pub fn n_patches(&self) -> usize {
        self.grid.iter().product()
    }
    pub fn patch_dim(&self) -> usize {
        let (p, _, t) = self.geometry;
        3 * t * p * p
    }
    /// `[n_patches, 3 · T · P · P]`, row-major: rescaled, CLIP-normalised and flattened in
    /// merge-block order (what `Qwen2VLImageProcessor` returns as `pixel_values`).
    pub fn pixel_values(&self) -> Vec<f32> {
        let (h, w) = self.resized;
        patchify(&normalize(&self.rgb), h, w, self.geometry)
    }
}

/// HF `smart_resize`: the closest size with both sides divisible by `factor` and area within
/// `[min_pixels, max_pixels]`, keeping the aspect ratio.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> std::result::Result<(usize, usize), String> {
    if height == 0 || width == 0 {
        return Err(format!("image is empty ({width}x{height})"));
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let ratio = h.max(w) / h.min(w);
    if ratio > 200.0 {
        return Err(format!(
            "absolute aspect ratio must be smaller than 200, got {ratio}"
        ));
    }
    // Python's round() is half-to-even.
    let mut h_bar = (h / f).round_ties_even() as usize * factor;
    let mut w_bar = (w / f).round_ties_even() as usize * factor;
    if h_bar * w_bar > max_pixels {
        let beta = ((h * w) / max_pixels as f64).sqrt();
        h_bar = factor.max(((h / beta / f).floor() as usize) * factor);
        w_bar = factor.max(((w / beta / f).floor() as usize) * factor);
    } else if h_bar * w_bar < min_pixels {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = ((h * beta / f).ceil() as usize) * factor;
        w_bar = ((w * beta / f).ceil() as usize) * factor;
    }
    if h_bar == 0 || w_bar == 0 {
        return Err(format!("image {width}x{height} is too small to resize"));
    }
    Ok((h_bar, w_bar))
}

/// What decoding an image may take: 16,384 pixels a side and 256 MiB for one buffer (a
/// 9,000 × 9,000 RGB image), so that a file whose header claims a huge size is refused
/// rather than decoded into gigabytes. The processor scales every image down to
/// `max_pixels` anyway.
fn decode_limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(16_384);
    l.max_image_height = Some(16_384);
    l.max_alloc = Some(256 << 20);
    l
}

/// Decodes an image file (any format the `image` crate reads) to RGB8.
pub fn load_rgb(path: &std::path::Path) -> Result<RgbImage> {
    let bytes = crate::error::read_file(path)?;
    decode_rgb(&bytes, &path.display().to_string())
}

/// Decodes image bytes to RGB8; `name` is used in errors.
pub fn decode_rgb(bytes: &[u8], name: &str) -> Result<RgbImage> {
    let bad = |e: image::ImageError| LavitError::Image {
        path: name.to_string(),
        message: format!("not a readable image ({e})"),
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(image::ImageError::IoError(e)))?;
    reader.limits(decode_limits());
    let img = reader.decode().map_err(bad)?;
    if img.width() == 0 || img.height() == 0 {
        return Err(LavitError::Image {
            path: name.to_string(),
            message: "image has zero width or height".into(),
        });
    }
    Ok(img.to_rgb8())
}

/// Runs the processor on one RGB image.
pub fn process_image(img: &RgbImage, cfg: &ProcessorConfig) -> Result<ProcessedImage> {
    let (w0, h0) = (img.width() as usize, img.height() as usize);
    let factor = cfg.patch_size * cfg.merge_size;
    let (h, w) = smart_resize(h0, w0, factor, cfg.min_pixels, cfg.max_pixels)
        .map_err(|m| LavitError::Prompt(format!("an image of {w0}×{h0} px: {m}")))?;
    let rgb = resize_bicubic_aa(img.as_raw(), h0, w0, 3, h, w);
    Ok(ProcessedImage {
        rgb,
        grid: [1, h / cfg.patch_size, w / cfg.patch_size],
        resized: (h, w),
        geometry: (cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size),
    })
}

/// `(x − 255·mean) / (255·std)` per channel, f32, `[H·W·3]` interleaved.
fn normalize(rgb: &[u8]) -> Vec<f32> {
    let mean: [f32; 3] = std::array::from_fn(|c| CLIP_MEAN[c] * 255.0);
    let std: [f32; 3] = std::array::from_fn(|c| CLIP_STD[c] * 255.0);
    rgb.iter()
        .enumerate()
        .map(|(i, &v)| (v as f32 - mean[i % 3]) / std[i % 3])
        .collect()
}

/// HF `Qwen2VLImageProcessor.patchify` for one frame: patches in order
/// `(h/m, w/m, m, m)`, each flattened `(C, T, P, P)` with the frame repeated `T` times.
fn patchify(img: &[f32], h: usize, w: usize, (p, m, t): (usize, usize, usize)) -> Vec<f32> {
    let (gh, gw) = (h / p, w / p);
    let dim = 3 * t * p * p;
    let mut out = Vec::with_capacity(gh * gw * dim);
    for bh in 0..gh / m {
        for bw in 0..gw / m {
            for mh in 0..m {
                for mw in 0..m {
                    let (py, px) = ((bh * m + mh) * p, (bw * m + mw) * p);
                    for c in 0..3 {
                        for _ in 0..t {
                            for y in 0..p {
                                for x in 0..p {
                                    out.push(img[((py + y) * w + px + x) * 3 + c]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Per-output-sample filter taps of one axis: first input index and int16 weights, plus the
/// fixed-point precision (torchvision `_compute_indices_int16_weights_aa`).
struct Taps {
    start: Vec<usize>,
    weights: Vec<Vec<i32>>,
    precision: u32,
}

/// Keys' cubic kernel with `a = −0.5` (PIL / torchvision anti-aliased bicubic).
fn cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn taps(n_in: usize, n_out: usize) -> Taps {
    let scale = n_in as f64 / n_out as f64;
    let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
    let inv = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    let mut start = Vec::with_capacity(n_out);
    let mut float_w: Vec<Vec<f64>> = Vec::with_capacity(n_out);
    for i in 0..n_out {
        let center = scale * (i as f64 + 0.5);
        // C++ casts truncate toward zero.
        let lo = ((center - support + 0.5) as i64).max(0) as usize;
        let hi = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
        let mut w: Vec<f64> = (lo..hi)
            .map(|j| cubic((j as f64 - center + 0.5) * inv))
            .collect();
        let total: f64 = w.iter().sum();
        if total != 0.0 {
            w.iter_mut().for_each(|v| *v /= total);
        }
        start.push(lo);
        float_w.push(w);
    }
    let w_max = float_w
        .iter()
        .flatten()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let mut precision = 0u32;
    while precision < 22 {
        if (0.5 + w_max * (1i64 << (precision + 1)) as f64) as i64 >= (1 << 15) {
            break;
        }
        precision += 1;
    }
    let scale_fp = (1i64 << precision) as f64;
    let weights = float_w
        .into_iter()
        .map(|w| {
            w.into_iter()
                .map(|v| {
                    let s = if v < 0.0 {
                        -0.5 + v * scale_fp
                    } else {
                        0.5 + v * scale_fp
                    };
                    (s as i32) as i16 as i32
                })
                .collect()
        })
        .collect();
    Taps {
        start,
        weights,
        precision,
    }
}

/// Bicubic anti-aliased resize of an interleaved `u8` image, bit-exact with
/// `torchvision.transforms.v2.functional.resize(uint8, antialias=True, BICUBIC)` on CPU:
/// horizontal pass, then vertical pass, each in int32 fixed point with rounding and clamping
/// to `[0, 255]`.
pub fn resize_bicubic_aa(
    src: &[u8],
    h: usize,
    w: usize,
    ch: usize,
    oh: usize,
    ow: usize,
) -> Vec<u8> {
    let pass =
        |src: &[u8], rows: usize, cols: usize, out_cols: usize, horizontal: bool| -> Vec<u8> {
            // `horizontal`: resample along x; else along y (rows/cols swap roles).
            let t = if horizontal {
                taps(cols, out_cols)
            } else {
                taps(rows, out_cols)
            };
            let round = 1i32 << (t.precision - 1);
            if horizontal {
                let mut out = vec![0u8; rows * out_cols * ch];
                for y in 0..rows {
                    for (x, (&lo, wts)) in t.start.iter().zip(&t.weights).enumerate() {
                        for c in 0..ch {
                            let mut acc = round;
                            for (k, &wt) in wts.iter().enumerate() {
                                acc += src[(y * cols + lo + k) * ch + c] as i32 * wt;
                            }
                            out[(y * out_cols + x) * ch + c] =
                                (acc >> t.precision).clamp(0, 255) as u8;
                        }
                    }
                }
                out
            } else {
                let mut out = vec![0u8; out_cols * cols * ch];
                for (y, (&lo, wts)) in t.start.iter().zip(&t.weights).enumerate() {
                    for x in 0..cols {
                        for c in 0..ch {
                            let mut acc = round;
                            for (k, &wt) in wts.iter().enumerate() {
                                acc += src[((lo + k) * cols + x) * ch + c] as i32 * wt;
                            }
                            out[(y * cols + x) * ch + c] = (acc >> t.precision).clamp(0, 255) as u8;
                        }
                    }
                }
                out
            }
        };
    let mut buf = src.to_vec();
    let mut cur_w = w;
    if ow != w {
        buf = pass(&buf, h, w, ow, true);
        cur_w = ow;
    }
    if oh != h {
        buf = pass(&buf, h, cur_w, oh, false);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_resize_branches() {
        assert_eq!(
            smart_resize(150, 230, 28, 3136, 1_003_520).unwrap(),
            (140, 224)
        );
        // Downscale branch.
        assert_eq!(
            smart_resize(500, 400, 28, 3136, 31_360).unwrap(),
            (196, 140)
        );
        // Upscale branch.
        let (h, w) = smart_resize(30, 45, 28, 6272, 1_003_520).unwrap();
        assert!(h * w >= 6272 && h % 28 == 0 && w % 28 == 0);
        assert!(smart_resize(1, 500, 28, 3136, 1_003_520).is_err());
        assert!(smart_resize(0, 5, 28, 3136, 1_003_520).is_err());
    }

    #[test]
    fn same_size_resize_is_identity() {
        let img: Vec<u8> = (0..(5 * 7 * 3)).map(|i| (i * 37 % 256) as u8).collect();
        assert_eq!(resize_bicubic_aa(&img, 5, 7, 3, 5, 7), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = vec![77u8; 13 * 9 * 3];
        for (oh, ow) in [(28, 28), (5, 4), (13, 30)] {
            assert!(
                resize_bicubic_aa(&img, 13, 9, 3, oh, ow)
                    .iter()
                    .all(|&v| v == 77)
            );
        }
    }
}
