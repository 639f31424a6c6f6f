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

    fn describe(&self) -> String {
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
        Ok(Self {
            target,
            file,
            queue: VecDeque::new(),
            failing: None,
            lost: 0,
        })
    }

    pub fn write(&mut self, line: String) {
        if self.queue.len() >= MAX_QUEUED {
            self.lost += 1;
            return;
        }
        self.queue.push_back(line);
        self.flush();
    }

    /// Writes what is queued, in order, until something fails.
    pub fn flush(&mut self) {
        while let Some(line) = self.queue.front().cloned() {
            match self.write_line(&line) {
                Ok(()) => {
                    if self.failing.take().is_some() {
                        eprintln!(
                            "enforcer: writing events to {} works again",
                            self.target.describe()
                        );
                    }
                    self.queue.pop_front();
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

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        match (&self.target, &mut self.file) {
            (Target::File(_), Some(f)) => {
                let before = f.seek(io::SeekFrom::End(0))?;
                let result = f.write_all(&bytes).and_then(|()| f.flush());
                if result.is_err() {
                    // Never leave half a line behind: the retry writes it whole.
                    let _ = f.set_len(before);
                }
                result
            }
            (Target::Stdout, _) => {
                let mut out = io::stdout().lock();
                out.write_all(&bytes)?;
                out.flush()
            }
            _ => {
                let mut err = io::stderr().lock();
                err.write_all(&bytes)?;
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

    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}
