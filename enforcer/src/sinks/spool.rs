//! A sink's on-disk queue: every event line for a network sink is appended here first and
//! removed only once the receiver has it, so a receiver that is down, or a daemon restart,
//! loses nothing. Segments of at most `segment_bytes` (`<id>.log`) and a `cursor` file
//! (`<segment> <offset>`: what was delivered). Past `max_bytes` the oldest segment goes, and the
//! undelivered lines in it are counted as dropped, to be reported.
use std::{
    collections::VecDeque,
    fs::{self, File, OpenOptions},
    io::{self, BufRead as _, BufReader, BufWriter, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
#[error("spool {}: {source}", path.display())]
pub struct SpoolError {
    pub path: PathBuf,
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError {
        path: path.to_owned(),
        source,
    }
}

/// Where reading stands: a segment and a byte offset in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Lines read from the cursor on, and the position after them (to commit once delivered).
#[derive(Debug, Default)]
pub struct Batch {
    pub lines: Vec<String>,
    pub end: Position,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// (id, bytes) of every segment, oldest first; the last is written to.
    segments: VecDeque<(u64, u64)>,
    writer: Option<BufWriter<File>>,
    cursor: Position,
    dropped: u64,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, keeping what a previous daemon left.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        fs::create_dir_all(dir).map_err(err(dir))?;
        let mut ids: Vec<u64> = fs::read_dir(dir)
            .map_err(err(dir))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut segments = VecDeque::new();
        for id in ids {
            let path = segment_path(dir, id);
            let len = fs::metadata(&path).map_err(err(&path))?.len();
            segments.push_back((id, len));
        }
        let cursor_file = dir.join("cursor");
        let cursor = fs::read_to_string(&cursor_file)
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(str::parse::<u64>);
                Some(Position {
                    segment: it.next()?.ok()?,
                    offset: it.next()?.ok()?,
                })
            })
            .filter(|c| segments.iter().any(|(id, _)| *id == c.segment))
            .unwrap_or(Position {
                segment: segments.front().map_or(0, |(id, _)| *id),
                offset: 0,
            });
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes: max_bytes.max(4096),
            segment_bytes: (max_bytes / 8).clamp(1024, 1 << 20),
            segments,
            writer: None,
            cursor,
            dropped: 0,
        })
    }

    /// Appends one line (buffered; [`Spool::flush`] makes it readable), dropping the oldest
    /// segments if the spool is now over its size.
    pub fn append(&mut self, line: &str) -> Result<(), SpoolError> {
        self.append_line(line)?;
        self.trim()
    }

    /// Appends a loss report without trimming for it: reports may take the spool a little over
    /// its size, so reporting a loss never causes another one.
    pub fn append_report(&mut self, line: &str) -> Result<(), SpoolError> {
        self.append_line(line)
    }

    fn append_line(&mut self, line: &str) -> Result<(), SpoolError> {
        let need_new = match self.segments.back() {
            None => true,
            Some((_, bytes)) => *bytes >= self.segment_bytes,
        };
        if need_new || self.writer.is_none() {
            self.flush()?;
            if need_new {
                let id = self.segments.back().map_or(1, |(id, _)| id + 1);
                if self.segments.is_empty() {
                    self.cursor = Position {
                        segment: id,
                        offset: 0,
                    };
                }
                self.segments.push_back((id, 0));
            }
            let (id, _) = *self.segments.back().unwrap_or(&(1, 0));
            let path = segment_path(&self.dir, id);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(err(&path))?;
            self.writer = Some(BufWriter::new(file));
        }
        let w = self.writer.as_mut().ok_or_else(|| SpoolError {
            path: self.dir.clone(),
            source: io::Error::other("no segment open"),
        })?;
        w.write_all(line.as_bytes())
            .and_then(|()| w.write_all(b"\n"))
            .map_err(err(&self.dir))?;
        if let Some((_, bytes)) = self.segments.back_mut() {
            *bytes += line.len() as u64 + 1;
        }
        Ok(())
    }

    /// Drops the oldest segments while the spool is over its size; counts the undelivered
    /// lines they held.
    fn trim(&mut self) -> Result<(), SpoolError> {
        while self.bytes() > self.max_bytes && self.segments.len() > 1 {
            let Some((id, _)) = self.segments.pop_front() else {
                break;
            };
            let path = segment_path(&self.dir, id);
            if self.cursor.segment == id {
                self.dropped += count_lines(&path, self.cursor.offset).map_err(err(&path))?;
                self.cursor = Position {
                    segment: self.segments.front().map_or(id + 1, |(next, _)| *next),
                    offset: 0,
                };
                self.save_cursor()?;
            } else if self.cursor.segment < id {
                self.dropped += count_lines(&path, 0).map_err(err(&path))?;
            }
            fs::remove_file(&path).map_err(err(&path))?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), SpoolError> {
        if let Some(w) = self.writer.as_mut() {
            w.flush().map_err(err(&self.dir))?;
        }
        Ok(())
    }

    /// Up to `max_lines` whole lines from the cursor on.
    pub fn read(&mut self, max_lines: usize) -> Result<Batch, SpoolError> {
        self.flush()?;
        let mut batch = Batch {
            lines: Vec::new(),
            end: self.cursor,
        };
        let mut pos = self.cursor;
        while batch.lines.len() < max_lines {
            let Some(&(_, len)) = self.segments.iter().find(|(id, _)| *id == pos.segment) else {
                break;
            };
            if pos.offset >= len {
                // A finished segment: on to the next, if there is one.
                match self.segments.iter().find(|(id, _)| *id > pos.segment) {
                    Some((next, _)) => {
                        pos = Position {
                            segment: *next,
                            offset: 0,
                        };
                        batch.end = pos;
                        continue;
                    }
                    None => break,
                }
            }
            let path = segment_path(&self.dir, pos.segment);
            let mut f = File::open(&path).map_err(err(&path))?;
            f.seek(SeekFrom::Start(pos.offset)).map_err(err(&path))?;
            let mut reader = BufReader::new(f);
            let mut line = String::new();
            while batch.lines.len() < max_lines {
                line.clear();
                let n = reader.read_line(&mut line).map_err(err(&path))?;
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                pos.offset += n as u64;
                batch.lines.push(line.trim_end_matches('\n').to_owned());
                batch.end = pos;
            }
            if pos.offset < len && batch.lines.len() < max_lines {
                break;
            }
        }
        Ok(batch)
    }

    /// Marks everything before `end` delivered and removes the segments it finished.
    pub fn commit(&mut self, end: Position) -> Result<(), SpoolError> {
        // A trim may have moved the cursor past what was read meanwhile.
        if end.segment < self.cursor.segment {
            return Ok(());
        }
        self.cursor = end;
        self.save_cursor()?;
        while let Some(&(id, _)) = self.segments.front() {
            if id >= self.cursor.segment || self.segments.len() == 1 {
                break;
            }
            self.segments.pop_front();
            let path = segment_path(&self.dir, id);
            fs::remove_file(&path).map_err(err(&path))?;
        }
        Ok(())
    }

    fn save_cursor(&self) -> Result<(), SpoolError> {
        let path = self.dir.join("cursor");
        let tmp = self.dir.join("cursor.tmp");
        fs::write(
            &tmp,
            format!("{} {}\n", self.cursor.segment, self.cursor.offset),
        )
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(err(&path))
    }

    /// Lines dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|(_, b)| b).sum()
    }

    /// Bytes not yet delivered.
    pub fn pending_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|(id, b)| match id.cmp(&self.cursor.segment) {
                std::cmp::Ordering::Less => 0,
                std::cmp::Ordering::Equal => b.saturating_sub(self.cursor.offset),
                std::cmp::Ordering::Greater => *b,
            })
            .sum()
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.log"))
}

fn count_lines(path: &Path, from: u64) -> io::Result<u64> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut n = 0;
    for line in BufReader::new(f).split(b'\n') {
        line?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("enforcer-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn lines_come_out_in_order_once_and_survive_a_reopen() {
        let d = dir("order");
        let mut s = Spool::open(&d, 1 << 20).unwrap();
        for i in 0..100 {
            s.append(&format!("line {i}")).unwrap();
        }
        let b = s.read(30).unwrap();
        assert_eq!(b.lines.len(), 30);
        assert_eq!(b.lines[0], "line 0");
        // Not committed: read again, the same lines.
        assert_eq!(s.read(30).unwrap().lines, b.lines);
        s.commit(b.end).unwrap();
        drop(s);
        let mut s = Spool::open(&d, 1 << 20).unwrap();
        let rest = s.read(1000).unwrap();
        assert_eq!(rest.lines.len(), 70);
        assert_eq!(rest.lines[0], "line 30");
        s.commit(rest.end).unwrap();
        assert_eq!(s.pending_bytes(), 0);
        s.append("after").unwrap();
        assert_eq!(s.read(10).unwrap().lines, vec!["after".to_owned()]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn crossing_segments_and_removing_delivered_ones() {
        let d = dir("segments");
        // 8 KiB: 1 KiB segments.
        let mut s = Spool::open(&d, 8192).unwrap();
        let line = "x".repeat(99);
        for _ in 0..50 {
            s.append(&line).unwrap();
        }
        assert!(s.segments.len() >= 5, "{:?}", s.segments);
        let b = s.read(1000).unwrap();
        assert_eq!(b.lines.len(), 50);
        s.commit(b.end).unwrap();
        assert_eq!(s.segments.len(), 1);
        assert_eq!(s.take_dropped(), 0);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn over_its_size_the_oldest_go_and_are_counted() {
        let d = dir("trim");
        let mut s = Spool::open(&d, 8192).unwrap();
        let line = "y".repeat(99);
        for i in 0..200 {
            s.append(&format!("{i:03}{line}")).unwrap();
        }
        assert!(s.bytes() <= 8192 + 1024, "{}", s.bytes());
        let dropped = s.take_dropped();
        let b = s.read(1000).unwrap();
        assert_eq!(dropped + b.lines.len() as u64, 200);
        // What is left is the newest, in order.
        let first: u64 = b.lines[0][..3].parse().unwrap();
        assert_eq!(first, dropped);
        assert!(b.lines.last().unwrap().starts_with("199"));
        // A loss report does not push anything out.
        s.append_report(&"r".repeat(500)).unwrap();
        assert_eq!(s.take_dropped(), 0);
        let _ = fs::remove_dir_all(&d);
    }
}
