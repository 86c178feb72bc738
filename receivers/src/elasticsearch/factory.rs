//! The `elasticsearch` receiver's factory: its entry in [`crate::receiver_factories`].

use super::{ElasticsearchConfig, bind};

siemrelay_core::receiver_factory! {
    /// Builds `elasticsearch` receivers (Elasticsearch's Bulk API).
    pub struct ElasticsearchFactory {
        type_name: "elasticsearch",
        config: ElasticsearchConfig,
        build: |config, ctx| Ok(Box::new(bind(ctx.id, config.clone()).await?)),
    }
}
