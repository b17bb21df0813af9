//! One writer per output: an OS advisory lock on a file in the output directory (`flock` on
//! Unix, `LockFileEx` on Windows, through `std::fs::File::try_lock`). The OS releases it when
//! the holder exits, crashed or not, so a stale lock file never blocks a later run; the file
//! itself only says who holds it. Within one process the lock is re-entrant (a training job
//! that locks its directory calls the trainer, which locks it again).

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::error::{LavitError, Result};

/// A held lock; released when the last guard of this process drops it (or the process ends).
#[derive(Debug, Clone)]
pub struct DirLock {
    _file: Arc<File>,
    path: PathBuf,
}

/// The locks this process holds, by lock-file path.
static HELD: Mutex<Option<HashMap<PathBuf, Weak<File>>>> = Mutex::new(None);

impl DirLock {
    /// Locks `dir/name` for `what` (e.g. "lavit train"), creating `dir`. Fails at once, naming
    /// the holder (its process id, command and start time), when another process holds it.
    pub fn acquire(dir: &Path, name: &str, what: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| LavitError::io(dir, e))?;
        let path = std::fs::canonicalize(dir)
            .map_err(|e| LavitError::io(dir, e))?
            .join(name);
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        let held = held.get_or_insert_with(HashMap::new);
        if let Some(file) = held.get(&path).and_then(Weak::upgrade) {
            return Ok(Self { _file: file, path });
        }
        let file = Arc::new(lock_file(&path, dir, what)?);
        held.insert(path.clone(), Arc::downgrade(&file));
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens and locks `path`, then writes who holds it.
fn lock_file(path: &Path, dir: &Path, what: &str) -> Result<File> {
    let io = |e| LavitError::io(path, e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // Best effort: the holder may be writing it this instant.
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process",
                h => h,
            };
            return Err(LavitError::Invalid(format!(
                "{} is in use by {holder}; wait for it to finish or choose another output directory (lock file {})",
                dir.display(),
                path.display()
            )));
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let pid = std::process::id();
    let note = format!("`{what}` (pid {pid}, running since {h:02}:{m:02}:{s:02} UTC)\n");
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(note.as_bytes()).map_err(io)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_process_is_refused_and_a_crash_releases_the_lock() {
        let dir = std::env::temp_dir().join(format!("lavit-lock-test-{}", std::process::id()));
        let a = DirLock::acquire(&dir, ".lock", "lavit train").unwrap();
        // Re-entrant in this process.
        let again = DirLock::acquire(&dir, ".lock", "lavit train").unwrap();
        assert_eq!(a.path(), again.path());
        // Another open file description (as another process has) is refused, naming the holder.
        let other = OpenOptions::new().write(true).open(a.path()).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        let err = lock_file(a.path(), &dir, "x").unwrap_err().to_string();
        assert!(err.contains("is in use by `lavit train` (pid "), "{err}");
        drop((a, again));
        // Released with the last guard: the OS lock goes with the file.
        assert!(other.try_lock().is_ok());
        drop(other);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
