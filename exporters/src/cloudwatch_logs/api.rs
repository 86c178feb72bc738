//! CloudWatch Logs calls (AWS JSON 1.1, signed by [`crate::delivery::auth::SigV4`]), and what
//! their replies mean.

use crate::delivery::http::Reply;
use std::time::Duration;

/// `Content-Type` of AWS JSON 1.1.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// `X-Amz-Target` prefix of the CloudWatch Logs API.
pub const TARGET_PREFIX: &str = "Logs_20140328.";

/// An AWS error reply: `{"__type":"<Code>","message":".."}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    /// The error code without its namespace (`ThrottlingException`).
    pub code: String,
    /// The message, if any.
    pub message: String,
}

/// The reply to one call.
#[derive(Debug)]
pub struct ApiReply {
    /// HTTP status (`None` when the request failed before a reply).
    pub status: Option<u16>,
    /// The reply body, or the transport error.
    pub text: String,
    /// The parsed reply body (success) or `None`.
    pub body: Option<serde_json::Value>,
    /// The AWS error, when the status is not 2xx.
    pub error: Option<AwsError>,
    /// `Retry-After` / `x-amz-retry-after`, when given.
    pub retry_after: Option<Duration>,
}

impl ApiReply {
    /// True for 2xx.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The error code, or "" when there is none.
    pub fn code(&self) -> &str {
        self.error.as_ref().map_or("", |e| e.code.as_str())
    }

    /// `HTTP 400 ThrottlingException: Rate exceeded` or the transport error.
    pub fn describe(&self) -> String {
        match (self.status, &self.error) {
            (Some(status), Some(error)) if error.message.is_empty() => {
                format!("HTTP {status} {}", error.code)
            }
            (Some(status), Some(error)) => {
                format!("HTTP {status} {}: {}", error.code, error.message)
            }
            (Some(status), None) => format!("HTTP {status}: {}", self.text),
            (None, _) => self.text.clone(),
        }
    }
}

impl ApiReply {
    /// Reads a reply: the AWS error (from the body or `x-amzn-ErrorType`) when not 2xx, and
    /// the delay AWS asked for (`Retry-After` in seconds, `x-amz-retry-after` in milliseconds).
    pub fn read(reply: &Reply<'_>) -> ApiReply {
        let header = |name: &str| reply.headers.get(name).and_then(|v| v.to_str().ok());
        let retry_after = match (header("x-amz-retry-after"), header("retry-after")) {
            (Some(ms), _) => ms.trim().parse().ok().map(Duration::from_millis),
            (None, Some(secs)) => secs.trim().parse().ok().map(Duration::from_secs),
            (None, None) => None,
        };
        let parsed: Option<serde_json::Value> = serde_json::from_slice(reply.body).ok();
        let error = if (200..300).contains(&reply.status) {
            None
        } else {
            Some(parse_error(parsed.as_ref(), header("x-amzn-errortype")))
        };
        ApiReply {
            status: Some(reply.status),
            text: reply.text(),
            body: parsed,
            error,
            retry_after,
        }
    }
}

/// The request for one CloudWatch Logs operation (`PutLogEvents`), without its
/// `Content-Type` ([`CONTENT_TYPE`]); SigV4 signs its headers.
pub fn request(client: &reqwest::Client, url: &str, operation: &str) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("x-amz-target", format!("{TARGET_PREFIX}{operation}"))
}

/// The error code from `__type` (`ns#Code` → `Code`), else `x-amzn-ErrorType`, else `code`.
fn parse_error(body: Option<&serde_json::Value>, header: Option<&str>) -> AwsError {
    let field = |name: &str| {
        body.and_then(|b| b.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let raw = field("__type")
        .or_else(|| header.map(|h| h.split(':').next().unwrap_or(h).to_string()))
        .or_else(|| field("code"))
        .unwrap_or_default();
    let code = raw.rsplit('#').next().unwrap_or(&raw).to_string();
    let message = field("message")
        .or_else(|| field("Message"))
        .unwrap_or_default();
    AwsError { code, message }
}

/// What to do after a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Temporary: retry later.
    Retry,
    /// The group or stream is missing.
    Missing,
    /// The credentials expired: refresh and resend.
    Expired,
    /// The credentials or permissions are wrong: permanent, logged loudly.
    Auth,
    /// Resending will not help.
    Permanent,
    /// The data was already accepted (older API versions).
    AlreadyAccepted,
}

/// Judges a failed reply.
pub fn judge(reply: &ApiReply) -> Verdict {
    let Some(status) = reply.status else {
        return Verdict::Retry;
    };
    match reply.code() {
        "ResourceNotFoundException" => Verdict::Missing,
        "ExpiredTokenException" | "ExpiredToken" | "TokenRefreshRequired" => Verdict::Expired,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationTokenException"
        | "MissingAuthenticationToken"
        | "NotAuthorized" => Verdict::Auth,
        "ThrottlingException"
        | "Throttling"
        | "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "LimitExceededException"
        | "RequestExpired"
        | "RequestTimeout"
        | "RequestTimeoutException"
        | "InternalFailure" => Verdict::Retry,
        "DataAlreadyAcceptedException" => Verdict::AlreadyAccepted,
        _ if status == 429 || status == 408 || status >= 500 => Verdict::Retry,
        _ => Verdict::Permanent,
    }
}

/// What to check for a failed call, by error code.
pub fn hint_for(code: &str, url: &str) -> Option<String> {
    Some(match code {
        "UnrecognizedClientException" | "InvalidClientTokenId" | "InvalidSignatureException"
        | "IncompleteSignature" | "MissingAuthenticationTokenException" => format!(
            "AWS did not accept the credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, the profile (AWS_PROFILE) or the role, and that the region matches {url}"
        ),
        "AccessDeniedException" => "the AWS identity lacks permission: allow logs:PutLogEvents and logs:CreateLogStream on the log group (logs:CreateLogGroup only if siemrelay must create the group)".to_string(),
        "ExpiredTokenException" => "the AWS session token expired and could not be refreshed: renew the credentials".to_string(),
        "ResourceNotFoundException" => "the log group or stream does not exist: create it or set create_missing: true".to_string(),
        "InvalidParameterException" => "CloudWatch Logs refused the request's parameters: check log_group and log_stream names".to_string(),
        "ThrottlingException" => "CloudWatch Logs is throttling: lower the rate or ask AWS for a higher quota".to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> ApiReply {
        let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
        ApiReply {
            status: Some(status),
            text: body.into(),
            error: Some(parse_error(parsed.as_ref(), None)),
            body: parsed,
            retry_after: None,
        }
    }

    #[test]
    fn error_codes_are_judged() {
        let cases = [
            (
                400,
                r#"{"__type":"com.amazonaws.logs#ThrottlingException","message":"Rate exceeded"}"#,
                Verdict::Retry,
            ),
            (
                500,
                r#"{"__type":"ServiceUnavailableException"}"#,
                Verdict::Retry,
            ),
            (502, "<html>bad gateway</html>", Verdict::Retry),
            (
                400,
                r#"{"__type":"ResourceNotFoundException","message":"The specified log group does not exist."}"#,
                Verdict::Missing,
            ),
            (
                400,
                r#"{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}"#,
                Verdict::Expired,
            ),
            (400, r#"{"__type":"AccessDeniedException"}"#, Verdict::Auth),
            (
                400,
                r#"{"__type":"UnrecognizedClientException"}"#,
                Verdict::Auth,
            ),
            (
                400,
                r#"{"__type":"InvalidParameterException","message":"Log events in a single PutLogEvents request must be in chronological order."}"#,
                Verdict::Permanent,
            ),
        ];
        for (status, body, verdict) in cases {
            assert_eq!(judge(&reply(status, body)), verdict, "{body}");
        }
        let throttled = reply(400, cases[0].1);
        assert_eq!(throttled.code(), "ThrottlingException");
        assert_eq!(
            throttled.describe(),
            "HTTP 400 ThrottlingException: Rate exceeded"
        );
        let header_only = parse_error(
            None,
            Some("AccessDeniedException:http://internal.amazon.com/"),
        );
        assert_eq!(header_only.code, "AccessDeniedException");
        assert!(
            hint_for("AccessDeniedException", "u")
                .unwrap()
                .contains("logs:PutLogEvents")
        );
    }
}
