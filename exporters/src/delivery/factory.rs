//! The exporter factory: what each exporter module registers in
//! [`crate::exporter_factories`] (its type name, which shared keys it honours, its config type,
//! how its [`Sink`] is built). The receiver and processor factories live in
//! `siemrelay_core::factory`; this one lives here because a sink and the shared HTTP keys are
//! delivery-layer types.
//!
//! Every exporter takes the delivery keys `sending`, `retry` and `queue`; an HTTP exporter also
//! takes `tls`, `compression` and `signing`. A `compression` or `signing` setting that its
//! encoder does not honour ([`HttpEncoder::HONOURS`]) is refused when the config is validated
//! (never ignored), and again by [`super::http::HttpSink::new`].
//!
//! An exporter declares its factory with one [`exporter_factory!`](crate::exporter_factory)
//! call: type name, config type, the encoder whose shared keys it takes (HTTP exporters only)
//! and one expression that builds its sink. A hand-written `impl ExporterFactory` still works
//! the same.

use super::Sink;
use super::config::DeliveryConfig;
use super::http::{HttpEncoder, HttpOptions, SharedHttpKeys};
use super::schema::Schema;
use siemrelay_core::config_read::{ConfigError, Value};
use siemrelay_core::config_types::ConfigIssue;
use siemrelay_core::factory::{BoxedConfig, ComponentConfig};
use std::sync::Arc;
use std::time::Duration;

/// The delivery keys every exporter takes (`schema` is refused, not ignored, by an exporter
/// that does not send JSON: see [`ExporterFactory::takes_schema`]).
pub const DELIVERY_KEYS: &[&str] = &["sending", "retry", "queue", "schema"];

/// The shared keys of HTTP exporters ([`HttpOptions`]).
pub const HTTP_KEYS: &[&str] = &["tls", "compression", "signing"];

/// Which shared keys an exporter takes besides [`DELIVERY_KEYS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedKeys {
    /// Not an HTTP exporter: `tls`, `compression` and `signing`, when allowed at all, are its
    /// own keys (syslog and Kafka have their own `tls`).
    None,
    /// An HTTP exporter: it takes every key of [`HTTP_KEYS`]; `tls` always applies, and a
    /// `compression` or `signing` setting its encoder cannot honour is refused with `refusal`
    /// as the reason (never ignored).
    Http {
        /// What the encoder honours ([`HttpEncoder::HONOURS`]).
        honours: SharedHttpKeys,
        /// Why the others are refused ([`HttpEncoder::REFUSAL`]).
        refusal: &'static str,
    },
}

impl SharedKeys {
    /// The shared keys of an exporter whose requests the encoder `E` makes: what `E` declares
    /// it honours, the one source of that fact.
    pub fn of<E: HttpEncoder>() -> SharedKeys {
        SharedKeys::Http {
            honours: E::HONOURS,
            refusal: E::REFUSAL,
        }
    }

    /// The settings of `options` this exporter cannot honour, as issues naming the key
    /// (relative to the exporter block); none for a non-HTTP exporter.
    pub fn refused(&self, options: &HttpOptions) -> Vec<ConfigIssue> {
        match self {
            SharedKeys::None => Vec::new(),
            SharedKeys::Http { honours, refusal } => honours.refused(options, refusal),
        }
    }
}

/// What an exporter's sink is built from, besides its own config.
#[derive(Clone, Copy, Debug)]
pub struct ExporterBuildContext<'a> {
    /// The exporter's component id (`splunk_hec/prod`).
    pub id: &'a str,
    /// Its `sending`, `retry` and `queue` settings.
    pub delivery: &'a DeliveryConfig,
    /// Its `tls`, `compression` and `signing` settings (defaults where not taken).
    pub http: &'a HttpOptions,
}

/// The issue for a `schema` setting an exporter cannot honour (key relative to the exporter
/// block); none when it takes `schema` or the setting is `native`.
pub fn refused_schema(
    factory: &dyn ExporterFactory,
    delivery: &DeliveryConfig,
) -> Option<ConfigIssue> {
    let schema = delivery.schema;
    (schema != super::schema::Schema::Native && !factory.takes_schema()).then(|| {
        ConfigIssue::new(
            "schema",
            format!(
                "`{}` exporters do not send events as JSON objects, so they cannot reshape them: remove `schema: {}`",
                factory.type_name(),
                schema.name()
            ),
        )
    })
}

impl ExporterBuildContext<'_> {
    /// `schema`: the shape of each event's JSON form.
    pub fn schema(&self) -> super::schema::Schema {
        self.delivery.schema
    }

    /// `sending.timeout`: the timeout of one request.
    pub fn timeout(&self) -> Duration {
        self.delivery.sending.timeout.0
    }
}

/// An exporter type (`splunk_hec`, `file`, …).
pub trait ExporterFactory: Send + Sync {
    /// The type part of component ids (`splunk_hec` in `splunk_hec/prod`).
    fn type_name(&self) -> &'static str;

    /// The shared HTTP keys it takes (default: none, not an HTTP exporter). An HTTP exporter
    /// returns [`SharedKeys::of`] its encoder.
    fn shared_keys(&self) -> SharedKeys {
        SharedKeys::None
    }

    /// True when the exporter sends each event's JSON form and honours the shared `schema`
    /// key (default: false, and a `schema` other than `native` is refused at validation).
    fn takes_schema(&self) -> bool {
        false
    }

    /// Issues between the exporter's own keys and the `schema` it was given (keys relative to
    /// the exporter block), for an exporter whose settings depend on the shape (Sentinel: the
    /// DCR stream of that shape). Default: none.
    fn schema_issues(&self, _config: &dyn ComponentConfig, _schema: Schema) -> Vec<ConfigIssue> {
        Vec::new()
    }

    /// Reads and checks the exporter's own keys (the shared keys are already taken out).
    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>>;

    /// Builds the sink from a config this factory read.
    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ExporterBuildContext<'_>,
    ) -> anyhow::Result<Arc<dyn Sink>>;
}

/// What [`exporter_factory!`](crate::exporter_factory) expands to, reachable from any crate.
#[doc(hidden)]
pub mod macro_support {
    pub use anyhow;
    pub use siemrelay_core::config_types::ConfigIssue;
    pub use siemrelay_core::{config_read, factory, factory_read_config};
}

/// Declares an exporter factory: a unit struct `$name` implementing [`ExporterFactory`] for the
/// config type `config` (read by `siemrelay_core::factory::read_config` with the type's
/// `validate`). `http: Encoder` (HTTP exporters only) takes the shared HTTP keys that
/// `Encoder` honours ([`SharedKeys::of`]); without it the exporter takes none. `takes_schema:
/// true` says the exporter writes the shared `schema` key's shapes (default: it refuses them);
/// `schema_issues: path` names a `fn(&Config, Schema) -> Vec<ConfigIssue>` checking the
/// exporter's keys against that shape ([`ExporterFactory::schema_issues`]). The `build`
/// body returns the sink; in it `$config` is the `&Config` and `$ctx` the
/// [`ExporterBuildContext`].
///
/// ```ignore
/// siemrelay_exporters::exporter_factory! {
///     /// Builds `datadog` exporters (Datadog Logs intake).
///     pub struct DatadogFactory {
///         type_name: "datadog",
///         config: DatadogConfig,
///         http: DatadogEncoder,
///         build: |config, ctx| build(ctx.id, config.clone(), ctx.http, ctx.timeout()),
///     }
/// }
/// ```
#[macro_export]
macro_rules! exporter_factory {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            type_name: $type_name:literal,
            config: $config_ty:ty,
            $(http: $encoder:ty,)?
            $(takes_schema: $takes_schema:literal,)?
            $(schema_issues: $schema_issues:path,)?
            build: |$config:ident, $ctx:ident| $build:expr $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name;

        impl $crate::delivery::factory::ExporterFactory for $name {
            fn type_name(&self) -> &'static str {
                $type_name
            }

            $(
                fn shared_keys(&self) -> $crate::delivery::factory::SharedKeys {
                    $crate::delivery::factory::SharedKeys::of::<$encoder>()
                }
            )?

            $(
                fn takes_schema(&self) -> bool {
                    $takes_schema
                }
            )?

            $(
                fn schema_issues(
                    &self,
                    config: &dyn $crate::delivery::factory::macro_support::factory::ComponentConfig,
                    schema: $crate::delivery::schema::Schema,
                ) -> ::std::vec::Vec<$crate::delivery::factory::macro_support::ConfigIssue> {
                    match $crate::delivery::factory::macro_support::factory::config_as::<$config_ty>(
                        config, $type_name,
                    ) {
                        Ok(config) => $schema_issues(config, schema),
                        Err(_) => ::std::vec::Vec::new(),
                    }
                }
            )?

            $crate::delivery::factory::macro_support::factory_read_config!($config_ty);

            fn build(
                &self,
                config: &dyn $crate::delivery::factory::macro_support::factory::ComponentConfig,
                ctx: &$crate::delivery::factory::ExporterBuildContext<'_>,
            ) -> $crate::delivery::factory::macro_support::anyhow::Result<
                ::std::sync::Arc<dyn $crate::delivery::Sink>,
            > {
                let $config = $crate::delivery::factory::macro_support::factory::config_as::<
                    $config_ty,
                >(config, $type_name)?;
                let $ctx = ctx;
                $build
            }
        }
    };
}
