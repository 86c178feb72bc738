//! Disk queue recovery from what crashes, power loss and people leave on disk: torn and garbled
//! records, missing and extra segments. Every state must open without manual steps.

use siemrelay_core::Event;
use siemrelay_exporters::delivery::config::WhenFull;
use siemrelay_exporters::delivery::disk_queue::{DiskQueue, DiskQueueOptions, LossCause, segment};
use siemrelay_exporters::delivery::queue::{DeliveryQueue, PopLimits, SizedBatch};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn options() -> DiskQueueOptions {
    let mut options = DiskQueueOptions::new(1_000_000, usize::MAX, WhenFull::Backpressure);
    options.segment_bytes = 2048;
    options
}

/// A queue directory holding `batches` uncompleted batches of 3 events (`b<i>-<j>`).
async fn filled(dir: &Path, batches: usize) {
    let (queue, _) = DiskQueue::open_with(dir, "t", options()).unwrap();
    for i in 0..batches {
        let batch = SizedBatch::new((0..3).map(|j| Event::new(format!("b{i}-{j}"))).collect());
        let reservation = queue.try_reserve(batch.len(), batch.total_bytes).unwrap();
        queue.push(reservation, batch).await.unwrap();
    }
}

/// Appends one single-event batch `last` (a short record).
async fn push_last(dir: &Path) {
    let (queue, _) = DiskQueue::open_with(dir, "t", options()).unwrap();
    let batch = SizedBatch::new(vec![Event::new("last")]);
    let reservation = queue.try_reserve(1, batch.total_bytes).unwrap();
    queue.push(reservation, batch).await.unwrap();
}

async fn drain(dir: &Path) -> Vec<String> {
    let (queue, _) = DiskQueue::open_with(dir, "t", options()).unwrap();
    queue.close();
    let mut out = Vec::new();
    while let Some(chunk) = queue
        .pop(PopLimits {
            max_events: 10,
            max_bytes: usize::MAX,
            min_events: 1,
            linger: Duration::ZERO,
        })
        .await
    {
        out.extend(chunk.events.into_iter().map(|e| e.into_fields().event_type));
        queue.complete(chunk.receipt);
    }
    out
}

fn expected(batches: std::ops::Range<usize>) -> Vec<String> {
    batches
        .flat_map(|i| (0..3).map(move |j| format!("b{i}-{j}")))
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    segment::list(dir)
        .unwrap()
        .into_iter()
        .map(|id| segment::path(dir, id))
        .collect()
}

/// (offset, length) of the last record of the newest segment.
fn last_record(dir: &Path) -> (PathBuf, u64, u64) {
    let path = segments(dir).pop().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let scanned = segment::scan(0, &bytes);
    let last = scanned.records.last().unwrap();
    (path, last.offset, last.len)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn truncating_the_last_record_at_every_byte_loses_only_that_record() {
    let source = tempfile::tempdir().unwrap();
    filled(source.path(), 3).await;
    push_last(source.path()).await;
    let (path, offset, len) = last_record(source.path());
    let name = path.file_name().unwrap().to_owned();
    for cut in offset..offset + len {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(source.path(), dir.path());
        let file = std::fs::File::options()
            .write(true)
            .open(dir.path().join(&name))
            .unwrap();
        file.set_len(cut).unwrap();
        drop(file);
        let (queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
        assert_eq!(report.records_recovered, 3, "cut at {cut}");
        assert_eq!(report.bytes_truncated, cut - offset, "cut at {cut}");
        drop(queue);
        if (cut - offset) % 8 != 0 && cut + 1 != offset + len {
            continue;
        }
        assert_eq!(drain(dir.path()).await, expected(0..3), "cut at {cut}");
        // The tail was cut: the next open is clean, and appends continue behind the cut.
        filled(dir.path(), 1).await;
        let (_queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
        assert!(report.is_clean(), "cut at {cut}: {report:?}");
        assert_eq!(report.records_recovered, 1);
    }
}

#[tokio::test]
async fn a_flipped_byte_in_the_last_record_drops_only_that_record() {
    let source = tempfile::tempdir().unwrap();
    filled(source.path(), 4).await;
    let (path, offset, len) = last_record(source.path());
    let name = path.file_name().unwrap().to_owned();
    for at in [
        offset,
        offset + 5,
        offset + 20,
        offset + 40,
        offset + len - 1,
    ] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(source.path(), dir.path());
        let target = dir.path().join(&name);
        let mut bytes = std::fs::read(&target).unwrap();
        bytes[at as usize] ^= 0x01;
        std::fs::write(&target, bytes).unwrap();
        let before = DiskQueue::inspect(dir.path()).unwrap();
        assert_eq!(before.pending_records, 3, "flip at {at}");
        assert_eq!(before.corrupt_regions, 1);
        let (_queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
        assert!(!report.is_clean());
        assert_eq!(report.corrupt_regions.len(), 1, "flip at {at}");
        drop(_queue);
        assert_eq!(drain(dir.path()).await, expected(0..3), "flip at {at}");
    }
}

#[tokio::test]
async fn damage_inside_an_older_segment_is_skipped_and_later_records_delivered() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 12).await;
    let files = segments(dir.path());
    assert!(files.len() >= 3, "{} segments", files.len());
    let older = &files[0];
    let mut bytes = std::fs::read(older).unwrap();
    let scanned = segment::scan(0, &bytes);
    assert!(scanned.records.len() >= 2);
    let victim = &scanned.records[0];
    bytes[victim.offset as usize + 30] ^= 0xff;
    std::fs::write(older, &bytes).unwrap();
    let (_queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert_eq!(report.records_skipped, 1);
    assert_eq!(report.bytes_skipped, victim.len);
    assert_eq!(report.records_recovered, 11);
    drop(_queue);
    assert_eq!(drain(dir.path()).await, expected(1..12));
}

#[tokio::test]
async fn garbage_appended_to_the_newest_segment_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 2).await;
    let newest = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let len = bytes.len() as u64;
    bytes.extend_from_slice(b"SRQ1\xff\xff garbage after a power loss \x00\x00\x00");
    std::fs::write(&newest, bytes).unwrap();
    let (_queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert_eq!(report.records_recovered, 2);
    assert!(report.bytes_truncated > 0);
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), len);
}

#[tokio::test]
async fn a_deleted_newest_segment_loses_only_its_records() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 12).await;
    let files = segments(dir.path());
    let newest = files.last().unwrap();
    let in_newest = segment::scan(0, &std::fs::read(newest).unwrap())
        .records
        .len();
    std::fs::remove_file(newest).unwrap();
    let (_queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert_eq!(report.records_recovered, 12 - in_newest);
    drop(_queue);
    assert_eq!(drain(dir.path()).await, expected(0..12 - in_newest));
}

#[tokio::test]
async fn extra_empty_segments_and_foreign_files_are_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 12).await;
    let files = segments(dir.path());
    let first = segment::list(dir.path()).unwrap()[0];
    // An empty segment in the middle, an empty newest one, and files that are not segments.
    std::fs::write(segment::path(dir.path(), first + 1), b"").unwrap();
    std::fs::write(segment::path(dir.path(), 1 << 40), b"").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    std::fs::write(dir.path().join("12.log.tmp"), b"junk").unwrap();
    let (queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records_recovered, 12);
    assert_eq!(queue.segment_count(), files.len() + 2);
    drop(queue);
    assert_eq!(drain(dir.path()).await, expected(0..12));
    // New records go after the extra newest segment and come back in order; the numbering
    // jump to the extra segment's name is no loss.
    filled(dir.path(), 1).await;
    let (queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert!(report.losses.is_empty(), "{:?}", report.losses);
    drop(queue);
    assert_eq!(drain(dir.path()).await, expected(0..1));
}

#[tokio::test]
async fn inspect_reports_without_modifying_anything() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 5).await;
    let newest = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes.extend_from_slice(b"SRQ1 torn");
    std::fs::write(&newest, &bytes).unwrap();
    let report = DiskQueue::inspect(dir.path()).unwrap();
    assert_eq!(report.pending_records, 5);
    assert_eq!(report.pending_events, 15);
    assert_eq!(report.corrupt_regions, 1);
    assert_eq!(report.corrupt_bytes, 9);
    assert!(report.oldest_enqueued_at.is_some());
    assert!(!report.is_clean());
    assert_eq!(
        std::fs::read(&newest).unwrap(),
        bytes,
        "inspect wrote to the segment"
    );
    // Inspect also works next to a running queue (it takes no lock).
    let (_queue, _) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert_eq!(DiskQueue::inspect(dir.path()).unwrap().pending_records, 5);
}

fn zero_fill(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len() as usize;
    std::fs::write(path, vec![0u8; len]).unwrap();
}

fn records_in(path: &Path) -> u64 {
    segment::scan(0, &std::fs::read(path).unwrap())
        .records
        .len() as u64
}

#[tokio::test]
async fn a_deleted_middle_segment_is_a_counted_loss_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 12).await;
    let files = segments(dir.path());
    assert!(files.len() >= 3, "{} segments", files.len());
    let gone = records_in(&files[1]);
    let first = segment::list(dir.path()).unwrap()[1];
    std::fs::remove_file(&files[1]).unwrap();
    let inspect = DiskQueue::inspect(dir.path()).unwrap();
    assert!(!inspect.is_clean());
    assert_eq!(inspect.events_lost, Some(3 * gone));
    let (queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert!(report.has_losses(), "{report:?}");
    assert_eq!(report.losses.len(), 1, "{:?}", report.losses);
    let loss = &report.losses[0];
    assert_eq!(loss.cause, LossCause::MissingSegment);
    assert_eq!(
        (loss.first_seq, loss.last_seq),
        (Some(first), Some(first + gone - 1))
    );
    assert_eq!((loss.records, loss.events), (Some(gone), Some(3 * gone)));
    assert_eq!(
        (report.records_lost, report.events_lost),
        (gone, Some(3 * gone))
    );
    assert_eq!(queue.unacknowledged_losses().len(), 1);
    drop(queue);
    // Still shown after a restart, but not reported as new; acknowledged, it goes.
    let (queue, _) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert_eq!(queue.unacknowledged_losses().len(), 1);
    assert_eq!(queue.acknowledge_losses(), Ok(1));
    assert!(queue.unacknowledged_losses().is_empty());
    drop(queue);
    let (queue, _) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert!(queue.unacknowledged_losses().is_empty());
    drop(queue);
    let delivered = drain(dir.path()).await;
    assert_eq!(delivered.len() as u64, 36 - 3 * gone);
}

#[tokio::test]
async fn a_zero_filled_segment_reports_the_records_and_events_it_held() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 12).await;
    let files = segments(dir.path());
    let zeroed = records_in(&files[1]);
    zero_fill(&files[1]);
    let (_queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert_eq!(report.losses.len(), 1, "{:?}", report.losses);
    let loss = &report.losses[0];
    assert_eq!(loss.cause, LossCause::DamagedRegion);
    assert_eq!(loss.records, Some(zeroed));
    assert_eq!(loss.events, Some(3 * zeroed));
    assert_eq!(report.records_recovered as u64, 12 - zeroed);
}

#[tokio::test]
async fn a_zero_filled_newest_segment_says_unknown_not_zero() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 12).await;
    let newest = segments(dir.path()).pop().unwrap();
    zero_fill(&newest);
    let (_queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    let torn: Vec<_> = report.losses.iter().filter(|l| !l.is_loss()).collect();
    assert_eq!(torn.len(), 1, "{:?}", report.losses);
    assert_eq!((torn[0].records, torn[0].events), (None, None));
    let json = serde_json::to_value(torn[0]).unwrap();
    assert_eq!(json["events"], "unknown");
    assert_eq!(json["records"], "unknown");
}

#[tokio::test]
async fn a_damaged_first_record_is_counted_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), 12).await;
    let oldest = segments(dir.path()).remove(0);
    let mut bytes = std::fs::read(&oldest).unwrap();
    let first = segment::scan(0, &bytes).records[0].clone();
    // Damage the event lines, not the header or the event count.
    bytes[first.offset as usize + 60] ^= 0xff;
    std::fs::write(&oldest, &bytes).unwrap();
    let (_queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert_eq!(report.losses.len(), 1, "{:?}", report.losses);
    assert_eq!(report.losses[0].records, Some(1));
    assert_eq!(report.losses[0].events, Some(3));
}

#[tokio::test]
async fn records_written_before_the_running_count_still_open() {
    // A data record of kind 1 (no running count), as queues written before it hold.
    let event = Event::new("legacy");
    let mut payload = Vec::new();
    payload.extend_from_slice(&1_700_000_000_000_000_000i64.to_le_bytes());
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.extend_from_slice(&300u32.to_le_bytes());
    event.write_json(&mut payload);
    payload.push(b'\n');
    let mut head = vec![1u8, 0, 0, 0];
    head.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    head.extend_from_slice(&0u64.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&payload), &head);
    let mut record = b"SRQ1".to_vec();
    record.extend_from_slice(&crc.to_le_bytes());
    record.extend_from_slice(&head);
    record.extend_from_slice(&payload);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(segment::path(dir.path(), 0), &record).unwrap();
    let (queue, report) = DiskQueue::open_with(dir.path(), "t", options()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.events_recovered, 1);
    drop(queue);
    filled(dir.path(), 1).await;
    let mut delivered = drain(dir.path()).await;
    delivered.sort();
    assert_eq!(delivered, ["b0-0", "b0-1", "b0-2", "legacy"]);
}
