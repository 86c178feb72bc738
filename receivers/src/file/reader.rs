//! One tailed file: its open handle, the bytes read but not yet handed out, and the split into
//! complete lines (a partial last line waits for its newline; over-long lines are cut).

use super::batch::PendingBatch;
use super::checkpoint::{
    FINGERPRINT_MAX, FileCheckpoint, FileId, Fingerprint, HeadCheck, read_head,
};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// How many bytes one read takes from a file.
const CHUNK: usize = 64 * 1024;

/// What a read from the file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fill {
    /// New bytes were read.
    Read,
    /// Nothing new.
    Eof,
    /// The file was truncated or rewritten in place; reading restarted at offset 0.
    Restarted,
}

/// A line longer than `max_line_size`: its first bytes are kept, the rest skipped up to the
/// newline, so memory stays bounded and the file is never blocked.
struct Oversize {
    head: Vec<u8>,
    line_start: u64,
    total: u64,
}

/// A file being tailed.
pub struct TrackedFile {
    /// Device + inode.
    pub id: FileId,
    /// The path the file was last seen at.
    pub path: String,
    /// Bumped each time the file restarts at 0 (truncation), so offsets of lines read before
    /// the restart are never committed for the new content.
    pub generation: u64,
    /// Offset after the last line the pipeline accepted.
    pub committed: u64,
    /// Consecutive scans that did not find the file under any matching path.
    pub missing_scans: u32,
    /// The file is gone for good: a partial last line is emitted as it is, then the file is
    /// dropped.
    pub finishing: bool,
    /// The checkpoint needs to be written (offset reset or fingerprint extended).
    pub dirty: bool,
    handle: File,
    fingerprint: Fingerprint,
    buf: Vec<u8>,
    /// First byte of `buf` not yet handed out.
    start: usize,
    /// Bytes after `start` already known to hold no newline.
    scanned: usize,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    oversize: Option<Oversize>,
}

impl TrackedFile {
    /// Starts tailing an open file at `offset`.
    pub fn new(
        id: FileId,
        path: String,
        mut handle: File,
        fingerprint: Fingerprint,
        offset: u64,
    ) -> io::Result<TrackedFile> {
        handle.seek(SeekFrom::Start(offset))?;
        Ok(TrackedFile {
            id,
            path,
            generation: 0,
            committed: offset,
            missing_scans: 0,
            finishing: false,
            dirty: false,
            handle,
            fingerprint,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            buf_offset: offset,
            oversize: None,
        })
    }

    /// The checkpoint for what the pipeline accepted so far.
    pub fn checkpoint(&self) -> FileCheckpoint {
        FileCheckpoint {
            path: self.path.clone(),
            device: self.id.device,
            inode: self.id.inode,
            fingerprint: self.fingerprint.clone(),
            offset: self.committed,
        }
    }

    /// Offset just after the last line handed out.
    pub fn consumed(&self) -> u64 {
        match &self.oversize {
            Some(oversize) => oversize.line_start,
            None => self.buf_offset + self.start as u64,
        }
    }

    /// True when every byte read was handed out and accepted (no partial line held back).
    pub fn drained(&self) -> bool {
        self.oversize.is_none() && self.start == self.buf.len() && self.committed == self.consumed()
    }

    /// Hands out the next complete line into `batch`; false when more bytes are needed.
    /// Blank lines are skipped (they still advance the offset).
    pub fn take_line(&mut self, max_line: usize, batch: &mut PendingBatch) -> bool {
        loop {
            let pending = &self.buf[self.start..];
            let newline = pending[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| i + self.scanned);
            let Some(end) = newline else {
                self.scanned = pending.len();
                if let Some(oversize) = &mut self.oversize {
                    oversize.total += pending.len() as u64;
                    self.start = self.buf.len();
                    self.scanned = 0;
                } else if pending.len() > max_line + 1 {
                    self.oversize = Some(Oversize {
                        head: pending[..max_line].to_vec(),
                        line_start: self.buf_offset + self.start as u64,
                        total: pending.len() as u64,
                    });
                    self.start = self.buf.len();
                    self.scanned = 0;
                }
                return false;
            };
            let line_start = self.buf_offset + self.start as u64;
            let line = &pending[..end];
            self.start += end + 1;
            self.scanned = 0;
            if let Some(oversize) = self.oversize.take() {
                let total = oversize.total + line.len() as u64;
                batch.push_cut(&self.path, &oversize.head, oversize.line_start, total);
                return true;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > max_line {
                batch.push_cut(&self.path, &line[..max_line], line_start, line.len() as u64);
                return true;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            batch.push_line(&self.path, line, line_start);
            return true;
        }
    }

    /// Hands out a partial last line as it is (for a file that is gone for good); false when
    /// there is none.
    pub fn take_partial(&mut self, batch: &mut PendingBatch) -> bool {
        let rest = &self.buf[self.start..];
        let taken = if let Some(oversize) = self.oversize.take() {
            batch.push_cut(
                &self.path,
                &oversize.head,
                oversize.line_start,
                oversize.total + rest.len() as u64,
            );
            true
        } else if rest.iter().all(u8::is_ascii_whitespace) {
            false
        } else {
            batch.push_line(&self.path, rest, self.buf_offset + self.start as u64);
            true
        };
        self.start = self.buf.len();
        self.scanned = 0;
        taken
    }

    /// Reads more bytes. Before each read (when the file has grown, or its fingerprint covers
    /// less than it could) the file's head is compared with its fingerprint; a file shorter than
    /// what was read, or starting with other bytes, was truncated or rewritten and is read again
    /// from offset 0. A fingerprint that still matches is extended to the first 1 KiB.
    pub fn fill(&mut self) -> io::Result<Fill> {
        self.compact();
        let read_end = self.buf_offset + self.buf.len() as u64;
        let len = self.handle.metadata()?.len();
        let covered = usize::try_from(len)
            .map_or(true, |len| self.fingerprint.len >= len.min(FINGERPRINT_MAX));
        if len == read_end && covered {
            return Ok(Fill::Eof);
        }
        let head = read_head(&self.handle, len)?;
        if len < read_end || self.fingerprint.check(&head) == HeadCheck::Changed {
            tracing::info!(
                path = %self.path,
                size = len,
                offset = read_end,
                "file was truncated or rewritten in place (copy-truncate); reading it again from the start"
            );
            self.restart(head)?;
            return Ok(Fill::Restarted);
        }
        if head.len() > self.fingerprint.len {
            self.fingerprint = Fingerprint::of(&head);
            self.dirty = true;
        }
        let old_len = self.buf.len();
        self.buf.resize(old_len + CHUNK, 0);
        let read = self.handle.read(&mut self.buf[old_len..]);
        let n = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(old_len + n);
        read?;
        Ok(if n == 0 { Fill::Eof } else { Fill::Read })
    }

    fn restart(&mut self, head: Vec<u8>) -> io::Result<()> {
        self.handle.seek(SeekFrom::Start(0))?;
        self.fingerprint = Fingerprint::of(&head);
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        self.buf_offset = 0;
        self.oversize = None;
        self.committed = 0;
        self.generation += 1;
        self.dirty = true;
        Ok(())
    }

    /// Drops handed-out bytes from the front of the buffer.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.buf_offset += self.start as u64;
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::checkpoint::FileId;
    use std::io::Write;

    fn tracked(content: &[u8]) -> (tempfile::NamedTempFile, TrackedFile) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        let handle = File::open(file.path()).unwrap();
        let id = FileId {
            device: 0,
            inode: 0,
        };
        let fingerprint = Fingerprint::of(&content[..content.len().min(1024)]);
        let tracked = TrackedFile::new(id, "t".into(), handle, fingerprint, 0).unwrap();
        (file, tracked)
    }

    fn lines(file: &mut TrackedFile, max_line: usize) -> Vec<(String, u64, Option<u64>)> {
        let mut batch = PendingBatch::default();
        batch.begin_file();
        loop {
            if file.take_line(max_line, &mut batch) {
                continue;
            }
            if file.fill().unwrap() == Fill::Eof {
                break;
            }
        }
        batch
            .lines()
            .map(|(bytes, line)| {
                (
                    String::from_utf8_lossy(bytes).into_owned(),
                    line.offset,
                    line.cut_from,
                )
            })
            .collect()
    }

    #[test]
    fn splits_lines_and_holds_back_the_partial_last_one() {
        let (mut disk, mut file) = tracked(b"one\r\ntwo\n\n  \nthr");
        let got = lines(&mut file, 100);
        assert_eq!(got, vec![("one".into(), 0, None), ("two".into(), 5, None)]);
        assert_eq!(file.consumed(), 13);
        disk.write_all(b"ee\n").unwrap();
        assert_eq!(lines(&mut file, 100), vec![("three".into(), 13, None)]);
        assert_eq!(file.consumed(), 19);
    }

    #[test]
    fn long_lines_are_cut_without_blocking_the_next_ones() {
        let mut content = vec![b'x'; 200_000];
        content.extend_from_slice(b"\nshort\n");
        content.extend_from_slice(&[b'y'; 30]);
        content.push(b'\n');
        let (_disk, mut file) = tracked(&content);
        let got = lines(&mut file, 16);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], ("x".repeat(16), 0, Some(200_000)));
        assert_eq!(got[1], ("short".into(), 200_001, None));
        assert_eq!(got[2], ("y".repeat(16), 200_007, Some(30)));
        assert_eq!(file.consumed(), content.len() as u64);
    }

    #[test]
    fn truncated_file_restarts_from_zero() {
        let (disk, mut file) = tracked(b"first line\nsecond line\n");
        assert_eq!(lines(&mut file, 100).len(), 2);
        disk.as_file().set_len(0).unwrap();
        let mut rewrite = std::fs::OpenOptions::new()
            .write(true)
            .open(disk.path())
            .unwrap();
        rewrite.write_all(b"new\n").unwrap();
        let generation = file.generation;
        assert_eq!(lines(&mut file, 100), vec![("new".into(), 0, None)]);
        assert_eq!(file.generation, generation + 1);
    }

    #[test]
    fn file_rewritten_past_the_offset_is_caught_by_its_fingerprint() {
        let (disk, mut file) = tracked(b"a-1\n");
        assert_eq!(lines(&mut file, 100).len(), 1);
        // Same inode, now longer than what was read, but starting with other bytes.
        std::fs::write(disk.path(), b"b-1\nb-2\n").unwrap();
        let got = lines(&mut file, 100);
        assert_eq!(got, vec![("b-1".into(), 0, None), ("b-2".into(), 4, None)]);
        assert_eq!(file.generation, 1);
        assert!(file.dirty);
        // Growing with the same head keeps the position.
        std::fs::OpenOptions::new()
            .append(true)
            .open(disk.path())
            .unwrap()
            .write_all(b"b-3\n")
            .unwrap();
        assert_eq!(lines(&mut file, 100), vec![("b-3".into(), 8, None)]);
        assert_eq!(file.generation, 1);
    }
}
