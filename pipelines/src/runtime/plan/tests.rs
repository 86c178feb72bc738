//! The reload planner, without tokio: what is kept, started, replaced or stopped.

use super::*;
use crate::config::load_str;
use siemrelay_processors::sign::SignConfig;

const BASE: &str = r#"
receivers:
  webhook/a: { endpoint: "127.0.0.1:18101" }
  webhook/b: { endpoint: "127.0.0.1:18102" }
processors:
  enrich/env: { actions: [ { action: upsert, key: env, value: prod } ] }
  sign/chain:
    keys: [ { id: k1, secret: "0123456789abcdef0123456789abcdef" } ]
    chain: true
exporters:
  file/a: { path: "./a-%Y-%m-%d.ndjson" }
  file/b: { path: "./b-%Y-%m-%d.ndjson", queue: { type: disk } }
service:
  pipelines:
    one: { receivers: [webhook/a], processors: [enrich/env], exporters: [file/a] }
    two: { receivers: [webhook/b], processors: [sign/chain], exporters: [file/b] }
"#;

fn config(yaml: &str) -> LoadedConfig {
    load_str(yaml, "plan.yaml").unwrap_or_else(|e| panic!("{e}"))
}

/// What runs after `config` was applied (every used component as configured).
fn running(config: &LoadedConfig) -> Running {
    let planned = plan(&Running::default(), config);
    let exporters = planned
        .exporters
        .iter()
        .map(|(id, _)| {
            let (_, spec) = config.exporter(id).unwrap();
            let facts = ExporterFacts {
                raw: raw_of(&config.raw.exporters, id),
                policy: spec.delivery.sending.batch_policy(),
                durable: spec.delivery.queue.kind == QueueType::Disk,
            };
            (id.clone(), facts)
        })
        .collect();
    let chained = |pid: &str| {
        config.processors.iter().any(|(id, spec)| {
            id.id == pid && spec.config_as::<SignConfig>().is_some_and(|s| s.chain)
        })
    };
    let pipelines = planned
        .pipelines
        .iter()
        .map(|p| {
            let facts = PipelineFacts {
                processors: p.processors.clone(),
                exporters: config.service.pipelines[&p.name].exporters.clone(),
                chained: p.processors.iter().any(|(pid, _)| chained(pid)),
            };
            (p.name.clone(), facts)
        })
        .collect();
    let receivers = planned
        .receivers
        .iter()
        .map(|(id, _)| (id.clone(), raw_of(&config.raw.receivers, id)))
        .collect();
    Running {
        exporters,
        pipelines,
        receivers,
    }
}

fn pipeline<'a>(plan: &'a ReloadPlan, name: &str) -> &'a PipelinePlan {
    plan.pipelines.iter().find(|p| p.name == name).unwrap()
}

fn receiver(plan: &ReloadPlan, id: &str) -> Option<ReceiverPlan> {
    plan.receivers
        .iter()
        .find(|(r, _)| r == id)
        .map(|(_, p)| *p)
}

#[test]
fn a_first_start_starts_everything_used() {
    let planned = plan(&Running::default(), &config(BASE));
    assert_eq!(planned.exporter("file/a"), Some(ExporterPlan::Start));
    assert_eq!(planned.exporter("file/b"), Some(ExporterPlan::Start));
    assert!(planned.pipelines.iter().all(|p| !p.reuse && !p.chained));
    assert_eq!(receiver(&planned, "webhook/a"), Some(ReceiverPlan::Start));
    assert!(!planned.pauses());
}

#[test]
fn the_same_config_keeps_everything() {
    let old = config(BASE);
    let planned = plan(&running(&old), &config(BASE));
    assert!(
        planned
            .exporters
            .iter()
            .all(|(_, p)| *p == ExporterPlan::Keep)
    );
    assert!(planned.pipelines.iter().all(|p| p.reuse && !p.chained));
    assert!(
        planned
            .receivers
            .iter()
            .all(|(_, p)| *p == ReceiverPlan::Keep)
    );
    assert!(planned.stopped_exporters.is_empty() && planned.stopped_receivers.is_empty());
    assert!(!planned.pauses(), "{}", planned.describe());
}

#[test]
fn added_and_removed_components() {
    let old = config(BASE);
    let new = config(
        &BASE
            .replace(
                "processors:\n",
                "  webhook/c: { endpoint: \"127.0.0.1:18103\" }\nprocessors:\n",
            )
            .replace(
                "exporters:\n",
                "exporters:\n  file/c: { path: \"./c-%Y-%m-%d.ndjson\" }\n",
            )
            .replace(
                "    two: { receivers: [webhook/b], processors: [sign/chain], exporters: [file/b] }\n",
                "    three: { receivers: [webhook/c], processors: [enrich/env], exporters: [file/c] }\n",
            ),
    );
    let planned = plan(&running(&old), &new);
    assert_eq!(planned.exporter("file/a"), Some(ExporterPlan::Keep));
    assert_eq!(planned.exporter("file/c"), Some(ExporterPlan::Start));
    assert_eq!(planned.exporter("file/b"), None, "no pipeline uses it");
    assert_eq!(planned.stopped_exporters, ["file/b"]);
    assert_eq!(planned.stopped_pipelines, ["two"]);
    assert_eq!(planned.stopped_receivers, ["webhook/b"]);
    assert_eq!(receiver(&planned, "webhook/c"), Some(ReceiverPlan::Start));
    assert_eq!(receiver(&planned, "webhook/a"), Some(ReceiverPlan::Keep));
    assert!(pipeline(&planned, "one").reuse);
    assert!(!pipeline(&planned, "three").reuse);
    assert!(!planned.pauses(), "a removed chain needs no hand-over");
}

#[test]
fn a_changed_receiver_restarts_and_its_pipelines_stay() {
    let old = config(BASE);
    let new = config(&BASE.replace("18101", "18111"));
    let planned = plan(&running(&old), &new);
    assert_eq!(receiver(&planned, "webhook/a"), Some(ReceiverPlan::Restart));
    assert_eq!(receiver(&planned, "webhook/b"), Some(ReceiverPlan::Keep));
    assert!(planned.pipelines.iter().all(|p| p.reuse));
}

#[test]
fn a_changed_processor_rebuilds_only_its_pipeline() {
    let old = config(BASE);
    let new = config(&BASE.replace("value: prod", "value: staging"));
    let planned = plan(&running(&old), &new);
    assert!(!pipeline(&planned, "one").reuse);
    assert!(pipeline(&planned, "two").reuse);
    assert!(
        planned
            .exporters
            .iter()
            .all(|(_, p)| *p == ExporterPlan::Keep)
    );
    assert!(!planned.pauses());
}

#[test]
fn a_changed_memory_exporter_is_replaced_next_to_the_old_one() {
    let old = config(BASE);
    let new = config(&BASE.replace("./a-%Y", "./a2-%Y"));
    let planned = plan(&running(&old), &new);
    assert_eq!(
        planned.exporter("file/a"),
        Some(ExporterPlan::Replace { after_close: false })
    );
    assert!(
        !pipeline(&planned, "one").reuse,
        "it delivers to the new instance"
    );
    assert!(pipeline(&planned, "two").reuse);
    assert!(!planned.pauses());
}

#[test]
fn a_disk_queue_is_handed_over_only_from_disk_to_disk() {
    let old = config(BASE);
    // disk → disk: the directory is locked until the old queue closes.
    let new = config(&BASE.replace("./b-%Y", "./b2-%Y"));
    let planned = plan(&running(&old), &new);
    assert_eq!(
        planned.exporter("file/b"),
        Some(ExporterPlan::Replace { after_close: true })
    );
    assert_eq!(planned.closes_first().collect::<Vec<_>>(), ["file/b"]);
    assert!(planned.pauses());
    // disk → memory: nothing to take over.
    let new = config(&BASE.replace(", queue: { type: disk }", ""));
    let planned = plan(&running(&old), &new);
    assert_eq!(
        planned.exporter("file/b"),
        Some(ExporterPlan::Replace { after_close: false })
    );
    // memory → disk: the old queue holds no directory.
    let new = config(&BASE.replace(
        "file/a: { path: \"./a-%Y-%m-%d.ndjson\" }",
        "file/a: { path: \"./a-%Y-%m-%d.ndjson\", queue: { type: disk } }",
    ));
    let planned = plan(&running(&old), &new);
    assert_eq!(
        planned.exporter("file/a"),
        Some(ExporterPlan::Replace { after_close: false })
    );
}

#[test]
fn a_changed_chained_pipeline_is_rebuilt_after_its_old_chain_is_saved() {
    let old = config(BASE);
    let new = config(
        &BASE
            .replace("./b-%Y", "./b2-%Y")
            .replace(", queue: { type: disk }", ""),
    );
    let planned = plan(&running(&old), &new);
    let two = pipeline(&planned, "two");
    assert!(!two.reuse && two.chained);
    assert!(planned.pauses());
    assert!(!pipeline(&planned, "one").chained);
}

#[test]
fn new_batch_settings_replace_an_exporter_whose_block_did_not_change() {
    let old = config(BASE);
    let new = config(
        &BASE
            .replace(
                "processors:\n",
                "processors:\n  batch: { send_batch_size: 10 }\n",
            )
            .replace(
                "processors: [enrich/env]",
                "processors: [enrich/env, batch]",
            ),
    );
    let planned = plan(&running(&old), &new);
    assert_eq!(
        planned.exporter("file/a"),
        Some(ExporterPlan::Replace { after_close: false })
    );
    assert_eq!(planned.exporter("file/b"), Some(ExporterPlan::Keep));
}
