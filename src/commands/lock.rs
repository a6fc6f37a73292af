//! One `build` at a time per engine and namespace. Two runs on the same
//! images would race for the same tags (a child tagged `latest` on a parent
//! the other run moved away), so the second waits for the first: an
//! advisory lock on a file in the cache folder (`locks/<hash>.lock`), held
//! for the whole run and let go by the kernel when the process ends, however
//! it ends. It keeps apart runs on one machine; runs on two machines that
//! share a remote engine are not seen (docs/guarantees.md).

use crate::util::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};

/// Held while it lives.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Take the lock of `engine` + `namespace`. When another run holds it:
/// wait (saying so on stderr), or with `wait == false` fail with exit 3.
pub fn acquire(engine: &str, namespace: &str, wait: bool) -> Result<Option<RunLock>> {
    let Some(dir) = crate::plan::history::cache_dir().map(|d| d.join("locks")) else {
        return Ok(None);
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
    let key = blake3::hash(format!("{engine}\0{namespace}").as_bytes()).to_hex();
    let path = dir.join(format!("{}.lock", &key[..16]));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::write(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = holder(&mut file);
            let what = format!(
                "another strata run{holder} is building namespace `{namespace}` on `{engine}`"
            );
            if !wait {
                return Err(Error::engine(what)
                    .help("wait for it to finish, or leave out --no-wait to wait for it here"));
            }
            eprintln!(
                "strata: {what}; waiting for it to finish (lock {})",
                path.display()
            );
            file.lock().map_err(|e| Error::write(&path, e))?;
        }
        Err(TryLockError::Error(e)) => return Err(Error::write(&path, e)),
    }
    // Say who holds it, for the message a waiting run prints.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(Some(RunLock { _file: file }))
}

fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut text);
    match text.trim().parse::<u32>() {
        Ok(pid) => format!(" (pid {pid})"),
        Err(_) => String::new(),
    }
}
