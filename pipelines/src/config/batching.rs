//! Batching is an exporter setting (`sending.batch_size`, `sending.batch_max_size`,
//! `sending.batch_timeout`): how the exporter's queue is drained into requests. A `batch`
//! processor is still accepted for compatibility: its settings are lifted onto every exporter of
//! its pipeline. One exporter has one batch setting, so two pipelines (or a pipeline and the
//! exporter's own `sending`) that give it different settings are an error naming both.

use super::{ComponentId, ConfigError, PipelineConfig};
use crate::registry::{ExporterSpec, ProcessorSpec};
use indexmap::IndexMap;
use siemrelay_exporters::delivery::BatchPolicy;
use siemrelay_processors::batch::BatchConfig;

/// Where an exporter's batch setting came from, for messages.
struct Source {
    policy: BatchPolicy,
    /// `exporters.<id>.sending`, or `pipeline <name> (processor <id>)`.
    origin: String,
}

/// Lifts `batch` processors onto their pipelines' exporters (`sending.batch_*`), refusing
/// different settings for one exporter.
pub(super) fn lift_batch_processors(
    pipelines: &IndexMap<String, PipelineConfig>,
    processors: &[(ComponentId, ProcessorSpec)],
    exporters: &mut [(ComponentId, ExporterSpec)],
    errors: &mut Vec<ConfigError>,
) {
    for (id, spec) in exporters.iter_mut() {
        let mut first: Option<Source> = spec.delivery.sending.sets_batching().then(|| Source {
            policy: spec.delivery.sending.batch_policy(),
            origin: format!("exporters.{}.sending", id.id),
        });
        let mut lifted = None;
        for (name, pipeline) in pipelines {
            if !pipeline.exporters.contains(&id.id) {
                continue;
            }
            let Some((index, processor, batch)) = batch_processor(pipeline, processors) else {
                continue;
            };
            let policy = policy_of(batch);
            match &first {
                Some(seen) if seen.policy != policy => errors.push(ConfigError {
                    path: format!("service.pipelines.{name}.processors[{index}]"),
                    message: format!(
                        "exporter {} gets batch settings {} from pipeline {name} (processor {processor}) but {} from {}; an exporter has one batch setting: make them equal, or set them once in exporters.{}.sending (batch_size, batch_max_size, batch_timeout) and drop the batch processors",
                        id.id,
                        describe(&policy),
                        describe(&seen.policy),
                        seen.origin,
                        id.id,
                    ),
                }),
                Some(_) => {}
                None => {
                    first = Some(Source {
                        policy,
                        origin: format!("pipeline {name} (processor {processor})"),
                    });
                    lifted = Some(policy);
                }
            }
        }
        if let Some(policy) = lifted {
            spec.delivery.sending.set_batch_policy(policy);
        }
    }
}

/// The first `batch` processor a pipeline lists: its index in the list, its id, its settings.
fn batch_processor<'a>(
    pipeline: &'a PipelineConfig,
    processors: &'a [(ComponentId, ProcessorSpec)],
) -> Option<(usize, &'a str, &'a BatchConfig)> {
    pipeline
        .processors
        .iter()
        .enumerate()
        .find_map(|(index, pid)| {
            let (_, spec) = processors.iter().find(|(id, _)| &id.id == pid)?;
            Some((index, pid.as_str(), spec.config_as::<BatchConfig>()?))
        })
}

fn policy_of(batch: &BatchConfig) -> BatchPolicy {
    BatchPolicy {
        min_events: batch.send_batch_size,
        max_events: batch.send_batch_max_size,
        linger: batch.timeout.0,
    }
}

fn describe(policy: &BatchPolicy) -> String {
    format!(
        "(batch_size {}, batch_max_size {}, batch_timeout {:?})",
        policy.min_events, policy.max_events, policy.linger
    )
}
