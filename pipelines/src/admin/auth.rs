//! Bearer-token check for the admin API and `/metrics` (constant-time comparison).

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

/// Why a request is not authorized.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Denied {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A token that is not the configured one.
    Wrong,
}

/// Checks `Authorization: Bearer <token>` against `expected` (no token configured: allowed).
pub(super) fn check(headers: &HeaderMap, expected: Option<&str>) -> Result<(), Denied> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(Denied::Missing)?;
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Denied::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn accepts_only_the_configured_token() {
        assert_eq!(check(&headers("Bearer s3cret"), Some("s3cret")), Ok(()));
        assert_eq!(
            check(&headers("Bearer s3creT"), Some("s3cret")),
            Err(Denied::Wrong)
        );
        assert_eq!(
            check(&headers("Bearer s3cret-longer"), Some("s3cret")),
            Err(Denied::Wrong)
        );
        assert_eq!(
            check(&headers("Basic s3cret"), Some("s3cret")),
            Err(Denied::Missing)
        );
        assert_eq!(
            check(&HeaderMap::new(), Some("s3cret")),
            Err(Denied::Missing)
        );
        assert_eq!(check(&HeaderMap::new(), None), Ok(()));
    }
}
