//! What the syslog receiver reports: the receiver metrics every receiver uses (events received,
//! refused by reason, mapping errors) and, for UDP, the events lost
//! (`siemrelay_receiver_events_dropped_total`): UDP cannot tell a sender to slow down or
//! resend, so every UDP event refused is also counted as dropped. Counted per batch.

/// Events parsed into events and accepted by the pipeline.
pub const EVENTS_RECEIVED: &str = "siemrelay_receiver_events_received_total";
/// Events (or messages) refused, by reason.
pub const EVENTS_REFUSED: &str = "siemrelay_receiver_events_refused_total";
/// Events lost for good (UDP only), by reason.
pub const EVENTS_DROPPED: &str = "siemrelay_receiver_events_dropped_total";
/// Fields that could not be mapped into their well-known slot.
pub const MAPPING_ERRORS: &str = "siemrelay_receiver_mapping_errors_total";
/// Connections a listener refused or closed, by reason (shared with the HTTP listeners).
pub const LISTENER_REFUSED: &str = "siemrelay_listener_refused_total";

/// Why a message or event was refused (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// An exporter queue was full.
    Backpressure,
    /// `service.memory_limit` was reached (UDP).
    Memory,
    /// The kernel's socket buffer overflowed before siemrelay read the datagram (UDP).
    SocketBuffer,
    /// A message over `max_message_size` (TCP).
    TooLarge,
    /// A TCP stream that broke its framing (the connection is closed).
    Framing,
    /// A message refused by `strict` mapping.
    Invalid,
    /// A sender outside `allowed_cidrs` (UDP datagrams; TCP connections count in the listener).
    Address,
    /// siemrelay was stopping.
    ShuttingDown,
    /// A queue could not store the batch (disk error).
    QueueFailed,
}

impl Reason {
    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Backpressure => "backpressure",
            Reason::Memory => "memory",
            Reason::SocketBuffer => "socket_buffer",
            Reason::TooLarge => "too_large",
            Reason::Framing => "framing",
            Reason::Invalid => "invalid",
            Reason::Address => "address",
            Reason::ShuttingDown => "shutting_down",
            Reason::QueueFailed => "queue_failed",
        }
    }
}

/// Reports for one receiver.
#[derive(Clone, Debug)]
pub struct Telemetry {
    receiver: String,
}

impl Telemetry {
    /// Reports for the receiver with component id `receiver`.
    pub fn new(receiver: &str) -> Telemetry {
        Telemetry {
            receiver: receiver.to_string(),
        }
    }

    /// The receiver id.
    pub fn receiver(&self) -> &str {
        &self.receiver
    }

    /// A batch of `events` was accepted, with `mapping_errors` unmappable fields.
    pub fn received(&self, events: usize, mapping_errors: usize) {
        metrics::counter!(EVENTS_RECEIVED, "receiver" => self.receiver.clone())
            .increment(events as u64);
        if mapping_errors > 0 {
            metrics::counter!(MAPPING_ERRORS, "receiver" => self.receiver.clone())
                .increment(mapping_errors as u64);
        }
    }

    /// `events` were refused (TCP: they are retried or the sender is told by a closed socket).
    pub fn refused(&self, reason: Reason, events: usize) {
        if events == 0 {
            return;
        }
        metrics::counter!(EVENTS_REFUSED, "receiver" => self.receiver.clone(), "reason" => reason.label())
            .increment(events as u64);
    }

    /// `events` received over UDP are lost: counted as refused and as dropped.
    pub fn dropped(&self, reason: Reason, events: usize) {
        if events == 0 {
            return;
        }
        self.refused(reason, events);
        metrics::counter!(EVENTS_DROPPED, "receiver" => self.receiver.clone(), "reason" => reason.label())
            .increment(events as u64);
    }

    /// A connection was refused or closed by the listener `listener` (`receiver/tcp`).
    pub fn listener_refused(listener: &str, reason: &'static str) {
        metrics::counter!(LISTENER_REFUSED, "listener" => listener.to_string(), "reason" => reason)
            .increment(1);
    }
}
