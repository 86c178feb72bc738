//! The file receiver tailing real files in a tempdir: appends, start_at, partial lines,
//! rotation, truncation, deletion, new files, JSON parse errors, long lines, refusals.

mod file_support;

use file_support::*;
use serde_json::json;
use siemrelay_core::Refusal;
use std::time::{Duration, Instant};

/// Waits (polling the file system) until the checkpoint satisfies `check`.
async fn wait_for_checkpoint(dirs: &Dirs, check: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if dirs.checkpoint().as_ref().is_some_and(&check) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint never reached the expected state: {:?}",
            dirs.checkpoint()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn tracked_paths(checkpoint: &serde_json::Value) -> Vec<String> {
    checkpoint["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| f["path"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_until_tracked(dirs: &Dirs, name: &str) {
    let path = dirs.log(name).to_string_lossy().into_owned();
    wait_for_checkpoint(dirs, |cp| tracked_paths(cp).contains(&path)).await;
}

#[tokio::test]
async fn start_at_end_skips_existing_lines_and_follows_appends() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, &numbered("old", 0..5));
    append(&log, "old-partial-without-newline");
    let sink = CollectingSink::new();
    let running = start(
        text_config(&dirs.glob("*.log"), "end"),
        &dirs.storage,
        sink.clone(),
    )
    .await;
    wait_until_tracked(&dirs, "app.log").await;
    append(&log, "\n");
    append(&log, &numbered("new", 0..3));
    sink.wait_for(4).await;
    running.stop().await;
    let mut want = vec!["old-partial-without-newline".to_string()];
    want.extend(expected("new", 0..3));
    assert_eq!(sink.summaries(), want);
    let event = &sink.events()[1];
    assert_eq!(event.event_type, "log");
    assert_eq!(
        event.attributes["log.file.path"],
        json!(log.to_string_lossy())
    );
    let offset = 5 * "old-0\n".len() + "old-partial-without-newline\n".len();
    assert_eq!(event.attributes["log.file.offset"], json!(offset));
}

#[tokio::test]
async fn start_at_beginning_reads_existing_lines() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, &numbered("old", 0..5));
    let sink = CollectingSink::new();
    let running = start(
        text_config(&dirs.glob("*.log"), "beginning"),
        &dirs.storage,
        sink.clone(),
    )
    .await;
    sink.wait_for(5).await;
    append(&log, &numbered("new", 0..2));
    sink.wait_for(7).await;
    running.stop().await;
    let mut want = expected("old", 0..5);
    want.extend(expected("new", 0..2));
    assert_eq!(sink.summaries(), want);
}

#[tokio::test]
async fn partial_last_line_waits_for_its_newline() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, "p-0\np-1\npar");
    let sink = CollectingSink::new();
    let running = start(
        text_config(&dirs.glob("*.log"), "beginning"),
        &dirs.storage,
        sink.clone(),
    )
    .await;
    sink.wait_for(2).await;
    let_it_poll().await;
    assert_eq!(sink.summaries(), ["p-0", "p-1"]);
    append(&log, "tial\r\n");
    sink.wait_for(3).await;
    running.stop().await;
    assert_eq!(sink.summaries(), ["p-0", "p-1", "partial"]);
}

#[tokio::test]
async fn rename_rotation_reads_the_rest_of_the_old_file_then_the_new_one() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, &numbered("l", 0..50));
    let sink = CollectingSink::new();
    let running = start(
        text_config(&log.to_string_lossy(), "beginning"),
        &dirs.storage,
        sink.clone(),
    )
    .await;
    sink.wait_for(50).await;

    // The writer still holds the old file open and writes to it after the rename.
    let mut writer = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::rename(&log, dirs.log("app.log.1")).unwrap();
    std::io::Write::write_all(&mut writer, numbered("l", 50..100).as_bytes()).unwrap();
    drop(writer);
    append(&log, &numbered("l", 100..150));
    sink.wait_for(150).await;

    // The old file's state is dropped once it was read to the end.
    let new_path = log.to_string_lossy().into_owned();
    wait_for_checkpoint(&dirs, |cp| tracked_paths(cp) == [new_path.clone()]).await;
    append(&log, &numbered("l", 150..160));
    sink.wait_for(160).await;
    running.stop().await;
    assert_eq!(sink.summaries(), expected("l", 0..160));
}

#[tokio::test]
async fn copy_truncate_restarts_at_zero() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, &numbered("before", 0..20));
    let sink = CollectingSink::new();
    let running = start(
        text_config(&dirs.glob("*.log"), "beginning"),
        &dirs.storage,
        sink.clone(),
    )
    .await;
    sink.wait_for(20).await;
    std::fs::copy(&log, dirs.log("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &numbered("after", 0..3));
    sink.wait_for(23).await;
    // Truncated again and refilled past the old offset.
    std::fs::write(&log, numbered("again", 0..40)).unwrap();
    sink.wait_for(63).await;
    running.stop().await;
    let mut want = expected("before", 0..20);
    want.extend(expected("after", 0..3));
    want.extend(expected("again", 0..40));
    assert_eq!(sink.summaries(), want);
}

#[tokio::test]
async fn deleted_file_is_read_to_its_end_then_forgotten() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, &numbered("d", 0..10));
    let sink = CollectingSink::new();
    let running = start(
        text_config(&dirs.glob("*.log"), "beginning"),
        &dirs.storage,
        sink.clone(),
    )
    .await;
    sink.wait_for(10).await;
    append(&log, &numbered("d", 10..20));
    std::fs::remove_file(&log).unwrap();
    sink.wait_for(20).await;
    wait_for_checkpoint(&dirs, |cp| tracked_paths(cp).is_empty()).await;
    // A new file at the same path is read from its start.
    append(&log, &numbered("e", 0..3));
    sink.wait_for(23).await;
    running.stop().await;
    let mut want = expected("d", 0..20);
    want.extend(expected("e", 0..3));
    assert_eq!(sink.summaries(), want);
}

#[tokio::test]
async fn new_matching_files_are_read_from_the_start_and_excluded_ones_never() {
    let dirs = Dirs::new();
    append(&dirs.log("a.log"), &numbered("a", 0..3));
    let config = config(json!({
        "include": [dirs.glob("*.log")],
        "exclude": [dirs.glob("*.debug.log")],
        "format": "text",
        "poll_interval": "20ms",
        "event_type": "file.line",
        "source": "gateway",
    }));
    let sink = CollectingSink::new();
    let running = start(config, &dirs.storage, sink.clone()).await;
    wait_until_tracked(&dirs, "a.log").await;
    append(&dirs.log("x.debug.log"), &numbered("x", 0..3));
    append(&dirs.log("b.log"), &numbered("b", 0..4));
    sink.wait_for(4).await;
    let_it_poll().await;
    running.stop().await;
    assert_eq!(sink.summaries(), expected("b", 0..4));
    let event = &sink.events()[0];
    assert_eq!(event.event_type, "file.line");
    assert_eq!(event.source.as_deref(), Some("gateway"));
}

#[tokio::test]
async fn json_lines_are_ingested_and_bad_ones_become_parse_errors() {
    let dirs = Dirs::new();
    let log = dirs.log("audit.log");
    append(
        &log,
        concat!(
            r#"{"type":"user.login","msg":"ann logged in","severity":"info","user":"ann"}"#,
            "\n{\"truncated\": \n",
            r#"{"type":"user.logout","msg":"ann left"}"#,
            "\n"
        ),
    );
    let config = config(json!({
        "include": [dirs.glob("*.log")],
        "start_at": "beginning",
        "poll_interval": "20ms",
        "mapping": {"event_type": "type", "summary": "msg"},
    }));
    let sink = CollectingSink::new();
    let running = start(config, &dirs.storage, sink.clone()).await;
    sink.wait_for(3).await;
    running.stop().await;
    let events = sink.events();
    assert_eq!(events[0].event_type, "user.login");
    assert_eq!(events[0].summary.as_deref(), Some("ann logged in"));
    assert_eq!(events[0].attributes["user"], json!("ann"));
    assert!(!events[0].attributes.contains_key("parse_error"));
    assert_eq!(events[1].summary.as_deref(), Some("{\"truncated\": "));
    let reason = events[1].attributes["parse_error"].as_str().unwrap();
    assert!(reason.contains("invalid JSON"), "{reason}");
    assert_eq!(events[2].event_type, "user.logout");
}

#[tokio::test]
async fn over_long_lines_are_cut_and_do_not_block_the_file() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, &format!("{}\nshort\n", "x".repeat(300_000)));
    let config = config(json!({
        "include": [dirs.glob("*.log")],
        "format": "text",
        "start_at": "beginning",
        "poll_interval": "20ms",
        "max_line_size": "1KiB",
    }));
    let sink = CollectingSink::new();
    let running = start(config, &dirs.storage, sink.clone()).await;
    sink.wait_for(2).await;
    running.stop().await;
    let events = sink.events();
    assert_eq!(events[0].summary.as_deref().map(str::len), Some(1024));
    let reason = events[0].attributes["parse_error"].as_str().unwrap();
    assert!(reason.contains("300000 bytes"), "{reason}");
    assert_eq!(events[1].summary.as_deref(), Some("short"));
}

#[tokio::test]
async fn refused_batches_are_retried_without_loss_or_duplicates() {
    let dirs = Dirs::new();
    let log = dirs.log("app.log");
    append(&log, &numbered("r", 0..300));
    let config = config(json!({
        "include": [dirs.glob("*.log")],
        "format": "text",
        "start_at": "beginning",
        "poll_interval": "20ms",
        "max_batch": 50,
    }));
    let sink = CollectingSink::new();
    let full = Refusal::Full {
        retry_after: Duration::from_millis(5),
    };
    sink.refuse_next([full.clone(), full.clone(), full]);
    let running = start(config, &dirs.storage, sink.clone()).await;
    sink.wait_for(300).await;
    // Refuse again mid-stream.
    sink.refuse_next([Refusal::Full {
        retry_after: Duration::ZERO,
    }]);
    append(&log, &numbered("r", 300..320));
    sink.wait_for(320).await;
    let_it_poll().await;
    running.stop().await;
    assert_eq!(*sink.refused.lock().unwrap(), 4);
    assert_eq!(sink.summaries(), expected("r", 0..320));
}
