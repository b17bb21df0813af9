//! The embedded synthetic grounded-reasoning task.
//!
//! Scenes are small RGB images (168 px by default, a 6 × 6 grid of 28-px cells — one merged
//! vision token each) with 3–5 shapes (kind × colour × size, small = one cell, large = 2 × 2
//! cells, non-overlapping, on a noisy background). Each question names objects so that it can
//! only be answered by looking at the right place, and every question type is balanced over
//! its answers (each split cycles through shuffled blocks of all answers), so language priors
//! give chance accuracy:
//!
//! | type | question | answer (steps) |
//! |---|---|---|
//! | colour | What colour is the circle? | I find the circle. It is red. |
//! | shape | What shape is the blue object? | I find the blue object. It is a square. |
//! | relation | Is the red circle left or right of the green square? | I find the red circle. I find the green square. It is left. |
//! | count | How many yellow shapes are there? | I look for yellow shapes. There are two. (zero to four) |
//! | size | Is the circle bigger than the square? | I find the circle. I find the square. Yes. |
//!
//! The first steps name what to look at (the teacher's attention while writing them is the
//! trajectory); the last step answers. [`StepStyle::Grounded`] (the shipped task's,
//! `assets/synthetic/task.json`) writes steps that also read each object's property: "I find
//! the circle. It is large. I find the square. It is small. Yes."; its relation questions pair
//! objects that each lie inside one third of the asked axis, in different thirds (the thirds
//! [`location`] and [`Background::Zones`] use).
//! [`Relation::Vertical`] asks "above or below" instead of "left or right".
//!
//! Every sample carries its ground-truth regions (boxes of the objects the answer depends on)
//! and its answer key (the last word of the answer). Everything is deterministic by seed.

use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub const KINDS: [&str; 3] = ["circle", "square", "triangle"];
pub const COLOURS: [(&str, [u8; 3]); 6] = [
    ("red", [220, 40, 40]),
    ("green", [40, 170, 60]),
    ("blue", [40, 80, 220]),
    ("yellow", [230, 200, 30]),
    ("purple", [150, 60, 190]),
    ("orange", [240, 130, 30]),
];
pub const NUMBERS: [&str; 5] = ["zero", "one", "two", "three", "four"];
pub const QUESTION_TYPES: [&str; 5] = ["colour", "shape", "relation", "count", "size"];

/// One object of a scene; box in pixels `[x0, y0, x1, y1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub kind: String,
    pub colour: String,
    pub large: bool,
    pub bbox: [u32; 4],
}

impl Object {
    fn centre(&self) -> (f32, f32) {
        (
            (self.bbox[0] + self.bbox[2]) as f32 / 2.0,
            (self.bbox[1] + self.bbox[3]) as f32 / 2.0,
        )
    }
    fn name(&self) -> String {
        format!("{} {}", self.colour, self.kind)
    }
}

/// A generated question about a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticSample {
    pub id: String,
    pub qtype: String,
    pub question: String,
    /// The reasoning steps; their concatenation is the answer text.
    pub steps: Vec<String>,
    /// The word that decides correctness (last word of the answer).
    pub key: String,
    /// Boxes `[x0, y0, x1, y1)` of the objects the answer depends on.
    pub regions: Vec<[u32; 4]>,
    pub objects: Vec<Object>,
    /// The answer the task's language prior gives this question ([`Prior`]; prior-carrying
    /// types of a task with a prior only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_key: Option<String>,
}

impl SyntheticSample {
    pub fn answer(&self) -> String {
        self.steps.concat()
    }

    /// The sample as a dataset record (what [`write_split`] writes) with its image at `image`.
    pub fn record(&self, image: String) -> crate::data::viscot::Sample {
        crate::data::viscot::Sample {
            id: self.id.clone(),
            image,
            question: self.question.clone(),
            answer: self.answer(),
            steps: vec![],
            extra: split_extra(self),
        }
    }
}

/// Settings of the generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneConfig {
    pub size: u32,
    pub min_objects: usize,
    pub max_objects: usize,
    /// How the background is drawn.
    #[serde(default)]
    pub background: Background,
    /// How the answers' steps are written.
    #[serde(default)]
    pub steps: StepStyle,
    /// Which axis relation questions ask about.
    #[serde(default)]
    pub relation: Relation,
    /// The question types asked, in the order they cycle ([`QUESTION_TYPES`] when absent).
    #[serde(default = "all_types", skip_serializing_if = "is_all_types")]
    pub types: Vec<String>,
    /// A language prior in the answers (the prior task variant; absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<Prior>,
}

fn all_types() -> Vec<String> {
    QUESTION_TYPES.iter().map(|t| t.to_string()).collect()
}

fn is_all_types(t: &[String]) -> bool {
    t == all_types().as_slice()
}

/// A language prior: for the prior-carrying question types ([`PRIOR_TYPES`]) the question's
/// text predicts its answer — each kind has a usual colour ([`prior_colour`]), each colour a
/// usual kind ([`prior_kind`]), and a bigger-than question the answer of a fixed size order of
/// the kinds ([`prior_bigger`]). In a split drawn with `strength` s, a prior-carrying
/// question's answer is the prior's with probability s, else one of the others uniformly; with
/// s = 0 the split is balanced as without a prior, and only records each question's prior
/// answer (`prior_key`) — how validation and test splits are drawn, so that their
/// *prior-contradicting* questions (the prior's answer is wrong) separate a student that looks
/// from one that answers from the question.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    pub strength: f64,
}

/// The question types that carry a prior.
pub const PRIOR_TYPES: [&str; 3] = ["colour", "shape", "size"];

/// The usual colour of each kind: circle red, square blue, triangle green.
pub fn prior_colour(kind: &str) -> &'static str {
    match kind {
        "circle" => "red",
        "square" => "blue",
        _ => "green",
    }
}

/// The usual kind of each colour: red and yellow circles, blue and purple squares, green and
/// orange triangles (the three usual colours of [`prior_colour`] agree).
pub fn prior_kind(colour: &str) -> &'static str {
    match colour {
        "red" | "yellow" => "circle",
        "blue" | "purple" => "square",
        _ => "triangle",
    }
}

/// The prior's answer to "Is the `k1` bigger than the `k2`?": circles are usually bigger than
/// squares, squares than triangles.
pub fn prior_bigger(k1: &str, k2: &str) -> &'static str {
    let rank = |k: &str| KINDS.iter().position(|x| *x == k).map(|i| [2, 1, 0][i]);
    if rank(k1) > rank(k2) { "yes" } else { "no" }
}

/// The axis of relation questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    /// "Is the A left or right of the B?" (grounded steps read each object's column third).
    #[default]
    Horizontal,
    /// "Is the A above or below the B?" (grounded steps read each object's row third). Image
    /// tokens enter the decoder in raster order, so an object's row grows with its tokens'
    /// index, while its column is the index modulo the grid width; the small teacher learns
    /// rows and not columns (README, "The teacher").
    Vertical,
}

impl Relation {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "horizontal" => Some(Self::Horizontal),
            "vertical" => Some(Self::Vertical),
            _ => None,
        }
    }

    /// The two answers: `[first, second]` where the first means "smaller coordinate".
    pub fn answers(self) -> [&'static str; 2] {
        match self {
            Self::Horizontal => ["left", "right"],
            Self::Vertical => ["above", "below"],
        }
    }
}

/// How the answers' reasoning steps are written (the colour and shape answers are the same in
/// both).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStyle {
    /// Name what to look at, then answer: "I find the circle. I find the square. Yes."
    #[default]
    Short,
    /// Find each object and read the one property of it the answer needs, then combine:
    /// "I find the circle. It is large. I find the square. It is small. Yes." — relation
    /// reads each object's third along the asked axis (pairs in different thirds), count
    /// names every object it counts. The shipped task's steps (`assets/synthetic/task.json`).
    Grounded,
}

impl StepStyle {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "short" => Some(Self::Short),
            "grounded" => Some(Self::Grounded),
            _ => None,
        }
    }
}

/// The background of a scene.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    /// Light grey with pixel noise, the same everywhere. The default.
    #[default]
    Noise,
    /// Grey noise shaded by position: darker to the left, bluer to the bottom. Qwen2.5-VL gives
    /// image tokens their position only through rotary embeddings, which steer *where*
    /// attention goes but add nothing to *what* it reads, so a small model trained from scratch
    /// finds it hard to read "where is this object" off the token it attends to. Real
    /// photographs carry absolute cues (sky above, ground below); the shading gives the scenes
    /// the same — but as brightness, which a bias-free patch embedding followed by RMSNorm
    /// barely tells apart ([`Background::Zones`] changes hue and texture instead).
    Shaded,
    /// Grey noise tinted by 3 × 3 zone — the zones the answers name ([`location`]): the row
    /// third along the blue–red axis (bluish, neutral, warm), the column third along the
    /// green axis (magenta-ish, neutral, greenish). A discrete cue a token reads off the
    /// background around an object. The shipped task's background
    /// (`assets/synthetic/task.json`).
    Zones,
}

impl Background {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "noise" => Some(Self::Noise),
            "shaded" => Some(Self::Shaded),
            "zones" => Some(Self::Zones),
            _ => None,
        }
    }
}

impl Default for SceneConfig {
    /// The shipped task (`assets/synthetic/task.json`, the teacher's): zones background,
    /// grounded steps, vertical relations, all five question types, no prior.
    fn default() -> Self {
        Self {
            background: Background::Zones,
            steps: StepStyle::Grounded,
            relation: Relation::Vertical,
            ..Self::plain()
        }
    }
}

impl SceneConfig {
    /// The plain task the project started with (noise background, short steps, left/right);
    /// what a task file without the later fields describes.
    pub fn plain() -> Self {
        Self {
            size: 168,
            min_objects: 3,
            max_objects: 5,
            background: Background::Noise,
            steps: StepStyle::Short,
            relation: Relation::Horizontal,
            types: all_types(),
            prior: None,
        }
    }
}

impl SceneConfig {
    /// The same task drawn balanced: a prior keeps its answer maps (each question's
    /// `prior_key` is recorded) at strength 0. How validation and test splits are drawn.
    pub fn balanced(&self) -> Self {
        Self {
            prior: self.prior.map(|_| Prior { strength: 0.0 }),
            ..self.clone()
        }
    }

    /// Whether the generator can draw scenes of these settings: at least a 3 × 3 grid of
    /// cells (the thirds the answers name), 2 ≤ min_objects ≤ max_objects (relation and size
    /// questions need two objects), and room for the largest scene a question can need (count
    /// asks up to four) on at most half the cells, so random placement finishes. Settings
    /// outside this would make the generator loop or panic.
    pub fn validate(&self) -> Result<(), String> {
        if self.types.is_empty() {
            return Err("no question types".into());
        }
        if let Some(t) = self
            .types
            .iter()
            .find(|t| !QUESTION_TYPES.contains(&t.as_str()))
        {
            return Err(format!(
                "unknown question type `{t}` (expected {})",
                QUESTION_TYPES.join(", ")
            ));
        }
        if let Some(p) = &self.prior
            && !(0.0..=1.0).contains(&p.strength)
        {
            return Err(format!("prior strength {} is not in [0, 1]", p.strength));
        }
        if self.size > MAX_SIZE {
            return Err(format!("size {} px is over {MAX_SIZE} px", self.size));
        }
        let grid = self.size / CELL;
        if grid < 3 {
            return Err(format!(
                "size {} px is under three {CELL}-px cells per side ({} px)",
                self.size,
                3 * CELL
            ));
        }
        if self.min_objects < 2 || self.min_objects > self.max_objects {
            return Err(format!(
                "objects per scene {}..={}: need 2 <= min_objects <= max_objects",
                self.min_objects, self.max_objects
            ));
        }
        let most = self.max_objects.max(NUMBERS.len() - 1);
        let room = (grid as usize * grid as usize) / 2;
        if most > room {
            return Err(format!(
                "{most} objects do not fit on half of a {grid} × {grid} grid ({room} cells); \
                 use fewer objects or a larger image"
            ));
        }
        Ok(())
    }
}

/// Which third (0, 1, 2) of an image side `size` the coordinate `v` falls in.
pub fn zone(v: f32, size: u32) -> usize {
    ((v / (size as f32 / 3.0)) as usize).min(2)
}

/// Coarse location name of a point (3 × 3 zones).
pub fn location(x: f32, y: f32, size: u32) -> &'static str {
    let (col, row) = (zone(x, size), zone(y, size));
    [
        ["top left", "top", "top right"],
        ["left", "center", "right"],
        ["bottom left", "bottom", "bottom right"],
    ][row][col]
}

fn inside(kind: &str, x: f32, y: f32, b: &[u32; 4]) -> bool {
    let (x0, y0, x1, y1) = (b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32);
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let r = (x1 - x0) / 2.0;
    match kind {
        "circle" => (x - cx).powi(2) + (y - cy).powi(2) <= r * r,
        "square" => x >= x0 && x < x1 && y >= y0 && y < y1,
        _ => {
            // Upward triangle: apex at top centre, base at the bottom.
            if y < y0 || y >= y1 {
                return false;
            }
            let t = (y - y0) / (y1 - y0);
            (x - cx).abs() <= t * r
        }
    }
}

/// Draws a scene: the background (see [`Background`]) and the objects.
pub fn render(objects: &[Object], cfg: &SceneConfig, rng: &mut StdRng) -> RgbImage {
    let size = cfg.size;
    let mut img = RgbImage::new(size, size);
    let span = size.max(1) as f32;
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = match cfg.background {
            Background::Noise => {
                let v = 200u8.saturating_add(rng.random_range(0..20));
                Rgb([v, v, v.saturating_sub(5)])
            }
            Background::Shaded => {
                let grey = 150.0 + 90.0 * (x as f32 / span) + rng.random_range(0..16) as f32;
                let blue = grey - 35.0 * (y as f32 / span);
                Rgb([grey as u8, grey as u8, blue.max(0.0) as u8])
            }
            Background::Zones => {
                // Row third: the blue–red axis (bluish top, neutral middle, warm bottom);
                // column third: the green axis (magenta-ish left, neutral middle, greenish
                // right). Hue changes the direction of a patch's pixel vector, not mostly its
                // length, which RMSNorm after a bias-free patch embedding removes.
                let (col, row) = (zone(x as f32, size) as i32, zone(y as f32, size) as i32);
                let v = 190 + rng.random_range(0..12);
                let (warm, green) = (20 * (1 - row), 20 * (col - 1));
                let c = |d: i32| (v + d).clamp(0, 255) as u8;
                Rgb([c(-warm), c(green), c(warm)])
            }
        };
    }
    for o in objects {
        let rgb = COLOURS
            .iter()
            .find(|c| c.0 == o.colour)
            .map(|c| c.1)
            .unwrap_or([0, 0, 0]);
        for y in o.bbox[1]..o.bbox[3] {
            for x in o.bbox[0]..o.bbox[2] {
                if inside(&o.kind, x as f32 + 0.5, y as f32 + 0.5, &o.bbox) {
                    let jitter = rng.random_range(0..12) as i16 - 6;
                    let c = rgb.map(|v| (v as i16 + jitter).clamp(0, 255) as u8);
                    img.put_pixel(x, y, Rgb(c));
                }
            }
        }
    }
    img
}

/// Token budget for generating an answer of this task: the longest answer of any variant (a
/// grounded vertical relation, up to 49 tokens with the shipped tokenizer) plus a latent block
/// of up to 16 tokens plus room; generation stops at the end-of-turn token long before it on a
/// sane answer. (It was 48, which cut grounded vertical-relation answers.)
pub const MAX_NEW_TOKENS: usize = 96;

/// Largest image side [`SceneConfig::validate`] accepts (146 cells; a 50 MB RGB image).
pub const MAX_SIZE: u32 = 4096;

/// Side of one cell of the placement grid: one merged vision token (28 px).
pub const CELL: u32 = 28;

/// A free spot of `cells × cells` grid cells (objects are aligned to the 28-px grid of merged
/// vision tokens, so each token sees whole objects), inset by 3 px.
fn place(occupied: &mut [bool], grid: u32, cells: u32, rng: &mut StdRng) -> Option<[u32; 4]> {
    for _ in 0..200 {
        let cx = rng.random_range(0..=grid - cells);
        let cy = rng.random_range(0..=grid - cells);
        let cells_of = || {
            (cy..cy + cells)
                .flat_map(move |y| (cx..cx + cells).map(move |x| (y * grid + x) as usize))
        };
        if cells_of().any(|i| occupied[i]) {
            continue;
        }
        for i in cells_of() {
            occupied[i] = true;
        }
        let inset = 3;
        return Some([
            cx * CELL + inset,
            cy * CELL + inset,
            (cx + cells) * CELL - inset,
            (cy + cells) * CELL - inset,
        ]);
    }
    None
}

/// A random scene: `min..=max` objects on the cell grid, small (1 cell) or large (2 × 2).
pub fn random_scene(cfg: &SceneConfig, rng: &mut StdRng) -> Vec<Object> {
    let n = rng.random_range(cfg.min_objects..=cfg.max_objects);
    loop {
        if let Some(objects) = random_layout(cfg, n, rng) {
            return objects;
        }
    }
}

/// Exactly `n` objects of random kind, colour and size on free cells; `None` when the grid
/// has no room left for one of them.
fn random_layout(cfg: &SceneConfig, n: usize, rng: &mut StdRng) -> Option<Vec<Object>> {
    let grid = cfg.size / CELL;
    let mut occupied = vec![false; (grid * grid) as usize];
    let mut objects: Vec<Object> = Vec::new();
    while objects.len() < n {
        let large = rng.random_bool(0.5);
        let bbox = place(&mut occupied, grid, if large { 2 } else { 1 }, rng)?;
        objects.push(Object {
            kind: KINDS.choose(rng)?.to_string(),
            colour: COLOURS.choose(rng)?.0.to_string(),
            large,
            bbox,
        });
    }
    Some(objects)
}

fn unique(objects: &[Object], f: impl Fn(&Object) -> bool) -> Option<&Object> {
    let mut it = objects.iter().filter(|o| f(o));
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

/// A question, its reasoning steps, its answer key, the regions it depends on, and the answer
/// the language prior of [`Prior`] gives it (prior-carrying types only).
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub question: String,
    pub steps: Vec<String>,
    pub key: String,
    pub regions: Vec<[u32; 4]>,
    pub prior_key: Option<String>,
}

/// The answers a question type can have under `cfg` (the balance unit of the generator).
pub fn answers_of(qtype: &str, cfg: &SceneConfig) -> Vec<&'static str> {
    match qtype {
        "colour" => COLOURS.iter().map(|c| c.0).collect(),
        "shape" => KINDS.to_vec(),
        "relation" => cfg.relation.answers().to_vec(),
        "count" => NUMBERS.to_vec(),
        "size" => vec!["yes", "no"],
        _ => vec![],
    }
}

/// Asks a question of type `qtype` whose answer is `want`, changing `objects` where the
/// question needs it (the colour or kind of the object asked about, the objects counted);
/// `None` if this scene cannot carry such a question (the caller draws another).
pub fn ask(
    qtype: &str,
    want: &str,
    objects: &mut Vec<Object>,
    cfg: &SceneConfig,
    rng: &mut StdRng,
) -> Option<Question> {
    match qtype {
        "colour" => {
            let kind = *KINDS.choose(rng)?;
            ask_colour(kind, want, objects)
        }
        "shape" => {
            let colour = COLOURS.choose(rng)?.0;
            ask_shape(colour, want, objects)
        }
        "relation" => ask_relation(want, objects, cfg, rng),
        "count" => ask_count(want, objects, cfg, rng),
        "size" => {
            let (k1, k2) = kind_pair(rng)?;
            ask_size(k1, k2, want, objects, cfg, true)
        }
        _ => None,
    }
}

/// Asks a question of prior-carrying type `qtype` (colour, shape, size) with its answer drawn
/// from `prior`: the subject (the kind, the colour, the pair of kinds) is drawn first, then the
/// answer — the prior's answer for that subject with probability `prior.strength`, else one of
/// the others uniformly. `None` if this scene cannot carry it.
pub fn ask_with_prior(
    qtype: &str,
    prior: &Prior,
    objects: &mut [Object],
    cfg: &SceneConfig,
    rng: &mut StdRng,
) -> Option<Question> {
    let draw = |usual: &'static str, all: &[&'static str], rng: &mut StdRng| {
        if rng.random_bool(prior.strength.clamp(0.0, 1.0)) {
            return Some(usual);
        }
        let others: Vec<&'static str> = all.iter().copied().filter(|a| *a != usual).collect();
        others.choose(rng).copied()
    };
    match qtype {
        "colour" => {
            let kind = *KINDS.choose(rng)?;
            let colours: Vec<&str> = COLOURS.iter().map(|c| c.0).collect();
            let want = draw(prior_colour(kind), &colours, rng)?;
            ask_colour(kind, want, objects)
        }
        "shape" => {
            let colour = COLOURS.choose(rng)?.0;
            let want = draw(prior_kind(colour), &KINDS, rng)?;
            ask_shape(colour, want, objects)
        }
        "size" => {
            let (k1, k2) = kind_pair(rng)?;
            let want = draw(prior_bigger(k1, k2), &["yes", "no"], rng)?;
            // The question keeps the drawn order (its prior answer depends on it).
            ask_size(k1, k2, want, objects, cfg, false)
        }
        _ => None,
    }
}

/// Two different kinds, in random order.
fn kind_pair(rng: &mut StdRng) -> Option<(&'static str, &'static str)> {
    let k1 = *KINDS.choose(rng)?;
    let others: Vec<&'static str> = KINDS.iter().copied().filter(|&k| k != k1).collect();
    Some((k1, *others.choose(rng)?))
}

/// "What colour is the `kind`?" — the scene's only `kind`, recoloured `want`.
fn ask_colour(kind: &str, want: &str, objects: &mut [Object]) -> Option<Question> {
    let i = unique_index(objects, |o| o.kind == kind)?;
    objects[i].colour = want.to_string();
    let o = &objects[i];
    Some(Question {
        question: format!("What colour is the {kind}?"),
        steps: vec![
            format!("I find the {kind}."),
            format!(" It is {}.", o.colour),
        ],
        key: o.colour.clone(),
        regions: vec![o.bbox],
        prior_key: Some(prior_colour(kind).to_string()),
    })
}

/// "What shape is the `colour` object?" — the scene's only `colour` object, made a `want`.
fn ask_shape(colour: &str, want: &str, objects: &mut [Object]) -> Option<Question> {
    let i = unique_index(objects, |o| o.colour == colour)?;
    objects[i].kind = want.to_string();
    let o = &objects[i];
    Some(Question {
        question: format!("What shape is the {colour} object?"),
        steps: vec![
            format!("I find the {colour} object."),
            format!(" It is a {}.", o.kind),
        ],
        key: o.kind.clone(),
        regions: vec![o.bbox],
        prior_key: Some(prior_kind(colour).to_string()),
    })
}

/// "Is the A above or below the B?" (or left / right): two objects clearly apart along the
/// asked axis (short steps), or each inside one third of that axis, in different thirds
/// (grounded steps read each one's third), ordered to give `want`.
fn ask_relation(
    want: &str,
    objects: &[Object],
    cfg: &SceneConfig,
    rng: &mut StdRng,
) -> Option<Question> {
    let (size, axis) = (cfg.size, cfg.relation);
    let grounded = cfg.steps == StepStyle::Grounded;
    let third = |o: &Object| axis_zone(o, axis, size);
    let coord = |o: &Object| match axis {
        Relation::Horizontal => o.centre().0,
        Relation::Vertical => o.centre().1,
    };
    let named_once =
        |o: &Object| unique(objects, |x| x.kind == o.kind && x.colour == o.colour).is_some();
    let mut idx: Vec<usize> = (0..objects.len()).collect();
    rand::seq::SliceRandom::shuffle(idx.as_mut_slice(), rng);
    for &i in &idx {
        for &j in &idx {
            let (a, b) = (&objects[i], &objects[j]);
            if i == j {
                continue;
            }
            if grounded {
                match (third(a), third(b)) {
                    (Some(za), Some(zb)) if za != zb => {}
                    _ => continue,
                }
            } else if (coord(a) - coord(b)).abs() < size as f32 / 8.0 {
                continue;
            }
            if !(named_once(a) && named_once(b)) {
                continue;
            }
            // Order the pair the way that gives the wanted answer.
            let a_first = coord(a) < coord(b);
            let (a, b) = if a_first == (want == axis.answers()[0]) {
                (a, b)
            } else {
                (b, a)
            };
            return Some(relation_question(
                a,
                b,
                want,
                grounded.then(|| (third(a), third(b))),
                axis,
            ));
        }
    }
    None
}

/// The text of a relation question about `a` and `b` with answer `want`; `thirds` are the
/// pair's thirds along `axis` for grounded steps.
fn relation_question(
    a: &Object,
    b: &Object,
    want: &str,
    thirds: Option<(Option<usize>, Option<usize>)>,
    axis: Relation,
) -> Question {
    let steps = match thirds {
        Some((Some(za), Some(zb))) => vec![
            format!("I find the {}.", a.name()),
            format!(" It is {}.", zone_words(axis)[za]),
            format!(" I find the {}.", b.name()),
            format!(" It is {}.", zone_words(axis)[zb]),
            format!(" So it is {want}."),
        ],
        _ => vec![
            format!("I find the {}.", a.name()),
            format!(" I find the {}.", b.name()),
            format!(" It is {want}."),
        ],
    };
    let [first, second] = axis.answers();
    let question = match axis {
        Relation::Horizontal => format!(
            "Is the {} {first} or {second} of the {}?",
            a.name(),
            b.name()
        ),
        Relation::Vertical => format!("Is the {} {first} or {second} the {}?", a.name(), b.name()),
    };
    Question {
        question,
        steps,
        key: want.to_string(),
        regions: vec![a.bbox, b.bbox],
        prior_key: None,
    }
}

/// "How many C shapes are there?": the scene rebuilt around the count — `want` objects of the
/// colour, the rest of other colours.
fn ask_count(
    want: &str,
    objects: &mut Vec<Object>,
    cfg: &SceneConfig,
    rng: &mut StdRng,
) -> Option<Question> {
    let n = NUMBERS.iter().position(|w| *w == want)?;
    let colour = COLOURS.choose(rng)?.0;
    let total = rng.random_range(cfg.min_objects.max(n)..=cfg.max_objects.max(n));
    *objects = random_layout(cfg, total, rng)?;
    let others: Vec<&str> = COLOURS
        .iter()
        .map(|c| c.0)
        .filter(|c| *c != colour)
        .collect();
    for (i, o) in objects.iter_mut().enumerate() {
        o.colour = if i < n {
            colour.to_string()
        } else {
            others.choose(rng)?.to_string()
        };
    }
    rand::seq::SliceRandom::shuffle(objects.as_mut_slice(), rng);
    let hits: Vec<&Object> = objects.iter().filter(|o| o.colour == colour).collect();
    let mut steps = vec![format!("I look for {colour} shapes.")];
    if cfg.steps == StepStyle::Grounded {
        // Every object counted, by kind then size.
        let mut named = hits.clone();
        named.sort_by(|a, b| (&a.kind, !a.large).cmp(&(&b.kind, !b.large)));
        if named.is_empty() {
            steps.push(" I find none.".into());
        }
        steps.extend(named.iter().map(|o| format!(" I find a {}.", o.name())));
    }
    steps.push(format!(" There are {want}."));
    Some(Question {
        question: format!("How many {colour} shapes are there?"),
        steps,
        key: want.to_string(),
        regions: hits.iter().map(|o| o.bbox).collect(),
        prior_key: None,
    })
}

/// "Is the `k1` bigger than the `k2`?" about the scene's only `k1` and only `k2`, one large and
/// one small; with `swap` the pair is asked the way round that gives `want`, else `None` when
/// the scene gives the other answer.
fn ask_size(
    k1: &str,
    k2: &str,
    want: &str,
    objects: &[Object],
    cfg: &SceneConfig,
    swap: bool,
) -> Option<Question> {
    let (mut k1, mut k2) = (k1, k2);
    let (mut a, mut b) = (
        unique(objects, |o| o.kind == k1)?,
        unique(objects, |o| o.kind == k2)?,
    );
    if a.large == b.large {
        return None;
    }
    if (want == "yes") != a.large {
        if !swap {
            return None;
        }
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut k1, &mut k2);
    }
    let answer = if a.large { "Yes" } else { "No" };
    let steps = if cfg.steps == StepStyle::Grounded {
        vec![
            format!("I find the {k1}."),
            format!(" It is {}.", size_word(a)),
            format!(" I find the {k2}."),
            format!(" It is {}.", size_word(b)),
            format!(" {answer}."),
        ]
    } else {
        vec![
            format!("I find the {k1}."),
            format!(" I find the {k2}."),
            format!(" {answer}."),
        ]
    };
    Some(Question {
        question: format!("Is the {k1} bigger than the {k2}?"),
        steps,
        key: want.to_string(),
        regions: vec![a.bbox, b.bbox],
        prior_key: Some(prior_bigger(k1, k2).to_string()),
    })
}

/// How the steps name an object's column third.
pub const COLUMN_ZONES: [&str; 3] = ["on the left", "in the middle", "on the right"];
/// How the steps name an object's row third.
pub const ROW_ZONES: [&str; 3] = ["at the top", "in the middle", "at the bottom"];

fn zone_words(axis: Relation) -> &'static [&'static str; 3] {
    match axis {
        Relation::Horizontal => &COLUMN_ZONES,
        Relation::Vertical => &ROW_ZONES,
    }
}

/// The third of `axis` (column thirds for horizontal, row thirds for vertical) an object lies
/// in, `None` when it straddles two.
fn axis_zone(o: &Object, axis: Relation, size: u32) -> Option<usize> {
    let (lo, hi) = match axis {
        Relation::Horizontal => (o.bbox[0], o.bbox[2]),
        Relation::Vertical => (o.bbox[1], o.bbox[3]),
    };
    let z = zone(lo as f32, size);
    (z == zone(hi as f32 - 1.0, size)).then_some(z)
}

fn size_word(o: &Object) -> &'static str {
    if o.large { "large" } else { "small" }
}

fn unique_index(objects: &[Object], f: impl Fn(&Object) -> bool) -> Option<usize> {
    let mut it = objects.iter().enumerate().filter(|(_, o)| f(o));
    let (i, _) = it.next()?;
    it.next().is_none().then_some(i)
}

/// A description of the whole scene (the pre-training task of the student base and part of the
/// teacher's): one sentence per object — size, colour, kind and where it is (3 × 3 zones) —
/// sorted by kind then colour.
pub fn describe(objects: &[Object], size: u32) -> SyntheticSample {
    let mut sorted: Vec<&Object> = objects.iter().collect();
    sorted.sort_by(|a, b| (&a.kind, &a.colour, !a.large).cmp(&(&b.kind, &b.colour, !b.large)));
    let steps: Vec<String> = sorted
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let size_word = size_word(o);
            let sep = if i == 0 { "" } else { " " };
            let (x, y) = o.centre();
            let at = location(x, y, size);
            let at = if at == "center" {
                "in the center".to_string()
            } else {
                format!("at the {at}")
            };
            format!("{sep}A {size_word} {} {} {at}.", o.colour, o.kind)
        })
        .collect();
    SyntheticSample {
        id: String::new(),
        qtype: "describe".into(),
        question: "Describe the shapes.".into(),
        key: String::new(),
        regions: objects.iter().map(|o| o.bbox).collect(),
        steps,
        objects: objects.to_vec(),
        prior_key: None,
    }
}

/// `n` scene descriptions, deterministic in `seed`.
pub fn generate_descriptions(
    n: usize,
    seed: u64,
    cfg: &SceneConfig,
    id_prefix: &str,
) -> Vec<(SyntheticSample, RgbImage)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let objects = random_scene(cfg, &mut rng);
            let img = render(&objects, cfg, &mut rng);
            let mut s = describe(&objects, cfg.size);
            s.id = format!("{id_prefix}{i:05}");
            (s, img)
        })
        .collect()
}

/// `n` samples (scene + question), deterministic in `seed`. Question types cycle (`cfg.types`),
/// so each appears equally often; within a type, answers are drawn from shuffled blocks holding
/// every answer once, so each answer appears equally often (± one per type) — except the
/// prior-carrying types of a task with a [`Prior`] of strength above 0, whose answers follow the
/// prior ([`ask_with_prior`]).
pub fn generate(
    n: usize,
    seed: u64,
    cfg: &SceneConfig,
    id_prefix: &str,
) -> Vec<(SyntheticSample, RgbImage)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    let types: Vec<&str> = cfg.types.iter().map(String::as_str).collect();
    let mut blocks: Vec<Vec<&'static str>> = vec![vec![]; types.len()];
    let prior = cfg.prior.filter(|p| p.strength > 0.0);
    while out.len() < n {
        let t = out.len() % types.len();
        let qtype = types[t];
        let q_prior = prior.filter(|_| PRIOR_TYPES.contains(&qtype));
        if q_prior.is_none() && blocks[t].is_empty() {
            let mut b = answers_of(qtype, cfg);
            rand::seq::SliceRandom::shuffle(b.as_mut_slice(), &mut rng);
            b.reverse();
            blocks[t] = b;
        }
        let want = blocks[t].last().copied().unwrap_or("(prior)");
        let mut attempts = 0usize;
        let (objects, q) = loop {
            attempts += 1;
            assert!(
                attempts < 10_000,
                "the scene generator cannot ask `{qtype}` with answer `{want}`"
            );
            let mut objects = random_scene(cfg, &mut rng);
            let q = match &q_prior {
                Some(p) => ask_with_prior(qtype, p, &mut objects, cfg, &mut rng),
                None => ask(qtype, want, &mut objects, cfg, &mut rng),
            };
            if let Some(q) = q {
                break (objects, q);
            }
        };
        if q_prior.is_none() {
            blocks[t].pop();
        }
        let img = render(&objects, cfg, &mut rng);
        out.push((
            SyntheticSample {
                id: format!("{id_prefix}{:05}", out.len()),
                qtype: qtype.to_string(),
                question: q.question,
                steps: q.steps,
                key: q.key,
                regions: q.regions,
                objects,
                prior_key: cfg.prior.and(q.prior_key),
            },
            img,
        ));
    }
    out
}

/// The answer key predicted by a generated text: its last word, lower-cased, without
/// punctuation.
pub fn predicted_key(text: &str) -> String {
    text.split_whitespace()
        .last()
        .unwrap_or("")
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

/// Every question / answer text the generator can produce, for training the task tokenizer.
pub fn corpus(seed: u64, n: usize) -> Vec<String> {
    let cfg = SceneConfig::plain();
    let mut texts: Vec<String> = generate(n, seed, &cfg, "c")
        .into_iter()
        .chain(generate_descriptions(n / 4, seed + 1, &cfg, "d"))
        .flat_map(|(s, _)| [s.question.clone(), s.answer()])
        .collect();
    texts.push(crate::io::chat::DEFAULT_SYSTEM.to_string());
    texts.push("user\nassistant\n".into());
    texts
}

/// Writes samples in the Visual-CoT layout: `dir/images/<id>.png` and `dir/<split>.json`
/// (with `qtype`, `key`, `steps`, `regions`, `objects` as extra fields).
pub fn write_split(
    dir: &std::path::Path,
    split: &str,
    samples: &[(SyntheticSample, RgbImage)],
) -> crate::error::Result<()> {
    use crate::error::LavitError;
    let images = dir.join("images");
    std::fs::create_dir_all(&images).map_err(|e| LavitError::Io {
        path: images.clone(),
        source: e,
    })?;
    let mut records = Vec::with_capacity(samples.len());
    for (s, img) in samples {
        let rel = format!("{}.png", s.id);
        img.save(images.join(&rel)).map_err(|e| LavitError::Image {
            path: images.join(&rel).display().to_string(),
            message: e.to_string(),
        })?;
        records.push(s.record(rel));
    }
    crate::data::viscot::write_viscot(&dir.join(format!("{split}.json")), &records)
}

/// The synthetic fields of a Visual-CoT record (`prior_key` only where there is one, so
/// splits of tasks without a prior are written as before).
fn split_extra(s: &SyntheticSample) -> serde_json::Value {
    let mut extra = serde_json::json!({
        "qtype": s.qtype, "key": s.key, "steps": s.steps, "regions": s.regions, "objects": s.objects,
    });
    if let Some(p) = &s.prior_key {
        extra["prior_key"] = serde_json::Value::String(p.clone());
    }
    extra
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_zones() {
        assert_eq!(location(1.0, 1.0, 168), "top left");
        assert_eq!(location(84.0, 84.0, 168), "center");
        assert_eq!(location(167.0, 100.0, 168), "right");
    }

    #[test]
    fn deterministic_by_seed() {
        let cfg = SceneConfig::default();
        let a = generate(20, 7, &cfg, "x");
        let b = generate(20, 7, &cfg, "x");
        let c = generate(20, 8, &cfg, "x");
        for ((sa, ia), (sb, ib)) in a.iter().zip(&b) {
            assert_eq!(sa, sb);
            assert_eq!(ia.as_raw(), ib.as_raw());
        }
        assert!(a.iter().zip(&c).any(|(x, y)| x.0 != y.0));
        let d1 = generate_descriptions(5, 3, &cfg, "d");
        let d2 = generate_descriptions(5, 3, &cfg, "d");
        assert_eq!(
            d1.iter().map(|x| &x.0).collect::<Vec<_>>(),
            d2.iter().map(|x| &x.0).collect::<Vec<_>>()
        );
    }

    #[test]
    fn regions_inside_image_and_objects_disjoint() {
        let cfg = SceneConfig::default();
        for (s, img) in generate(200, 3, &cfg, "r") {
            assert_eq!((img.width(), img.height()), (cfg.size, cfg.size));
            for r in s.regions.iter().chain(s.objects.iter().map(|o| &o.bbox)) {
                assert!(
                    r[0] < r[2] && r[1] < r[3] && r[2] <= cfg.size && r[3] <= cfg.size,
                    "{r:?}"
                );
            }
            for (i, a) in s.objects.iter().enumerate() {
                for b in &s.objects[i + 1..] {
                    let overlap = a.bbox[0] < b.bbox[2]
                        && b.bbox[0] < a.bbox[2]
                        && a.bbox[1] < b.bbox[3]
                        && b.bbox[1] < a.bbox[3];
                    assert!(!overlap, "{}: objects overlap", s.id);
                }
            }
            // Each object's colour is drawn at its centre.
            for o in &s.objects {
                let (cx, cy) = o.centre();
                let rgb = COLOURS.iter().find(|c| c.0 == o.colour).unwrap().1;
                let p = img.get_pixel(cx as u32, (cy as u32).min(o.bbox[3] - 2)).0;
                assert!(
                    p.iter()
                        .zip(rgb)
                        .all(|(a, b)| (*a as i16 - b as i16).abs() <= 6),
                    "{}: {p:?} vs {rgb:?}",
                    s.id
                );
            }
        }
    }

    #[test]
    fn answers_are_consistent_with_the_scene() {
        for steps in [StepStyle::Short, StepStyle::Grounded] {
            for relation in [Relation::Horizontal, Relation::Vertical] {
                answers_are_consistent(SceneConfig {
                    steps,
                    relation,
                    ..SceneConfig::plain()
                });
            }
        }
    }

    fn answers_are_consistent(cfg: SceneConfig) {
        answers_are_consistent_in(&cfg, &generate(500, 11, &cfg, "a"));
    }

    fn answers_are_consistent_in(cfg: &SceneConfig, samples: &[(SyntheticSample, RgbImage)]) {
        let cfg = cfg.clone();
        let grounded = cfg.steps == StepStyle::Grounded;
        let mut seen = std::collections::BTreeSet::new();
        for (s, _) in samples {
            seen.insert(s.qtype.clone());
            assert_eq!(
                predicted_key(&s.answer()),
                s.key,
                "{}: key is the last word",
                s.id
            );
            let objs = &s.objects;
            assert!(
                (cfg.min_objects..=cfg.max_objects).contains(&objs.len()),
                "{}: {} objects",
                s.id,
                objs.len()
            );
            let words: Vec<&str> = s.question.trim_end_matches('?').split(' ').collect();
            match s.qtype.as_str() {
                "colour" => {
                    let kind = words.last().unwrap();
                    let hits: Vec<_> = objs.iter().filter(|o| &o.kind == kind).collect();
                    assert_eq!(hits.len(), 1);
                    assert_eq!(hits[0].colour, s.key);
                }
                "shape" => {
                    let colour = words[words.len() - 2];
                    let hits: Vec<_> = objs.iter().filter(|o| o.colour == colour).collect();
                    assert_eq!(hits.len(), 1);
                    assert_eq!(hits[0].kind, s.key);
                }
                "count" => {
                    let colour = words[2];
                    let n = objs.iter().filter(|o| o.colour == colour).count();
                    assert_eq!(NUMBERS[n], s.key);
                    assert_eq!(s.regions.len(), n);
                    let found = s
                        .steps
                        .iter()
                        .filter(|t| t.starts_with(" I find a "))
                        .count();
                    let named = if grounded { n } else { 0 };
                    assert_eq!(found, named, "{}: objects named in the steps", s.id);
                }
                "relation" => {
                    let find = |c: &str, k: &str| {
                        objs.iter().find(|o| o.colour == c && o.kind == k).unwrap()
                    };
                    let a = find(words[2], words[3]);
                    let b = find(words[words.len() - 2], words[words.len() - 1]);
                    let (ca, cb, thirds) = match cfg.relation {
                        Relation::Horizontal => (a.centre().0, b.centre().0, COLUMN_ZONES),
                        Relation::Vertical => (a.centre().1, b.centre().1, ROW_ZONES),
                    };
                    let [first, second] = cfg.relation.answers();
                    assert!(
                        s.question.contains(&format!("{first} or {second}")),
                        "{}",
                        s.id
                    );
                    assert_eq!(if ca < cb { first } else { second }, s.key);
                    if grounded {
                        let (za, zb) = (
                            axis_zone(a, cfg.relation, cfg.size),
                            axis_zone(b, cfg.relation, cfg.size),
                        );
                        assert!(za.is_some() && zb.is_some() && za != zb, "{}", s.id);
                        assert_eq!(s.steps[1], format!(" It is {}.", thirds[za.unwrap()]));
                        assert_eq!(s.steps[3], format!(" It is {}.", thirds[zb.unwrap()]));
                        // The thirds agree with the coordinates of the objects' boxes.
                        let span = |o: &Object| match cfg.relation {
                            Relation::Horizontal => (o.bbox[0], o.bbox[2]),
                            Relation::Vertical => (o.bbox[1], o.bbox[3]),
                        };
                        let (lo, hi) = span(a);
                        let third = cfg.size / 3;
                        assert!(lo >= za.unwrap() as u32 * third, "{}", s.id);
                        assert!(hi <= (za.unwrap() as u32 + 1) * third + 1, "{}", s.id);
                    } else {
                        assert!((ca - cb).abs() >= cfg.size as f32 / 8.0);
                        assert_eq!(s.steps.len(), 3);
                    }
                }
                "size" => {
                    let a = objs.iter().find(|o| o.kind == words[2]).unwrap();
                    let b = objs.iter().find(|o| o.kind == words[6]).unwrap();
                    assert_ne!(a.large, b.large, "{}: sizes differ", s.id);
                    assert_eq!(if a.large { "yes" } else { "no" }, s.key);
                    if grounded {
                        assert_eq!(s.steps[1], format!(" It is {}.", size_word(a)));
                        assert_eq!(s.steps[3], format!(" It is {}.", size_word(b)));
                    } else {
                        assert_eq!(s.steps.len(), 3);
                    }
                }
                other => panic!("unexpected question type {other}"),
            }
        }
        assert_eq!(seen.len(), cfg.types.len());
    }

    /// The language-prior variant (the demo's `task-prior.json`): in its training split the
    /// prior-carrying types follow the prior about 85 % of the time and stay consistent with
    /// their scenes; its balanced splits are balanced over every answer, record each question's
    /// prior answer, and hold enough prior-contradicting questions (≥ 300 of 600); a task
    /// without a prior records none.
    #[test]
    fn the_prior_variant_splits() {
        let types: Vec<String> = PRIOR_TYPES.iter().map(|t| t.to_string()).collect();
        let task = SceneConfig {
            background: Background::Zones,
            steps: StepStyle::Grounded,
            relation: Relation::Vertical,
            types: types.clone(),
            prior: Some(Prior { strength: 0.85 }),
            ..Default::default()
        };
        let train = generate(3000, 0, &task, "p");
        answers_are_consistent_in(&task, &train);
        for t in &types {
            let of: Vec<&SyntheticSample> = train
                .iter()
                .map(|s| &s.0)
                .filter(|s| &s.qtype == t)
                .collect();
            assert_eq!(of.len(), 1000, "{t}");
            let follow = of
                .iter()
                .filter(|s| s.prior_key.as_deref() == Some(s.key.as_str()))
                .count() as f64
                / 1000.0;
            // Binomial(1000, 0.85): standard deviation 1.1 points.
            assert!(
                (follow - 0.85).abs() < 0.04,
                "{t}: {follow} follow the prior"
            );
        }
        let test = generate(600, 1_000_003, &task.balanced(), "t");
        let mut contradicting = 0;
        for t in &types {
            let of: Vec<&SyntheticSample> = test
                .iter()
                .map(|s| &s.0)
                .filter(|s| &s.qtype == t)
                .collect();
            let answers = answers_of(t, &task);
            let share = of.len() / answers.len();
            for a in &answers {
                let c = of.iter().filter(|s| s.key == *a).count();
                assert!(c == share || c == share + 1, "{t}: `{a}` {c} times");
            }
            assert!(
                of.iter().all(|s| s.prior_key.is_some()),
                "{t}: no prior answer"
            );
            contradicting += of
                .iter()
                .filter(|s| s.prior_key.as_deref() != Some(s.key.as_str()))
                .count();
        }
        // Expected: 5/6 of colour, 2/3 of shape, 1/2 of size questions = 400.
        assert!(
            contradicting >= 300,
            "{contradicting} prior-contradicting questions"
        );
        let plain = generate(50, 0, &SceneConfig::plain(), "n");
        assert!(plain.iter().all(|s| s.0.prior_key.is_none()));
        // The prior's maps: the usual colour's usual kind is the kind.
        for k in KINDS {
            assert_eq!(prior_kind(prior_colour(k)), k);
        }
        assert_eq!(prior_bigger("circle", "triangle"), "yes");
        assert_eq!(prior_bigger("triangle", "square"), "no");
    }

    /// Every question type is balanced over all of its answers — count from zero to four,
    /// relation and size half and half — in any split and for any seed: each answer's count
    /// differs from the uniform share by at most one.
    #[test]
    fn every_question_type_is_balanced_over_its_answers() {
        let grounded = SceneConfig {
            steps: StepStyle::Grounded,
            ..SceneConfig::plain()
        };
        let vertical = SceneConfig {
            relation: Relation::Vertical,
            ..grounded.clone()
        };
        for (cfg, seed, n) in [
            (SceneConfig::plain(), 0u64, 1200usize),
            (SceneConfig::default(), 1_000_003, 200),
            (SceneConfig::default(), 7, 333),
            (grounded, 5, 600),
            (vertical, 9, 600),
        ] {
            let samples = generate(n, seed, &cfg, "b");
            for (t, qt) in QUESTION_TYPES.iter().enumerate() {
                let answers = answers_of(qt, &cfg);
                let of_type: Vec<&SyntheticSample> = samples
                    .iter()
                    .map(|s| &s.0)
                    .filter(|s| s.qtype == *qt)
                    .collect();
                let expected_n = (n + QUESTION_TYPES.len() - 1 - t) / QUESTION_TYPES.len();
                assert_eq!(of_type.len(), expected_n, "{qt}: questions of this type");
                let share = of_type.len() / answers.len();
                for a in &answers {
                    let c = of_type.iter().filter(|s| s.key == *a).count();
                    assert!(
                        c == share || c == share + 1,
                        "seed {seed}, {qt}: answer `{a}` {c} times of {} (uniform: {share})",
                        of_type.len()
                    );
                }
                assert!(
                    of_type.iter().all(|s| answers.contains(&s.key.as_str())),
                    "{qt}: an answer outside {answers:?}"
                );
            }
        }
    }

    #[test]
    fn shaded_background_codes_the_position() {
        let cfg = SceneConfig {
            background: Background::Shaded,
            ..Default::default()
        };
        let img = render(&[], &cfg, &mut StdRng::seed_from_u64(0));
        let mean = |xs: std::ops::Range<u32>, ys: std::ops::Range<u32>, c: usize| {
            let n = (xs.len() * ys.len()) as f32;
            ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
                .map(|(x, y)| img.get_pixel(x, y)[c] as f32)
                .sum::<f32>()
                / n
        };
        let s = cfg.size;
        // Brighter to the right, less blue (relative to grey) to the bottom.
        assert!(mean(0..28, 0..s, 0) + 60.0 < mean(s - 28..s, 0..s, 0));
        let tint = |ys: std::ops::Range<u32>| mean(0..s, ys.clone(), 0) - mean(0..s, ys, 2);
        assert!(tint(0..28) + 20.0 < tint(s - 28..s));
        // The plain task's background is uniform.
        let plain = render(&[], &SceneConfig::plain(), &mut StdRng::seed_from_u64(0));
        let left: u32 = (0..s).map(|y| plain.get_pixel(0, y)[0] as u32).sum();
        let right: u32 = (0..s).map(|y| plain.get_pixel(s - 1, y)[0] as u32).sum();
        assert!(left.abs_diff(right) < 2 * s);
    }

    #[test]
    fn zones_background_codes_the_zone() {
        let cfg = SceneConfig {
            background: Background::Zones,
            ..Default::default()
        };
        let img = render(&[], &cfg, &mut StdRng::seed_from_u64(0));
        let t = cfg.size / 3;
        for zy in 0..3 {
            for zx in 0..3 {
                let cells = (zy * t..zy * t + t)
                    .flat_map(|y| (zx * t..zx * t + t).map(move |x| (x, y)))
                    .collect::<Vec<_>>();
                let mean = |f: &dyn Fn(&Rgb<u8>) -> f32| {
                    cells
                        .iter()
                        .map(|&(x, y)| f(img.get_pixel(x, y)))
                        .sum::<f32>()
                        / cells.len() as f32
                };
                // Blue minus red by row third, green minus their mean by column third.
                let warm = mean(&|p| p[2] as f32 - p[0] as f32);
                let green = mean(&|p| p[1] as f32 - (p[0] as f32 + p[2] as f32) / 2.0);
                assert!(
                    (warm - 40.0 * (1.0 - zy as f32)).abs() < 3.0,
                    "({zx}, {zy}): {warm}"
                );
                assert!(
                    (green - 20.0 * (zx as f32 - 1.0)).abs() < 3.0,
                    "({zx}, {zy}): {green}"
                );
            }
        }
    }

    #[test]
    fn predicted_key_takes_the_last_word() {
        assert_eq!(predicted_key("The circle is at the top. It is Red."), "red");
        assert_eq!(predicted_key(""), "");
    }

    /// Settings the generator cannot draw are refused before it would loop or panic.
    #[test]
    fn impossible_settings_are_refused() {
        assert_eq!(SceneConfig::default().validate(), Ok(()));
        let with = |size, min_objects, max_objects| SceneConfig {
            size,
            min_objects,
            max_objects,
            ..Default::default()
        };
        assert_eq!(with(84, 2, 4).validate(), Ok(()));
        assert!(
            with(56, 3, 5)
                .validate()
                .unwrap_err()
                .contains("three 28-px cells")
        );
        assert!(with(168, 1, 5).validate().is_err());
        // Absurd sizes are refused, not an overflow panic or a multi-gigabyte image.
        assert!(
            with(4_000_000_000, 3, 5)
                .validate()
                .unwrap_err()
                .contains("over")
        );
        assert_eq!(with(MAX_SIZE, 3, 5).validate(), Ok(()));
        assert!(with(168, 5, 3).validate().is_err());
        assert!(
            with(168, 3, 19)
                .validate()
                .unwrap_err()
                .contains("do not fit")
        );
        // What validates, generates.
        assert_eq!(generate(10, 0, &with(84, 2, 4), "v").len(), 10);
    }

    /// The generation budget covers the longest answer of every task variant with a 16-token
    /// latent block and the end-of-turn token, so no answer is cut before its key word.
    #[test]
    fn budget_covers_every_answer_and_the_latent_block() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../assets/synthetic/tokenizer.json");
        let tok = crate::io::chat::ChatTokenizer::from_file(&path).unwrap();
        let mut longest = 0;
        for steps in [StepStyle::Short, StepStyle::Grounded] {
            for relation in [Relation::Horizontal, Relation::Vertical] {
                let cfg = SceneConfig {
                    steps,
                    relation,
                    max_objects: 6,
                    ..Default::default()
                };
                for (s, _) in generate(400, 3, &cfg, "b") {
                    longest = longest.max(tok.encode(&s.answer()).unwrap().len());
                }
            }
        }
        assert!(longest > 30, "longest answer {longest} tokens");
        assert!(
            longest + 16 < MAX_NEW_TOKENS,
            "longest answer {longest} tokens + 16 latents + end of turn > {}",
            MAX_NEW_TOKENS
        );
    }
}
