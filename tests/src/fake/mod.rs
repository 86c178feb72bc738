//! Fake SIEM servers that speak the real protocols (paths, auth, batch formats, error replies)
//! and record what they accepted. Each starts on 127.0.0.1 with a free port.

/// The accessors every recording fake shares (address, URL, server plumbing, recorded state,
/// per-event-id delivery counts and waiting for them), written once. The fake must have the
/// fields `server: FakeServer` and `shared` (with `recorder: Recorder<$state>`); `$counts` maps
/// the state to its deliveries per event id.
macro_rules! fake_accessors {
    ($fake:ty, $state:ty, $counts:expr) => {
        impl $fake {
            /// The listening address.
            pub fn addr(&self) -> std::net::SocketAddr {
                self.server.addr()
            }

            /// The base URL (`http://127.0.0.1:<port>`).
            pub fn url(&self) -> String {
                self.server.url()
            }

            /// The server plumbing: go down / come up, and every exchange it answered.
            pub fn server(&self) -> &$crate::fake::http_sink::FakeServer {
                &self.server
            }

            /// The recorded state.
            pub fn recorder(&self) -> &$crate::fake::http_sink::Recorder<$state> {
                &self.shared.recorder
            }

            /// Reads the recorded state.
            pub fn read<R>(&self, f: impl FnOnce(&$state) -> R) -> R {
                self.shared.recorder.read(f)
            }

            /// Deliveries per event id.
            pub fn counts(&self) -> std::collections::HashMap<String, u32> {
                let counts: fn(&$state) -> &std::collections::HashMap<String, u32> = $counts;
                self.read(|s| counts(s).clone())
            }

            /// How often the event with this id was accepted.
            pub fn count_of(&self, event_id: &str) -> u32 {
                let counts: fn(&$state) -> &std::collections::HashMap<String, u32> = $counts;
                self.read(|s| counts(s).get(event_id).copied().unwrap_or(0))
            }

            /// Distinct event ids accepted.
            pub fn distinct_events(&self) -> usize {
                let counts: fn(&$state) -> &std::collections::HashMap<String, u32> = $counts;
                self.read(|s| counts(s).len())
            }

            /// Blocks until `n` distinct events were accepted (or `timeout`).
            pub fn wait_for_events(&self, n: usize, timeout: std::time::Duration) -> bool {
                let counts: fn(&$state) -> &std::collections::HashMap<String, u32> = $counts;
                self.shared
                    .recorder
                    .wait_until(timeout, |s| counts(s).len() >= n)
            }

            /// Waits (async) until `n` distinct events were accepted (or `timeout`).
            pub async fn events_reached(&self, n: usize, timeout: std::time::Duration) -> bool {
                let counts: fn(&$state) -> &std::collections::HashMap<String, u32> = $counts;
                self.shared
                    .recorder
                    .wait_until_async(timeout, |s| counts(s).len() >= n)
                    .await
            }
        }
    };
}

pub mod azure;
pub mod cloudwatch;
pub mod datadog;
pub mod echo;
pub mod elasticsearch;
pub mod gelf;
pub mod hec;
pub mod http_sink;
pub mod qradar_http;
pub mod rsyslog;
pub mod syslog_parse;
pub mod tansu;
