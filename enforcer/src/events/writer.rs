//! Writes event lines to a file, stdout or stderr. A failed write (a full disk, say) loses
//! nothing: the line stays queued in memory, a warning says so, and writing is retried; what
//! is still queued at the end goes to stderr.
use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{self, Seek as _, Write as _},
    path::PathBuf,
};

/// Where events go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Stderr,
    Stdout,
    File(PathBuf),
}

impl Target {
    pub fn parse(s: &str) -> Self {
        match s {
            "-" => Self::Stdout,
            "stderr" => Self::Stderr,
            path => Self::File(PathBuf::from(path)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Stderr => "stderr".into(),
            Self::Stdout => "stdout".into(),
            Self::File(p) => p.display().to_string(),
        }
    }
}

/// Most lines held in memory while the target fails.
const MAX_QUEUED: usize = 1_000_000;

pub struct Writer {
    target: Target,
    file: Option<File>,
    /// Rotate a file at this size (`path.1` … `path.keep`); 0: never.
    max_bytes: u64,
    keep: u32,
    /// The file's size as last written.
    size: u64,
    deferred: bool,
    queue: VecDeque<String>,
    failing: Option<io::ErrorKind>,
    /// Lines that did not fit in memory either (counted and reported, never silent).
    pub lost: u64,
}

impl Writer {
    /// Opens the target; a file is created or appended to.
    pub fn open(target: Target) -> io::Result<Self> {
        let file = match &target {
            Target::File(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            _ => None,
        };
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        Ok(Self {
            target,
            file,
            max_bytes: 0,
            keep: 0,
            size,
            deferred: false,
            queue: VecDeque::new(),
            failing: None,
            lost: 0,
        })
    }

    /// Rotates the file when it reaches `max_bytes`, keeping `keep` old ones.
    pub fn rotating(mut self, max_bytes: u64, keep: u32) -> Self {
        self.max_bytes = max_bytes;
        self.keep = keep;
        self
    }

    /// Opens the file again at its path (after logrotate moved it away).
    pub fn reopen(&mut self) {
        if let Target::File(p) = &self.target {
            match OpenOptions::new().create(true).append(true).open(p) {
                Ok(f) => {
                    self.size = f.metadata().map_or(0, |m| m.len());
                    self.file = Some(f);
                }
                Err(e) => eprintln!("enforcer: cannot reopen {}: {e}", p.display()),
            }
        }
    }

    /// `path` → `path.1` → … → `path.keep` (the oldest goes), then a new `path`.
    fn rotate(&mut self) -> io::Result<()> {
        let Target::File(p) = &self.target else {
            return Ok(());
        };
        let numbered = |n: u32| {
            let mut s = p.as_os_str().to_owned();
            s.push(format!(".{n}"));
            PathBuf::from(s)
        };
        if self.keep == 0 {
            std::fs::remove_file(p)?;
        } else {
            for n in (1..self.keep).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1))?;
                }
            }
            std::fs::rename(p, numbered(1))?;
        }
        self.file = Some(OpenOptions::new().create(true).append(true).open(p)?);
        Ok(())
    }

    pub fn write(&mut self, line: String) {
        if self.queue.len() >= MAX_QUEUED {
            self.lost += 1;
            return;
        }
        self.queue.push_back(line);
        if !self.deferred {
            self.flush();
        }
    }

    /// Lines are written by [`Writer::flush`] only, many per write (the daemon flushes every
    /// tick): an event flood costs one write per tick, not one per event.
    pub fn deferred(mut self) -> Self {
        self.deferred = true;
        self
    }

    /// Writes what is queued, in order, until something fails: as many lines per write as fit
    /// before the file's next rotation.
    pub fn flush(&mut self) {
        while !self.queue.is_empty() {
            let room = if self.max_bytes > 0 {
                self.max_bytes.saturating_sub(self.size).max(1)
            } else {
                u64::MAX
            }
            .min(4 << 20);
            let mut bytes = Vec::new();
            let mut n = 0;
            for line in &self.queue {
                if n > 0 && (bytes.len() + line.len() + 1) as u64 > room {
                    break;
                }
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
                n += 1;
            }
            match self.write_bytes(&bytes) {
                Ok(()) => {
                    if self.failing.take().is_some() {
                        eprintln!(
                            "enforcer: writing events to {} works again",
                            self.target.describe()
                        );
                    }
                    self.queue.drain(..n);
                }
                Err(e) => {
                    if self.failing != Some(e.kind()) {
                        eprintln!(
                            "enforcer: cannot write events to {}: {e}; {} event(s) kept in memory, \
                             retrying",
                            self.target.describe(),
                            self.queue.len()
                        );
                        self.failing = Some(e.kind());
                    }
                    return;
                }
            }
        }
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        match (&self.target, &mut self.file) {
            (Target::File(_), Some(f)) => {
                let before = f.seek(io::SeekFrom::End(0))?;
                let result = f.write_all(bytes).and_then(|()| f.flush());
                if result.is_err() {
                    // Never leave half a line behind: the retry writes it whole.
                    let _ = f.set_len(before);
                    return result;
                }
                self.size = before + bytes.len() as u64;
                if self.max_bytes > 0 && self.size >= self.max_bytes {
                    // The lines are written; a failed rotation only means a bigger file.
                    match self.rotate() {
                        Ok(()) => self.size = 0,
                        Err(e) => eprintln!("enforcer: rotating {}: {e}", self.target.describe()),
                    }
                }
                Ok(())
            }
            (Target::Stdout, _) => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            _ => {
                let mut err = io::stderr().lock();
                err.write_all(bytes)?;
                err.flush()
            }
        }
    }

    /// Last attempt; whatever still cannot be written goes to stderr, so nothing is lost.
    pub fn finish(&mut self) {
        self.flush();
        if self.queue.is_empty() && self.lost == 0 {
            return;
        }
        let mut err = io::stderr().lock();
        let _ = writeln!(
            err,
            "enforcer: {} event(s) could not be written to {}; here they are:",
            self.queue.len(),
            self.target.describe()
        );
        for line in self.queue.drain(..) {
            let _ = writeln!(err, "{line}");
        }
        if self.lost > 0 {
            let _ = writeln!(
                err,
                "enforcer: {} event(s) were lost: more than {MAX_QUEUED} were waiting",
                self.lost
            );
        }
    }

    /// Where this writer writes, for `enforcer status`.
    pub fn target_name(&self) -> String {
        self.target.describe()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}
