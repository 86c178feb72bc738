//! The `cloudwatch_logs` exporter's factory: its entry in [`crate::exporter_factories`].

use super::CloudWatchLogsConfig;
use super::CloudWatchLogsEncoder;

crate::exporter_factory! {
    /// Builds `cloudwatch_logs` exporters (AWS CloudWatch Logs `PutLogEvents`).
    pub struct CloudWatchLogsFactory {
        type_name: "cloudwatch_logs",
        config: CloudWatchLogsConfig,
        http: CloudWatchLogsEncoder,
        takes_schema: true,
        build: |config, ctx| super::build(ctx.id, config.clone(), ctx.http, ctx.timeout()),
    }
}
