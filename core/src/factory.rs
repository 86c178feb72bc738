//! The component model: every component type is a factory (its type name, its config type, how
//! a running instance is built), and each component crate lists its factories once
//! (`siemrelay_receivers::receiver_factories()`, `siemrelay_processors::processor_factories()`,
//! `siemrelay_exporters::exporter_factories()`). The pipelines crate looks a config block's type
//! up in those lists; it knows no component by name.
//!
//! The receiver and processor factories live here, next to [`Receiver`] and [`Processor`]. The
//! exporter factory lives in `siemrelay_exporters::delivery::factory`, because what it builds (a
//! `Sink`) and the shared keys it takes (`tls`, `compression`, `signing`) are the delivery
//! layer's types.
//!
//! A config is read with `deny_unknown_fields` and every problem collected
//! ([`crate::config_read::read_block`]); the parsed value is kept type-erased
//! ([`ComponentConfig`]) and handed back to the same factory's `build`.
//!
//! A component declares its factory with one macro call, [`receiver_factory!`] or
//! [`processor_factory!`] (exporters: `siemrelay_exporters::exporter_factory!`): its type name,
//! its config type (read with [`read_config`], checked by the type's `validate`) and one
//! expression that builds it. A hand-written `impl ReceiverFactory` still works the same.

use crate::component::{Processor, ProcessorContext, Receiver};
use crate::config_read::{ConfigError, Value};
use crate::config_types::ConfigIssue;
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::fmt;

/// A component's parsed and validated config, as the lists keep it. Any `Debug + Send + Sync`
/// type is one.
pub trait ComponentConfig: Any + fmt::Debug + Send + Sync {
    /// The concrete config, for the factory that made it (and the few callers that need one
    /// type's settings, such as the `file` exporter's path checks).
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + fmt::Debug + Send + Sync> ComponentConfig for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A parsed config, boxed.
pub type BoxedConfig = Box<dyn ComponentConfig>;

/// A config handed to another type's factory: a bug in the lists, never bad input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("internal error: the config given to the `{kind}` factory is not a {expected}")]
pub struct ConfigMismatch {
    /// The factory's type name.
    pub kind: String,
    /// The config type it expected.
    pub expected: &'static str,
}

/// Its message, for callers that collect plain messages (`ConfigIssue::new("", mismatch)`).
impl From<ConfigMismatch> for String {
    fn from(mismatch: ConfigMismatch) -> String {
        mismatch.to_string()
    }
}

/// `config` as the `T` its factory made it; an error names the type when it is not.
pub fn config_as<'a, T: Any>(
    config: &'a dyn ComponentConfig,
    kind: &str,
) -> Result<&'a T, ConfigMismatch> {
    config
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| ConfigMismatch {
            kind: kind.to_string(),
            expected: std::any::type_name::<T>(),
        })
}

/// What a receiver is given when it is built (its sockets are bound then).
#[derive(Clone, Copy, Debug)]
pub struct ReceiverBuildContext<'a> {
    /// The receiver's component id (`webhook/gateway`).
    pub id: &'a str,
}

/// A receiver type (`webhook`, `otlp`, …).
#[async_trait]
pub trait ReceiverFactory: Send + Sync {
    /// The type part of component ids (`webhook` in `webhook/gateway`).
    fn type_name(&self) -> &'static str;

    /// Reads and checks the receiver's block (`path` is its key path, for messages).
    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>>;

    /// Builds the receiver from a config this factory read, binding its listeners.
    async fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: ReceiverBuildContext<'_>,
    ) -> anyhow::Result<Box<dyn Receiver>>;
}

/// A processor type (`filter`, `enrich`, …).
pub trait ProcessorFactory: Send + Sync {
    /// The type part of component ids.
    fn type_name(&self) -> &'static str;

    /// Reads and checks the processor's block.
    fn read_config(&self, block: Value, path: &str) -> Result<BoxedConfig, Vec<ConfigError>>;

    /// Builds one instance for one pipeline (`ctx.pipeline`). `None`: the processor has no
    /// running part (`batch`, which only sets how the pipeline's exporters batch).
    fn build(
        &self,
        config: &dyn ComponentConfig,
        ctx: &ProcessorContext,
    ) -> Result<Option<Box<dyn Processor>>, Vec<ConfigIssue>>;
}

/// The type names of a list of factories, for messages (`webhook, otlp, file, kafka`).
pub fn type_names<F: ?Sized>(factories: &[&F], name: impl Fn(&F) -> &'static str) -> String {
    factories
        .iter()
        .map(|f| name(f))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a component's block into its config type `T` (unknown keys refused, every error
/// collected with its path, then `validate`), boxed for the lists: the `read_config` of every
/// factory.
pub fn read_config<T: DeserializeOwned + ComponentConfig>(
    block: Value,
    path: &str,
    validate: impl Fn(&T) -> Vec<ConfigIssue>,
) -> Result<BoxedConfig, Vec<ConfigError>> {
    Ok(Box::new(crate::config_read::read_block(
        block, path, validate,
    )?))
}

/// What the factory macros expand to, reachable from any crate through `$crate`.
#[doc(hidden)]
pub mod macro_support {
    pub use anyhow;
    pub use async_trait::async_trait;
}

/// The `read_config` method every factory macro writes: reads the block into `$config_ty`
/// with [`read_config`] and the type's `validate`.
#[doc(hidden)]
#[macro_export]
macro_rules! factory_read_config {
    ($config_ty:ty) => {
        fn read_config(
            &self,
            block: $crate::config_read::Value,
            path: &str,
        ) -> ::std::result::Result<
            $crate::factory::BoxedConfig,
            ::std::vec::Vec<$crate::config_read::ConfigError>,
        > {
            $crate::factory::read_config(block, path, <$config_ty>::validate)
        }
    };
}

/// Declares a receiver factory: a unit struct `$name` implementing [`ReceiverFactory`] for the
/// config type `config` (read by [`read_config`] with the type's `validate`), built by the
/// `build` body, in which `$config` is the `&Config` and `$ctx` the [`ReceiverBuildContext`]
/// (the body may `.await`).
///
/// ```ignore
/// siemrelay_core::receiver_factory! {
///     /// Builds `otlp` receivers.
///     pub struct OtlpFactory {
///         type_name: "otlp",
///         config: OtlpConfig,
///         build: |config, ctx| build(ctx.id, config.clone()).await,
///     }
/// }
/// ```
#[macro_export]
macro_rules! receiver_factory {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            type_name: $type_name:literal,
            config: $config_ty:ty,
            build: |$config:ident, $ctx:ident| $build:expr $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name;

        #[$crate::factory::macro_support::async_trait]
        impl $crate::factory::ReceiverFactory for $name {
            fn type_name(&self) -> &'static str {
                $type_name
            }

            $crate::factory_read_config!($config_ty);

            async fn build(
                &self,
                config: &dyn $crate::factory::ComponentConfig,
                ctx: $crate::factory::ReceiverBuildContext<'_>,
            ) -> $crate::factory::macro_support::anyhow::Result<
                ::std::boxed::Box<dyn $crate::component::Receiver>,
            > {
                let $config = $crate::factory::config_as::<$config_ty>(config, $type_name)?;
                let $ctx = ctx;
                $build
            }
        }
    };
}

/// Declares a processor factory: a unit struct `$name` implementing [`ProcessorFactory`] for
/// the config type `config`, built by the `build` body, in which `$config` is the `&Config` and
/// `$ctx` the [`ProcessorContext`]; the body returns what [`ProcessorFactory::build`] returns.
///
/// ```ignore
/// siemrelay_core::processor_factory! {
///     /// Builds `filter` processors.
///     pub struct FilterFactory {
///         type_name: "filter",
///         config: FilterConfig,
///         build: |config, ctx| Ok(Some(Box::new(build(config.clone(), ctx)?))),
///     }
/// }
/// ```
#[macro_export]
macro_rules! processor_factory {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            type_name: $type_name:literal,
            config: $config_ty:ty,
            build: |$config:ident, $ctx:ident| $build:expr $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name;

        impl $crate::factory::ProcessorFactory for $name {
            fn type_name(&self) -> &'static str {
                $type_name
            }

            $crate::factory_read_config!($config_ty);

            fn build(
                &self,
                config: &dyn $crate::factory::ComponentConfig,
                ctx: &$crate::component::ProcessorContext,
            ) -> ::std::result::Result<
                ::std::option::Option<::std::boxed::Box<dyn $crate::component::Processor>>,
                ::std::vec::Vec<$crate::config_types::ConfigIssue>,
            > {
                let $config = $crate::factory::config_as::<$config_ty>(config, $type_name)
                    .map_err(|e| vec![$crate::config_types::ConfigIssue::new("", e.to_string())])?;
                let $ctx = ctx;
                $build
            }
        }
    };
}
