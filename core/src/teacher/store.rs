//! The signal store: a directory of teacher signals that extraction fills and training reads.
//!
//! ```text
//! STORE/index.jsonl                     one SignalRecord per line (index.shard-I-of-N.jsonl
//!                                       when extraction is split over machines)
//! STORE/signals-<shard>-<n>.safetensors `<id>.vtop` bf16 (or f32; f16 in older stores)
//!                                       [N_img, d_T], `<id>.traj` f32 [T, N_img],
//!                                       `<id>.topk` i64 [T, K]
//! STORE/summary.json                    counts of the run (summary.shard-I-of-N.json when
//!                                       split): samples kept, and the ids dropped by the
//!                                       teacher-correctness filter (resume skips them too)
//! ```
//!
//! Writes are crash-safe: a shard is written to a temporary file and renamed, and only then
//! are its records appended to the index in one `write` + `fsync`. A kill leaves either a
//! complete shard with its records, or an unindexed shard that resume ignores (its samples are
//! redone); a torn last index line is dropped on open. Records are keyed by id: resume skips
//! ids already present and readers never see an id twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::extract::TeacherSignals;
use crate::error::{LavitError, Result};
use crate::io::checkpoint::write_atomic;
use crate::io::tensors::{HostTensor, read_safetensors, to_safetensors_bytes};

/// One sample's entry in `index.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    pub id: String,
    pub image: String,
    pub question: String,
    /// The dataset's answer: the student's cross-entropy target.
    pub answer: String,
    /// The steps whose maps are stored: the teacher's own answer's when it was generated,
    /// else the dataset answer's.
    pub steps: Vec<String>,
    /// The teacher's own greedy answer, when extraction generated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_answer: Option<String>,
    pub grid_h: usize,
    pub grid_w: usize,
    pub d_teacher: usize,
    pub file: String,
    /// Extra fields carried from the dataset (e.g. ground-truth regions).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

/// How `V_top` is stored. f16's range (±65504) is too small for the activation outliers of
/// large teachers' last layers; bf16 keeps f32's range at half its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VtopDtype {
    #[default]
    Bf16,
    F32,
    F16,
}

impl VtopDtype {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "bf16" => Ok(Self::Bf16),
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            o => Err(format!("V_top dtype `{o}`: expected bf16, f32 or f16")),
        }
    }
}

/// `summary.json` of a store (one per shard): what extraction kept and dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreSummary {
    /// Samples whose signals are in the store (this shard).
    pub kept: usize,
    /// Samples dropped because the teacher's own answer disagreed with the gold answer.
    pub dropped_incorrect: usize,
    /// Their ids (resume does not redo them).
    #[serde(default)]
    pub dropped_ids: Vec<String>,
}

/// Writer side: appends signals, resumable and shardable.
pub struct SignalWriter {
    dir: PathBuf,
    index_path: PathBuf,
    summary_path: PathBuf,
    shard_tag: String,
    next_file: usize,
    done: HashSet<String>,
    /// Records in this shard's own index.
    own: usize,
    dropped: std::collections::BTreeSet<String>,
    pending: Vec<(SignalRecord, TeacherSignals)>,
    flush_every: usize,
    d_teacher: Option<usize>,
    vtop_dtype: VtopDtype,
    /// One writer per shard ([`crate::io::lock`]): a second `lavit extract` of the same shard
    /// into the same directory is refused while this one runs.
    _lock: crate::io::lock::DirLock,
}

fn lock_name(shard: usize, num_shards: usize) -> String {
    if num_shards <= 1 {
        ".lavit-writer.lock".into()
    } else {
        format!(".lavit-writer.shard-{shard}-of-{num_shards}.lock")
    }
}

fn summary_name(shard: usize, num_shards: usize) -> String {
    if num_shards <= 1 {
        "summary.json".into()
    } else {
        format!("summary.shard-{shard}-of-{num_shards}.json")
    }
}

fn index_name(shard: usize, num_shards: usize) -> String {
    if num_shards <= 1 {
        "index.jsonl".into()
    } else {
        format!("index.shard-{shard}-of-{num_shards}.jsonl")
    }
}

/// Reads an index file. A torn final line — what a crash in the middle of an append leaves:
/// no closing newline — is dropped with a warning (resume extracts that sample again); an
/// unparsable line anywhere else is an error naming the file.
fn read_index(path: &Path) -> Result<Vec<SignalRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(LavitError::Io {
                path: path.into(),
                source: e,
            });
        }
    };
    let mut out = Vec::new();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        if last && !line.ends_with('\n') {
            tracing::warn!(
                "{}: dropping a torn last line ({} bytes; a crash during an append): its sample is extracted again on resume",
                path.display(),
                line.len()
            );
            break;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        match serde_json::from_str::<SignalRecord>(trimmed) {
            Ok(r) => out.push(r),
            Err(e) => {
                return Err(LavitError::Json {
                    path: path.to_path_buf(),
                    source: e,
                });
            }
        }
    }
    Ok(out)
}

impl SignalWriter {
    /// Opens (or creates) `dir` for shard `shard` of `num_shards`, skipping ids already stored
    /// in any index of the directory.
    pub fn open(dir: &Path, shard: usize, num_shards: usize, flush_every: usize) -> Result<Self> {
        if num_shards == 0 || shard >= num_shards {
            return Err(LavitError::Invalid(format!(
                "shard {shard} of {num_shards} is not valid"
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| LavitError::Io {
            path: dir.into(),
            source: e,
        })?;
        let lock = crate::io::lock::DirLock::acquire(
            dir,
            &lock_name(shard, num_shards),
            &format!("the signal writer of shard {shard} of {num_shards}"),
        )?;
        let index_path = dir.join(index_name(shard, num_shards));
        // Drop a torn last line so appends start on a clean line.
        let own = read_index(&index_path)?;
        let clean: String = own
            .iter()
            .map(|r| serde_json::to_string(r).expect("record serialises") + "\n")
            .collect();
        if index_path.exists() {
            write_atomic(&index_path, clean.as_bytes())?;
        }
        let existing = SignalStore::open(dir)?;
        let d_teacher = existing.records.first().map(|r| r.d_teacher);
        let done: HashSet<String> = existing.records.iter().map(|r| r.id.clone()).collect();
        let summary_path = dir.join(summary_name(shard, num_shards));
        let dropped = if summary_path.is_file() {
            let s: StoreSummary = crate::error::read_json(&summary_path)?;
            s.dropped_ids.into_iter().collect()
        } else {
            Default::default()
        };
        let shard_tag = format!("{shard}");
        let mut next_file = 0;
        while dir
            .join(format!("signals-{shard_tag}-{next_file:05}.safetensors"))
            .exists()
        {
            next_file += 1;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            index_path,
            summary_path,
            shard_tag,
            next_file,
            done,
            own: own.len(),
            dropped,
            pending: Vec::new(),
            flush_every: flush_every.max(1),
            d_teacher,
            vtop_dtype: VtopDtype::default(),
            _lock: lock,
        })
    }

    /// Stores `V_top` as `dtype` from now on (a store may mix dtypes; readers widen all).
    pub fn with_vtop_dtype(mut self, dtype: VtopDtype) -> Self {
        self.vtop_dtype = dtype;
        self
    }

    /// Whether `id` is stored, queued, or was dropped by the correctness filter.
    pub fn contains(&self, id: &str) -> bool {
        self.done.contains(id)
            || self.dropped.contains(id)
            || self.pending.iter().any(|(r, _)| r.id == id)
    }

    /// Records that sample `id` was dropped (the teacher answered it wrongly).
    pub fn drop_sample(&mut self, id: &str) -> Result<()> {
        self.dropped.insert(id.to_string());
        self.write_summary()
    }

    /// This shard's counts so far.
    pub fn summary(&self) -> StoreSummary {
        StoreSummary {
            kept: self.own + self.pending.len(),
            dropped_incorrect: self.dropped.len(),
            dropped_ids: self.dropped.iter().cloned().collect(),
        }
    }

    fn write_summary(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.summary()).expect("summary serialises");
        write_atomic(&self.summary_path, &json)
    }

    pub fn len(&self) -> usize {
        self.done.len() + self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The teacher width of the store (from existing records), if any.
    pub fn d_teacher(&self) -> Option<usize> {
        self.d_teacher
    }

    /// Queues one sample; writes a shard every `flush_every` samples.
    pub fn push(&mut self, mut record: SignalRecord, signals: TeacherSignals) -> Result<()> {
        if self.contains(&record.id) {
            return Ok(());
        }
        if let Some(d) = self.d_teacher
            && d != signals.d_teacher
        {
            return Err(LavitError::Invalid(format!(
                "the store holds d_T = {d} but this teacher gives d_T = {}",
                signals.d_teacher
            )));
        }
        self.d_teacher = Some(signals.d_teacher);
        record.grid_h = signals.grid.0;
        record.grid_w = signals.grid.1;
        record.d_teacher = signals.d_teacher;
        self.pending.push((record, signals));
        if self.pending.len() >= self.flush_every {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the queued samples: shard first (atomic), then their index lines.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let file = format!(
            "signals-{}-{:05}.safetensors",
            self.shard_tag, self.next_file
        );
        let mut tensors = BTreeMap::new();
        for (r, s) in &self.pending {
            let n = s.n_img();
            let shape = vec![n, s.d_teacher];
            let vtop = match self.vtop_dtype {
                VtopDtype::F32 => HostTensor::f32(shape, s.vtop.clone()),
                VtopDtype::Bf16 => HostTensor::Bf16 {
                    shape,
                    data: s.vtop.iter().map(|&v| half::bf16::from_f32(v)).collect(),
                },
                VtopDtype::F16 => {
                    if let Some(v) = s.vtop.iter().find(|v| v.abs() > f32::from(half::f16::MAX)) {
                        return Err(LavitError::Invalid(format!(
                            "sample {}: V_top holds {v}, beyond f16's range; store it as bf16 or f32 (--vtop-dtype)",
                            r.id
                        )));
                    }
                    HostTensor::F16 {
                        shape,
                        data: s.vtop.iter().map(|&v| half::f16::from_f32(v)).collect(),
                    }
                }
            };
            tensors.insert(format!("{}.vtop", r.id), vtop);
            tensors.insert(
                format!("{}.traj", r.id),
                HostTensor::f32(
                    vec![s.traj.len(), n],
                    s.traj.iter().flatten().copied().collect(),
                ),
            );
            let k = s.topk.first().map(|t| t.len()).unwrap_or(0);
            tensors.insert(
                format!("{}.topk", r.id),
                HostTensor::i64(
                    vec![s.topk.len(), k],
                    s.topk.iter().flatten().map(|&i| i as i64).collect(),
                ),
            );
        }
        write_atomic(&self.dir.join(&file), &to_safetensors_bytes(&tensors)?)?;
        // A crash here leaves a shard file no index names: reopening skips its number.
        crate::error::failpoint!("store::after_shard");
        let mut lines = String::new();
        for (r, _) in &self.pending {
            let mut r = r.clone();
            r.file = file.clone();
            lines.push_str(&serde_json::to_string(&r).expect("record serialises"));
            lines.push('\n');
        }
        self.append_index(&lines)?;
        for (r, _) in self.pending.drain(..) {
            self.done.insert(r.id);
            self.own += 1;
        }
        self.next_file += 1;
        self.write_summary()
    }
}

impl SignalWriter {
    /// Appends `lines` to this shard's index and syncs it. A crash or a full disk in the middle
    /// leaves a torn last line, which [`SignalWriter::open`] drops.
    fn append_index(&self, lines: &str) -> Result<()> {
        let io = |e| LavitError::Io {
            path: self.index_path.clone(),
            source: e,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.index_path)
            .map_err(io)?;
        let mut append = || -> std::io::Result<()> {
            crate::error::failpoint!("store::append", |_| {
                // Half the lines reach the disk, then it is full.
                f.write_all(&lines.as_bytes()[..lines.len() / 2])?;
                Err(crate::error::enospc())
            });
            f.write_all(lines.as_bytes())?;
            f.sync_all()
        };
        append().map_err(io)
    }
}

impl Drop for SignalWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Reader side: every record of every index in the directory, first occurrence of an id wins.
pub struct SignalStore {
    pub dir: PathBuf,
    pub records: Vec<SignalRecord>,
    cache: HashMap<String, std::collections::BTreeMap<String, HostTensor>>,
}

impl SignalStore {
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(LavitError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "signal store directory not found",
                ),
            });
        }
        let mut indexes: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| LavitError::Io {
                path: dir.into(),
                source: e,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("index") && n.ends_with(".jsonl"))
            })
            .collect();
        indexes.sort();
        let mut seen = HashSet::new();
        let mut records = Vec::new();
        for idx in indexes {
            for r in read_index(&idx)? {
                if seen.insert(r.id.clone()) {
                    records.push(r);
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            records,
            cache: HashMap::new(),
        })
    }

    /// The signals of `record`.
    pub fn load(&mut self, record: &SignalRecord) -> Result<TeacherSignals> {
        if !self.cache.contains_key(&record.file) {
            let t = read_safetensors(&self.dir.join(&record.file))?;
            self.cache.insert(record.file.clone(), t);
        }
        let t = &self.cache[&record.file];
        let get = |k: &str| {
            t.get(&format!("{}.{k}", record.id))
                .ok_or_else(|| LavitError::Weights {
                    path: self.dir.join(&record.file),
                    message: format!("no tensor `{}.{k}`", record.id),
                })
        };
        let vtop = get("vtop")?;
        let traj = get("traj")?;
        let topk = get("topk")?;
        let n = record.grid_h * record.grid_w;
        if vtop.shape() != [n, record.d_teacher] || traj.shape().get(1) != Some(&n) {
            return Err(LavitError::Invalid(format!(
                "{}: stored shapes {:?}/{:?} disagree with grid {}x{} and d_T {}",
                record.id,
                vtop.shape(),
                traj.shape(),
                record.grid_h,
                record.grid_w,
                record.d_teacher
            )));
        }
        let t_steps = traj.shape()[0];
        let traj_v = traj.to_f32();
        let k = topk.shape().get(1).copied().unwrap_or(0);
        let topk_v = topk.to_i64();
        Ok(TeacherSignals {
            vtop: vtop.to_f32(),
            d_teacher: record.d_teacher,
            traj: traj_v.chunks(n).take(t_steps).map(|c| c.to_vec()).collect(),
            topk: topk_v
                .chunks(k.max(1))
                .take(t_steps)
                .map(|c| c.iter().map(|&i| i as usize).collect())
                .collect(),
            grid: (record.grid_h, record.grid_w),
        })
    }
}
