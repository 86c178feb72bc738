//! A batch of raw lines read from files, kept until the pipeline accepts it (a refused batch is
//! turned into events again and retried), with the offsets to commit once it is accepted.

use super::checkpoint::FileId;
use super::reader::TrackedFile;

/// Where one line's bytes sit in the batch and where it came from.
#[derive(Clone, Debug)]
pub struct LineRef {
    start: usize,
    end: usize,
    path: usize,
    /// Byte offset of the line's start in its file.
    pub offset: u64,
    /// For a line cut at `max_line_size`: its full length in bytes.
    pub cut_from: Option<u64>,
}

/// How far a file may be committed once the batch is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advance {
    /// The file.
    pub id: FileId,
    /// The file's generation the offset belongs to (see [`TrackedFile::generation`]).
    pub generation: u64,
    /// Offset just after the last line of this file in the batch.
    pub offset: u64,
}

/// Raw lines of one batch, from one or more files.
#[derive(Debug, Default)]
pub struct PendingBatch {
    data: Vec<u8>,
    lines: Vec<LineRef>,
    paths: Vec<String>,
    /// The next line starts a new file's run of lines.
    new_file: bool,
    advances: Vec<Advance>,
}

impl PendingBatch {
    /// The lines pushed next come from another file.
    pub fn begin_file(&mut self) {
        self.new_file = true;
    }

    /// Adds a complete line of `path` that started at `offset`.
    pub fn push_line(&mut self, path: &str, bytes: &[u8], offset: u64) {
        self.push(path, bytes, offset, None);
    }

    /// Adds the kept head of a line of `path` that was `full_len` bytes long.
    pub fn push_cut(&mut self, path: &str, head: &[u8], offset: u64, full_len: u64) {
        self.push(path, head, offset, Some(full_len));
    }

    fn push(&mut self, path: &str, bytes: &[u8], offset: u64, cut_from: Option<u64>) {
        if self.new_file || self.paths.is_empty() {
            self.paths.push(path.to_string());
            self.new_file = false;
        }
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.lines.push(LineRef {
            start,
            end: self.data.len(),
            path: self.paths.len().saturating_sub(1),
            offset,
            cut_from,
        });
    }

    /// Records how far `file` was read for this batch.
    pub fn record_advance(&mut self, file: &TrackedFile) {
        self.advances.push(Advance {
            id: file.id,
            generation: file.generation,
            offset: file.consumed(),
        });
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True when the batch holds no line (it may still hold advances past blank lines).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// True when there is nothing to send and nothing to commit.
    pub fn is_void(&self) -> bool {
        self.lines.is_empty() && self.advances.is_empty()
    }

    /// Each line's bytes (without the newline) and where it came from.
    pub fn lines(&self) -> impl Iterator<Item = (&[u8], &LineRef)> {
        self.lines
            .iter()
            .map(|line| (&self.data[line.start..line.end], line))
    }

    /// The path of the file a line came from.
    pub fn path(&self, line: &LineRef) -> &str {
        self.paths.get(line.path).map_or("", String::as_str)
    }

    /// The offsets to commit once the batch is accepted.
    pub fn advances(&self) -> &[Advance] {
        &self.advances
    }
}
