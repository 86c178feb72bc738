//! Per-batch event counters shared by the filter, enrich and sign processors.

use metrics::{Label, counter};
use siemrelay_core::ProcessorContext;

/// The `siemrelay_processor_events_{in,out,dropped}_total` counters of one processor instance,
/// labelled `processor=<id>`, `pipeline=<pipeline>`. Counted once per batch.
#[derive(Clone, Debug)]
pub(crate) struct BatchCounters {
    labels: [Label; 2],
}

impl BatchCounters {
    /// Counters labelled for the processor instance in `ctx`.
    pub(crate) fn new(ctx: &ProcessorContext) -> BatchCounters {
        BatchCounters {
            labels: [
                Label::new("processor", ctx.id.clone()),
                Label::new("pipeline", ctx.pipeline.clone()),
            ],
        }
    }

    /// Records one batch that came in with `before` events and left with `after`.
    pub(crate) fn record(&self, before: usize, after: usize) {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        counter!("siemrelay_processor_events_in_total", self.labels.to_vec())
            .increment(count(before));
        counter!("siemrelay_processor_events_out_total", self.labels.to_vec())
            .increment(count(after));
        counter!(
            "siemrelay_processor_events_dropped_total",
            self.labels.to_vec()
        )
        .increment(count(before.saturating_sub(after)));
    }
}
