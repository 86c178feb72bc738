//! Fault injection: a file system that "crashes" at the Nth mutating operation (write, fsync,
//! truncate, create, unlink, directory sync), optionally followed by a simulated power loss
//! (unsynced bytes cut or garbled, unsynced unlinks undone). For every N the queue must reopen
//! and deliver every batch whose push returned Ok and that was not completed.

use super::fs::{Fs, SegmentFile};
use super::*;
use crate::delivery::status::ExporterStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::FileExt;
use uuid::Uuid;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Crash {
    /// The process dies: what reached the kernel stays.
    Kill,
    /// The machine loses power: only what was fsynced is sure to stay.
    PowerLoss,
}

#[derive(Default)]
struct FaultFs {
    ops: AtomicU64,
    crash_at: AtomicU64,
    crashed: AtomicBool,
    /// Writes fail with ENOSPC (after writing half) while set.
    disk_full: AtomicBool,
    /// The first unlink crashes.
    crash_on_remove: AtomicBool,
    /// When not 0: writes that would make the directory's files larger fail with ENOSPC (a
    /// small volume).
    volume_bytes: AtomicU64,
    synced_len: Mutex<HashMap<PathBuf, u64>>,
}

impl FaultFs {
    fn crashing_at(n: u64) -> Arc<FaultFs> {
        let fs = FaultFs::default();
        fs.crash_at.store(n, Ordering::SeqCst);
        Arc::new(fs)
    }

    /// Counts an operation; fails it (and every later one) from the crash point on.
    fn tick(&self) -> io::Result<bool> {
        if self.crashed.load(Ordering::SeqCst) {
            return Err(io::Error::other("simulated crash"));
        }
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        if n == self.crash_at.load(Ordering::SeqCst) {
            self.crashed.store(true, Ordering::SeqCst);
            return Ok(true);
        }
        Ok(false)
    }

    fn crash_error() -> io::Error {
        io::Error::other("simulated crash")
    }
}

impl Fs for FaultFs {
    fn create(&self, path: &Path) -> io::Result<SegmentFile> {
        if self.tick()? {
            return Err(FaultFs::crash_error());
        }
        RealFs.create(path)
    }

    fn write_at(&self, file: &SegmentFile, buf: &[u8], offset: u64) -> io::Result<()> {
        let volume = self.volume_bytes.load(Ordering::SeqCst);
        if volume > 0 {
            let dir = file.path.parent().unwrap();
            let used = space::dir_bytes(dir);
            let grows = (offset + buf.len() as u64).saturating_sub(file.file.metadata()?.len());
            if used + grows > volume {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
        }
        let crash_now = self.tick()?;
        if crash_now || self.disk_full.load(Ordering::SeqCst) {
            // A torn write: part of the record reaches the file.
            file.file.write_all_at(&buf[..buf.len() / 2], offset)?;
            return Err(if crash_now {
                FaultFs::crash_error()
            } else {
                io::Error::from_raw_os_error(28)
            });
        }
        file.file.write_all_at(buf, offset)
    }

    fn sync(&self, file: &SegmentFile) -> io::Result<()> {
        if self.tick()? {
            return Err(FaultFs::crash_error());
        }
        file.file.sync_data()?;
        let len = file.file.metadata()?.len();
        self.synced_len
            .lock()
            .unwrap()
            .insert(file.path.clone(), len);
        Ok(())
    }

    fn truncate(&self, file: &SegmentFile, len: u64) -> io::Result<()> {
        if self.tick()? {
            return Err(FaultFs::crash_error());
        }
        file.file.set_len(len)?;
        if let Some(synced) = self.synced_len.lock().unwrap().get_mut(&file.path) {
            *synced = (*synced).min(len);
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        if self.crash_on_remove.load(Ordering::SeqCst) {
            self.crashed.store(true, Ordering::SeqCst);
        }
        if self.tick()? {
            return Err(FaultFs::crash_error());
        }
        // Until the directory is synced, a power loss may undo the unlink.
        std::fs::rename(path, path.with_extension("unlinked"))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.tick()? {
            return Err(FaultFs::crash_error());
        }
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "unlinked") {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

/// Applies what the crash leaves on disk.
fn after_crash(dir: &Path, fs: &FaultFs, crash: Crash, rng: &mut StdRng) {
    let synced = fs.synced_len.lock().unwrap().clone();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let is_unlinked = path.extension().is_some_and(|e| e == "unlinked");
        if is_unlinked {
            if crash == Crash::PowerLoss && rng.random_bool(0.5) {
                std::fs::rename(&path, path.with_extension("log")).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    if crash == Crash::Kill {
        return;
    }
    for id in segment::list(dir).unwrap() {
        let path = segment::path(dir, id);
        let len = std::fs::metadata(&path).unwrap().len();
        let keep = synced.get(&path).copied().unwrap_or(0).min(len);
        if keep == len {
            continue;
        }
        let cut = rng.random_range(keep..=len);
        let file = File::options().write(true).open(&path).unwrap();
        file.set_len(cut).unwrap();
        if cut > keep && rng.random_bool(0.3) {
            // Unsynced pages may come back as garbage.
            let at = rng.random_range(keep..cut);
            file.write_all_at(&[0xA5, 0x5A, 0x00], at).unwrap();
        }
    }
}

fn sized(tag: &str, n: usize) -> SizedBatch {
    SizedBatch::new((0..n).map(|i| Event::new(format!("{tag}-{i}"))).collect())
}

fn limits(max: usize) -> PopLimits {
    PopLimits {
        max_events: max,
        max_bytes: usize::MAX,
        min_events: 1,
        linger: Duration::ZERO,
    }
}

fn small_options() -> DiskQueueOptions {
    let mut options = DiskQueueOptions::new(1_000_000, usize::MAX, WhenFull::Backpressure);
    options.segment_bytes = 1500;
    options.cache_bytes = 2000;
    options.ack_flush_interval = Duration::from_secs(3600);
    options
}

async fn push(queue: &DiskQueue, batch: SizedBatch) -> Result<(), QueueError> {
    let reservation = queue.try_reserve(batch.len(), batch.total_bytes)?;
    queue.push(reservation, batch).await
}

/// Pops everything a closed queue still holds.
async fn drain(queue: &DiskQueue) -> Vec<Event> {
    queue.close();
    let mut out = Vec::new();
    while let Some(chunk) = queue.pop(limits(7)).await {
        out.extend(chunk.events);
        queue.complete(chunk.receipt);
    }
    out
}

/// What a workload promised: ids whose push returned Ok, and ids completed.
#[derive(Default)]
struct Promises {
    attempted: HashSet<Uuid>,
    stored: Vec<Uuid>,
    completed: HashSet<Uuid>,
}

/// Pushes 24 batches of 3, completing some chunks and flushing now and then; stops at the
/// first failure once the file system has crashed.
async fn workload(queue: &DiskQueue, fs: &FaultFs) -> Promises {
    let mut promises = Promises::default();
    for i in 0..24 {
        let batch = sized(&format!("b{i}"), 3);
        let ids: Vec<Uuid> = batch.events.iter().map(|e| e.event_id).collect();
        promises.attempted.extend(ids.iter().copied());
        if push(queue, batch).await.is_ok() {
            promises.stored.extend(ids);
        }
        if i % 2 == 1 {
            let chunk = queue.pop(limits(4)).await.expect("events are queued");
            promises
                .completed
                .extend(chunk.events.iter().map(|e| e.event_id));
            queue.complete(chunk.receipt);
        }
        if i % 5 == 4 {
            let _ = queue.flush();
        }
        if fs.crashed.load(Ordering::SeqCst) {
            break;
        }
    }
    promises
}

async fn crash_at_every_operation(crash: Crash) {
    let total_ops = {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::crashing_at(u64::MAX);
        let (queue, _) = DiskQueue::open_on(dir.path(), "t", small_options(), fs.clone()).unwrap();
        workload(&queue, &fs).await;
        drop(queue);
        fs.ops.load(Ordering::SeqCst)
    };
    assert!(
        total_ops > 60,
        "the workload should exercise the log: {total_ops} ops"
    );
    let mut rng = StdRng::seed_from_u64(7);
    for n in 0..total_ops {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::crashing_at(n);
        // A crash while opening (creating the first segment) is a crash too.
        let promises = match DiskQueue::open_on(dir.path(), "t", small_options(), fs.clone()) {
            Ok((queue, _)) => workload(&queue, &fs).await,
            Err(_) => Promises::default(),
        };
        after_crash(dir.path(), &fs, crash, &mut rng);
        // Crash again while recovering (cutting a tail, deleting a segment, syncing).
        let recovery_fs = FaultFs::crashing_at(n % 4);
        drop(DiskQueue::open_on(
            dir.path(),
            "t",
            small_options(),
            recovery_fs.clone(),
        ));
        after_crash(dir.path(), &recovery_fs, Crash::Kill, &mut rng);
        let (queue, report) = DiskQueue::open(
            dir.path(),
            "t",
            1_000_000,
            usize::MAX,
            WhenFull::Backpressure,
        )
        .unwrap_or_else(|e| panic!("crash at op {n} ({crash:?}): reopen failed: {e}"));
        let delivered: HashSet<Uuid> = drain(&queue).await.iter().map(|e| e.event_id).collect();
        for id in &promises.stored {
            if !promises.completed.contains(id) {
                assert!(
                    delivered.contains(id),
                    "crash at op {n} ({crash:?}): stored event {id} lost; report {report:?}"
                );
            }
        }
        assert!(
            delivered.is_subset(&promises.attempted),
            "crash at op {n}: delivered events that were never pushed"
        );
        drop(queue);
        // And the directory opens clean afterwards, with nothing left.
        let (queue, report) = DiskQueue::open(
            dir.path(),
            "t",
            1_000_000,
            usize::MAX,
            WhenFull::Backpressure,
        )
        .unwrap();
        assert!(
            report.corrupt_regions.iter().all(|r| !r.at_tail),
            "crash at op {n}: the first reopen left a damaged tail: {report:?}"
        );
        assert_eq!(
            queue.depth().events,
            0,
            "crash at op {n}: completed events came back"
        );
    }
}

#[tokio::test]
async fn every_kill_point_reopens_and_keeps_every_stored_batch() {
    crash_at_every_operation(Crash::Kill).await;
}

#[tokio::test]
async fn every_power_loss_point_reopens_and_keeps_every_stored_batch() {
    crash_at_every_operation(Crash::PowerLoss).await;
}

#[tokio::test]
async fn disk_full_is_backpressure_and_the_queue_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::crashing_at(u64::MAX);
    let (queue, _) = DiskQueue::open_on(dir.path(), "t", small_options(), fs.clone()).unwrap();
    let status = Arc::new(ExporterStatus::new("t"));
    queue.attach(status.clone());
    push(&queue, sized("before", 2)).await.unwrap();
    fs.disk_full.store(true, Ordering::SeqCst);
    // Backpressure, like a full queue; the status says why.
    let err = push(&queue, sized("refused", 2)).await.unwrap_err();
    assert_eq!(err, QueueError::Full);
    assert_eq!(queue.depth().events, 2, "the refused batch holds no room");
    let snapshot = status.snapshot();
    assert_eq!(snapshot.state, crate::delivery::ExporterState::Degraded);
    assert!(
        snapshot
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("no space left"),
        "{snapshot:?}"
    );
    fs.disk_full.store(false, Ordering::SeqCst);
    push(&queue, sized("after", 2)).await.unwrap();
    assert_eq!(status.state(), crate::delivery::ExporterState::Active);
    let types: Vec<String> = drain(&queue)
        .await
        .into_iter()
        .map(|e| e.into_fields().event_type)
        .collect();
    assert_eq!(types, ["before-0", "before-1", "after-0", "after-1"]);
    drop(queue);
    // The torn half record was cut: the log reopens without damage.
    let (_queue, report) =
        DiskQueue::open(dir.path(), "t", 100, usize::MAX, WhenFull::Backpressure).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn a_drained_queue_on_a_full_volume_frees_its_space() {
    // Segments larger than the volume: everything sits in the segment being written, as with
    // 64 MiB segments on a 20 MiB volume.
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::crashing_at(u64::MAX);
    let mut options = small_options();
    options.segment_bytes = 1 << 20;
    let (queue, _) = DiskQueue::open_on(dir.path(), "t", options, fs.clone()).unwrap();
    let status = Arc::new(ExporterStatus::new("t"));
    queue.attach(status.clone());
    fs.volume_bytes.store(6000, Ordering::SeqCst);
    let mut stored = 0;
    while push(&queue, sized(&format!("b{stored}"), 3)).await.is_ok() {
        stored += 1;
    }
    assert!(stored > 3, "{stored} batches fit");
    assert_eq!(queue.segment_count(), 1);
    assert_eq!(status.state(), crate::delivery::ExporterState::Degraded);
    // Everything is delivered, and nothing more fits, not even the acks.
    let mut delivered = 0;
    while delivered < stored * 3 {
        let chunk = queue.pop(limits(100)).await.unwrap();
        delivered += chunk.events.len();
        queue.complete(chunk.receipt);
    }
    assert_eq!(queue.depth().events, 0);
    // The next push frees the drained segment and goes in.
    push(&queue, sized("after", 3)).await.unwrap();
    assert_eq!(status.state(), crate::delivery::ExporterState::Active);
    assert!(
        space::dir_bytes(dir.path()) < 2000,
        "the old segment is gone"
    );
    drop(queue);
    let (queue, report) =
        DiskQueue::open(dir.path(), "t", 100, usize::MAX, WhenFull::Backpressure).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let types: Vec<String> = drain(&queue)
        .await
        .into_iter()
        .map(|e| e.into_fields().event_type)
        .collect();
    assert_eq!(types, ["after-0", "after-1", "after-2"]);
}

#[tokio::test]
async fn a_queue_never_takes_more_than_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = DiskQueue::open(dir.path(), "t", 10, 1 << 20, WhenFull::Backpressure).unwrap();
    // Larger than the whole queue, even though it is empty.
    assert!(matches!(
        queue.try_reserve(11, 0),
        Err(QueueError::TooLarge(_))
    ));
    push(&queue, sized("a", 6)).await.unwrap();
    assert_eq!(queue.try_reserve(5, 0), Err(QueueError::Full));
    drop(queue);
    // Bytes: a record larger than max_size is refused at push (its size is known only then).
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = DiskQueue::open(dir.path(), "t", 1000, 3000, WhenFull::Backpressure).unwrap();
    let big = sized("big", 20);
    let reservation = queue.try_reserve(big.len(), 0).unwrap();
    assert!(matches!(
        queue.push(reservation, big).await,
        Err(QueueError::TooLarge(_))
    ));
    assert_eq!(queue.depth().bytes, 0);
    push(&queue, sized("ok", 5)).await.unwrap();
    let depth = queue.depth();
    assert!(depth.bytes <= depth.max_bytes, "{depth:?}");
    // The queue now knows what an event costs: a batch that cannot fit is refused up front.
    assert!(matches!(
        queue.try_reserve(20, 0),
        Err(QueueError::TooLarge(_))
    ));
}

#[tokio::test]
async fn crash_between_durable_acks_and_segment_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::crashing_at(u64::MAX);
    let (queue, _) = DiskQueue::open_on(dir.path(), "t", small_options(), fs.clone()).unwrap();
    for i in 0..12 {
        push(&queue, sized(&format!("b{i}"), 3)).await.unwrap();
    }
    assert!(queue.segment_count() > 2);
    // Complete everything but the newest batch, then crash at the first unlink.
    let mut done = 0;
    while done < 33 {
        let chunk = queue.pop(limits(3)).await.unwrap();
        done += chunk.events.len();
        queue.complete(chunk.receipt);
    }
    fs.crash_on_remove.store(true, Ordering::SeqCst);
    assert!(queue.flush().is_err());
    drop(queue);
    let segments_left = segment::list(dir.path()).unwrap().len();
    assert!(segments_left > 2, "nothing was deleted before the crash");
    let (queue, report) =
        DiskQueue::open(dir.path(), "t", 100, usize::MAX, WhenFull::Backpressure).unwrap();
    assert!(report.segments_removed >= 1, "{report:?}");
    let types: Vec<String> = drain(&queue)
        .await
        .into_iter()
        .map(|e| e.into_fields().event_type)
        .collect();
    assert_eq!(types, ["b11-0", "b11-1", "b11-2"]);
}

#[tokio::test]
async fn a_failed_fsync_is_reported_and_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::crashing_at(u64::MAX);
    let (queue, _) = DiskQueue::open_on(dir.path(), "t", small_options(), fs.clone()).unwrap();
    // write, then fsync fails.
    let at = fs.ops.load(Ordering::SeqCst);
    fs.crash_at.store(at + 1, Ordering::SeqCst);
    let err = push(&queue, sized("x", 1)).await.unwrap_err();
    assert!(matches!(err, QueueError::Storage(_)));
    assert_eq!(queue.depth().events, 0);
}
