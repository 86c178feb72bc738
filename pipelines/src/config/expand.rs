//! `${env:NAME}`, `${env:NAME:-default}` and `${file:/path}` in config values.
//!
//! References are expanded inside string values only, after the YAML is parsed, so a secret can
//! hold any characters. `$${` writes a literal `${`. Expanded values stay strings; a numeric or
//! boolean setting reads a string that parses as one (see [`super::lenient`]). Every value that
//! came from the environment or a file is remembered so error messages can be scrubbed of it.
//!
//! Config that arrived through the admin API is expanded under [`Policy::Api`]: only
//! `${env:NAME}` with `NAME` listed in `service.admin.allowed_env`; `${file:…}` never.

use serde_yaml::Value;

/// Which references may be expanded.
#[derive(Clone, Copy, Debug)]
pub enum Policy<'a> {
    /// The operator's config file: every reference.
    File,
    /// Config sent through the admin API: `${env:NAME}` for these names only, no `${file:}`.
    Api {
        /// `service.admin.allowed_env`.
        allowed_env: &'a [String],
    },
}

/// A reference that could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// Dotted key path of the value.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// Expands every reference in `value`. Returns the values substituted (for scrubbing errors).
pub fn expand_tree(
    value: &mut Value,
    path: &str,
    secrets: &mut Vec<String>,
    errors: &mut Vec<ExpandError>,
) {
    expand_tree_with(value, path, secrets, errors, Policy::File);
}

/// Expands the references `policy` allows in `value`; any other reference is an error.
pub fn expand_tree_with(
    value: &mut Value,
    path: &str,
    secrets: &mut Vec<String>,
    errors: &mut Vec<ExpandError>,
    policy: Policy<'_>,
) {
    match value {
        Value::String(text) => {
            if text.contains('$') {
                match expand_str(text, secrets, policy, is_secret_path(path)) {
                    Ok(expanded) => *text = expanded,
                    Err(message) => errors.push(ExpandError {
                        path: path.to_string(),
                        message,
                    }),
                }
            }
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                expand_tree_with(item, &format!("{path}[{index}]"), secrets, errors, policy);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key_text(key);
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                expand_tree_with(item, &child, secrets, errors, policy);
            }
        }
        Value::Tagged(tagged) => expand_tree_with(&mut tagged.value, path, secrets, errors, policy),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

pub use siemrelay_core::config_read::key_text;

/// Keys whose values are secrets (the last key of a path, list index removed).
const SECRET_KEYS: &[&str] = &[
    "token",
    "bearer_token",
    "api_key",
    "client_secret",
    "password",
    "secret",
    "secrets",
    "passphrase",
];

/// Whether the value at `path` is a secret: a secret key, or a header value (HTTP headers
/// carry credentials, so they are treated as secrets).
fn is_secret_path(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    let last = last.split('[').next().unwrap_or(last).to_ascii_lowercase();
    SECRET_KEYS.contains(&last.as_str()) || path.contains(".headers.")
}

/// Expands the references in one string. Values read from the environment or a file are added
/// to `secrets` (a default written in the file is not a secret); `secret` says the value is a
/// secret, so an unset variable gets no "write a default" hint.
fn expand_str(
    text: &str,
    secrets: &mut Vec<String>,
    policy: Policy<'_>,
    secret: bool,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(stripped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = stripped;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let end = body_start
            .find('}')
            .ok_or_else(|| format!("unterminated reference in {text:?}: missing `}}`"))?;
        let reference = &body_start[..end];
        allowed(reference, policy)?;
        let (value, from_outside) = resolve(reference, secret)?;
        if from_outside && value.len() >= 4 {
            secrets.push(value.clone());
        }
        out.push_str(&value);
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Refuses a reference that `policy` does not allow, saying how to allow it.
fn allowed(reference: &str, policy: Policy<'_>) -> Result<(), String> {
    let Policy::Api { allowed_env } = policy else {
        return Ok(());
    };
    if let Some(spec) = reference.strip_prefix("env:") {
        let name = spec.split_once(":-").map_or(spec, |(name, _)| name);
        if allowed_env.iter().any(|allowed| allowed == name) {
            return Ok(());
        }
        return Err(format!(
            "${{env:{name}}} is not expanded in config sent through the admin API: list {name} in \
             service.admin.allowed_env to allow it"
        ));
    }
    if reference.starts_with("file:") {
        return Err(
            "${file:…} is never expanded in config sent through the admin API: put the reference \
             in the config file instead"
                .to_string(),
        );
    }
    Err(format!(
        "unknown reference ${{{reference}}} (config sent through the admin API may use \
         ${{env:NAME}} for names in service.admin.allowed_env)"
    ))
}

/// The value of a reference, and whether it came from the environment or a file (rather than
/// from a default written in the config).
fn resolve(reference: &str, secret: bool) -> Result<(String, bool), String> {
    if let Some(spec) = reference.strip_prefix("env:") {
        let (name, default) = match spec.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (spec, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "invalid environment variable name {name:?} in ${{env:{spec}}}"
            ));
        }
        match std::env::var(name) {
            Ok(value) if !(value.is_empty() && default.is_some()) => Ok((value, true)),
            Ok(_) | Err(std::env::VarError::NotPresent) => match default {
                Some(default) => Ok((default.to_string(), false)),
                None if secret => Err(format!(
                    "environment variable {name} is not set: export it before starting siemrelay \
                     (a secret has no default)"
                )),
                None => Err(format!(
                    "environment variable {name} is not set (write ${{env:{name}:-default}} for a default)"
                )),
            },
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("environment variable {name} is not valid UTF-8"))
            }
        }
    } else if let Some(path) = reference.strip_prefix("file:") {
        let path = path.trim();
        let content = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read ${{file:{path}}}: {e}"))?;
        // Secret files usually end with a newline that is not part of the secret.
        Ok((
            content
                .strip_suffix('\n')
                .map(|s| s.strip_suffix('\r').unwrap_or(s))
                .unwrap_or(&content)
                .to_string(),
            true,
        ))
    } else {
        Err(format!(
            "unknown reference ${{{reference}}}: use ${{env:NAME}}, ${{env:NAME:-default}} or ${{file:/path}}"
        ))
    }
}

/// `message` with `secrets` and every secret the process knows masked, in every form
/// (see [`siemrelay_core::scrub`]).
pub fn scrub(message: &str, secrets: &[String]) -> String {
    let local = siemrelay_core::scrub::Scrubber::new(secrets);
    let message = local.scrub(message);
    siemrelay_core::scrub::scrub(&message).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(text: &str) -> Result<String, String> {
        expand_str(text, &mut Vec::new(), Policy::File, false)
    }

    #[test]
    fn api_config_expands_only_allowed_env_names_and_never_files() {
        unsafe {
            std::env::set_var("SIEMRELAY_TEST_EXPAND_API_OK", "hec-token");
            std::env::set_var("SIEMRELAY_TEST_EXPAND_API_NO", "sign-key");
        }
        let allowed = vec!["SIEMRELAY_TEST_EXPAND_API_OK".to_string()];
        let api = Policy::Api {
            allowed_env: &allowed,
        };
        let mut secrets = Vec::new();
        assert_eq!(
            expand_str(
                "Splunk ${env:SIEMRELAY_TEST_EXPAND_API_OK}",
                &mut secrets,
                api,
                true
            )
            .unwrap(),
            "Splunk hec-token"
        );
        let refused = expand_str(
            "${env:SIEMRELAY_TEST_EXPAND_API_NO}",
            &mut secrets,
            api,
            false,
        )
        .unwrap_err();
        assert!(refused.contains("service.admin.allowed_env"), "{refused}");
        assert!(!refused.contains("sign-key"), "{refused}");
        let refused = expand_str("${file:/etc/hostname}", &mut secrets, api, false).unwrap_err();
        assert!(refused.contains("never expanded"), "{refused}");
        assert_eq!(
            expand_str("$${env:X}", &mut secrets, api, false).unwrap(),
            "${env:X}"
        );
    }

    #[test]
    fn env_default_file_and_escapes() {
        // SAFETY: tests in this module are the only users of these variable names.
        unsafe {
            std::env::set_var("SIEMRELAY_TEST_EXPAND_A", "alpha");
            std::env::remove_var("SIEMRELAY_TEST_EXPAND_UNSET");
        }
        assert_eq!(
            expand("x-${env:SIEMRELAY_TEST_EXPAND_A}-y").unwrap(),
            "x-alpha-y"
        );
        assert_eq!(
            expand("${env:SIEMRELAY_TEST_EXPAND_UNSET:-fallback}").unwrap(),
            "fallback"
        );
        let err = expand("${env:SIEMRELAY_TEST_EXPAND_UNSET}").unwrap_err();
        assert!(
            err.contains("SIEMRELAY_TEST_EXPAND_UNSET is not set"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret-token\n").unwrap();
        assert_eq!(
            expand(&format!("${{file:{}}}", file.display())).unwrap(),
            "s3cret-token"
        );
        assert!(
            expand("${file:/nonexistent/x}")
                .unwrap_err()
                .contains("cannot read")
        );
        assert_eq!(
            expand("cost $5 and $${env:X}").unwrap(),
            "cost $5 and ${env:X}"
        );
        assert!(
            expand("${vault:x}")
                .unwrap_err()
                .contains("unknown reference")
        );
        assert!(expand("${env:A").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn defaults_are_not_secrets_and_a_secret_gets_no_default_hint() {
        unsafe {
            std::env::remove_var("SIEMRELAY_TEST_EXPAND_MISSING");
        }
        let mut value: Value = serde_yaml::from_str(
            "exporters:\n  plugin/x:\n    library: ${env:SIEMRELAY_TEST_EXPAND_MISSING:-./lib/libx.so}\n    \
             token: ${env:SIEMRELAY_TEST_EXPAND_MISSING}\n    index: ${env:SIEMRELAY_TEST_EXPAND_MISSING}\n    \
             headers: { Authorization: \"Bearer ${env:SIEMRELAY_TEST_EXPAND_MISSING}\" }\n",
        )
        .unwrap();
        let mut secrets = Vec::new();
        let mut errors = Vec::new();
        expand_tree(&mut value, "", &mut secrets, &mut errors);
        assert!(secrets.is_empty(), "a default is not a secret: {secrets:?}");
        assert_eq!(errors.len(), 3, "{errors:?}");
        for error in &errors {
            let secret = !error.path.ends_with(".index");
            assert_eq!(
                error.message.contains(":-default"),
                !secret,
                "{}: {}",
                error.path,
                error.message
            );
        }
    }

    #[test]
    fn tree_expansion_reports_paths_and_collects_secrets() {
        unsafe {
            std::env::set_var("SIEMRELAY_TEST_EXPAND_TOKEN", "tok-123456");
        }
        let mut value: Value = serde_yaml::from_str(
            "exporters:\n  splunk_hec/prod:\n    token: ${env:SIEMRELAY_TEST_EXPAND_TOKEN}\n    index: ${env:SIEMRELAY_TEST_EXPAND_NOPE}\n",
        )
        .unwrap();
        let mut secrets = Vec::new();
        let mut errors = Vec::new();
        expand_tree(&mut value, "", &mut secrets, &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "exporters.splunk_hec/prod.index");
        assert_eq!(secrets, vec!["tok-123456".to_string()]);
        assert_eq!(
            scrub("bad value tok-123456 here", &secrets),
            "bad value *** here"
        );
    }
}
