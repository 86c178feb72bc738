//! The `elasticsearch` exporter's factory: its entry in [`crate::exporter_factories`].

use super::ElasticsearchConfig;
use super::ElasticsearchEncoder;

crate::exporter_factory! {
    /// Builds `elasticsearch` exporters (Elasticsearch/OpenSearch `_bulk`).
    pub struct ElasticsearchFactory {
        type_name: "elasticsearch",
        config: ElasticsearchConfig,
        http: ElasticsearchEncoder,
        takes_schema: true,
        build: |config, ctx| super::build(ctx.id, config.clone(), ctx.http, ctx.timeout()),
    }
}
