//! Checkpoints across restarts: exactly-once delivery through a restart in the middle of a large
//! file, shutdown refusals, partial lines at shutdown, files changed while stopped, and corrupt
//! checkpoint files.

mod file_support;

use file_support::*;
use serde_json::json;
use siemrelay_core::Refusal;
use std::collections::BTreeSet;
use tokio_util::sync::CancellationToken;

const LINES: usize = 100_000;

fn line_numbers(summaries: &[String]) -> Vec<usize> {
    summaries
        .iter()
        .map(|s| {
            s.strip_prefix("line-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {s:?}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_file_delivers_each_line_exactly_once() {
    let dirs = Dirs::new();
    let log = dirs.log("big.log");
    append(&log, &numbered("line", 0..LINES));
    let config = || text_config(&dirs.glob("*.log"), "beginning");

    // First run: the sink stops the receiver after 30 accepted batches (of 1000 lines).
    let first = CollectingSink::new();
    let token = CancellationToken::new();
    first.cancel_after(30, token.clone());
    let running = start_with(config(), &dirs.storage, first.clone(), token).await;
    running.join().await;
    assert_eq!(
        first.len(),
        30_000,
        "the receiver stops right after the batch that cancelled"
    );

    // Lines written while stopped are picked up too.
    append(&log, &numbered("line", LINES..LINES + 10));
    let second = CollectingSink::new();
    let running = start(config(), &dirs.storage, second.clone()).await;
    second.wait_for(LINES + 10 - first.len()).await;
    let_it_poll().await;
    running.stop().await;

    let mut all = line_numbers(&first.summaries());
    all.extend(line_numbers(&second.summaries()));
    assert_eq!(all.len(), LINES + 10, "no line delivered twice");
    let unique: BTreeSet<usize> = all.iter().copied().collect();
    assert_eq!(unique, (0..LINES + 10).collect(), "no line lost");
    assert_eq!(all, (0..LINES + 10).collect::<Vec<_>>(), "in file order");
}

#[tokio::test]
async fn shutting_down_refusal_stops_without_advancing() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, &numbered("s", 0..10));
    let config = || text_config(&dirs.glob("*.log"), "beginning");
    let first = CollectingSink::new();
    first.refuse_next([Refusal::ShuttingDown]);
    let running = start(config(), &dirs.storage, first.clone()).await;
    running.join().await; // Returns by itself: the pipeline is shutting down.
    assert_eq!(first.len(), 0);
    assert_eq!(dirs.checkpoint().unwrap()["files"][0]["offset"], json!(0));

    let second = CollectingSink::new();
    let running = start(config(), &dirs.storage, second.clone()).await;
    second.wait_for(10).await;
    running.stop().await;
    assert_eq!(second.summaries(), expected("s", 0..10));
}

#[tokio::test]
async fn partial_line_at_shutdown_is_sent_whole_after_restart() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, "x-0\nhal");
    let config = || text_config(&dirs.glob("*.log"), "beginning");
    let first = CollectingSink::new();
    let running = start(config(), &dirs.storage, first.clone()).await;
    first.wait_for(1).await;
    let_it_poll().await;
    running.stop().await;
    assert_eq!(first.summaries(), ["x-0"]);

    append(&log, "f-done\n");
    let second = CollectingSink::new();
    let running = start(config(), &dirs.storage, second.clone()).await;
    second.wait_for(1).await;
    let_it_poll().await;
    running.stop().await;
    assert_eq!(second.summaries(), ["half-done"]);
}

#[tokio::test]
async fn file_rewritten_while_stopped_is_read_from_the_start() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, &numbered("one", 0..5));
    let config = || text_config(&dirs.glob("*.log"), "end");
    let first = CollectingSink::new();
    let running = start(config(), &dirs.storage, first.clone()).await;
    running.stop().await;
    assert_eq!(first.len(), 0);

    // Same inode, different and longer content (copy-truncate while siemrelay was down).
    std::fs::write(&log, numbered("two", 0..50)).unwrap();
    let second = CollectingSink::new();
    let running = start(config(), &dirs.storage, second.clone()).await;
    second.wait_for(50).await;
    running.stop().await;
    assert_eq!(second.summaries(), expected("two", 0..50));
}

#[tokio::test]
async fn corrupt_or_truncated_checkpoint_treats_files_as_new() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, &numbered("c", 0..5));

    // Garbage checkpoint with start_at: beginning → everything is read.
    std::fs::create_dir_all(&dirs.storage).unwrap();
    std::fs::write(
        dirs.storage.join("checkpoints.json"),
        b"\x00not json at all",
    )
    .unwrap();
    let first = CollectingSink::new();
    let running = start(
        text_config(&dirs.glob("*.log"), "beginning"),
        &dirs.storage,
        first.clone(),
    )
    .await;
    first.wait_for(5).await;
    running.stop().await;
    assert_eq!(first.summaries(), expected("c", 0..5));
    assert!(dirs.storage.join("checkpoints.json.corrupt").exists());
    assert!(
        dirs.checkpoint().is_some(),
        "a valid checkpoint was written again"
    );

    // Truncated checkpoint with start_at: end → old lines skipped, new ones read.
    let full = std::fs::read(dirs.storage.join("checkpoints.json")).unwrap();
    std::fs::write(
        dirs.storage.join("checkpoints.json"),
        &full[..full.len() / 2],
    )
    .unwrap();
    append(&log, &numbered("c", 5..8));
    let second = CollectingSink::new();
    let running = start(
        text_config(&dirs.glob("*.log"), "end"),
        &dirs.storage,
        second.clone(),
    )
    .await;
    let path = log.to_string_lossy().into_owned();
    let deadline = std::time::Instant::now() + PATIENCE;
    while dirs
        .checkpoint()
        .is_none_or(|cp| cp["files"][0]["path"] != json!(path))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "checkpoint not rewritten"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    append(&log, &numbered("c", 8..10));
    second.wait_for(2).await;
    let_it_poll().await;
    running.stop().await;
    assert_eq!(second.summaries(), expected("c", 8..10));
}

#[tokio::test]
async fn files_created_while_stopped_are_read_from_the_beginning() {
    let dirs = Dirs::new();
    append(&dirs.log("a.log"), &numbered("a", 0..3));
    let config = || text_config(&dirs.glob("*.log"), "end");
    let first = CollectingSink::new();
    let running = start(config(), &dirs.storage, first.clone()).await;
    running.stop().await;
    assert_eq!(
        first.len(),
        0,
        "start_at: end skips lines present at the first start"
    );

    // Rotation while stopped: a.log moved out of the glob, a fresh a.log and b.log created.
    std::fs::rename(dirs.log("a.log"), dirs.log("a.log.1")).unwrap();
    append(&dirs.log("a.log"), &numbered("new-a", 0..2));
    append(&dirs.log("b.log"), &numbered("b", 0..2));
    let second = CollectingSink::new();
    let running = start(config(), &dirs.storage, second.clone()).await;
    second.wait_for(4).await;
    let_it_poll().await;
    running.stop().await;
    let mut got = second.summaries();
    got.sort();
    assert_eq!(got, ["b-0", "b-1", "new-a-0", "new-a-1"]);
}
