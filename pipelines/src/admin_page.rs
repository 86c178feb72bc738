//! The status page served by the admin listener at `/`: plain HTML, CSS and JavaScript compiled
//! into the binary (`pipelines/assets/`), whose only data source is the admin REST API under
//! `/api/v1/`. Every response carries a strict Content-Security-Policy, so the page can load
//! nothing but its own assets and talk to nothing but the admin address.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The Content-Security-Policy of the page and its assets: only same-origin scripts, styles,
/// images and API calls; no inline code, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// One file of the page, compiled in.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// Every file the page is made of, by the path it is served at.
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../assets/index.html"),
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/app.js"),
    },
    Asset {
        path: "/assets/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/style.css"),
    },
    Asset {
        path: "/assets/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../assets/favicon.svg"),
    },
];

/// Routes serving the status page (`/`, `/index.html`) and its assets (`/assets/…`). Generic over
/// the router state so the admin listener can merge it into its own router at any stage:
/// `admin_router.merge(crate::admin_page::router())`.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut router = Router::new();
    for asset in ASSETS {
        router = router.route(asset.path, get(move || async move { serve(asset) }));
    }
    router.route("/index.html", get(|| async { serve(&ASSETS[0]) }))
}

fn serve(asset: &'static Asset) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            // Revalidate each load so an upgraded binary's page is picked up at once.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves the page router on a real socket and returns (status line + headers, body) of
    /// `GET path`.
    async fn get_over_socket(path: &str) -> (String, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router::<()>()).await;
        });
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send request");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("read reply");
        server.abort();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        (head.to_ascii_lowercase(), body.to_string())
    }

    #[tokio::test]
    async fn page_and_assets_have_their_content_type_and_the_strict_csp() {
        for (path, content_type, marker) in [
            ("/", "text/html", "<title>siemrelay status</title>"),
            (
                "/index.html",
                "text/html",
                "<title>siemrelay status</title>",
            ),
            ("/assets/app.js", "text/javascript", "/api/v1/exporters"),
            ("/assets/style.css", "text/css", ".badge"),
            ("/assets/favicon.svg", "image/svg+xml", "<svg"),
        ] {
            let (head, body) = get_over_socket(path).await;
            assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
            assert!(
                head.contains(&format!("content-type: {content_type}")),
                "{path}: {head}"
            );
            assert!(
                head.contains("content-security-policy: default-src 'self';"),
                "{path}: {head}"
            );
            assert!(
                head.contains("x-content-type-options: nosniff"),
                "{path}: {head}"
            );
            assert!(body.contains(marker), "{path} does not contain {marker:?}");
        }
    }

    #[tokio::test]
    async fn unknown_paths_are_not_found() {
        let (head, _) = get_over_socket("/assets/missing.js").await;
        assert!(head.starts_with("http/1.1 404"), "{head}");
    }

    #[test]
    fn every_file_the_page_references_is_served() {
        let html = ASSETS[0].body;
        let mut referenced = 0;
        for attribute in ["src=\"", "href=\""] {
            for piece in html.split(attribute).skip(1) {
                let target = piece.split('"').next().unwrap_or_default();
                if target.starts_with('#') {
                    continue;
                }
                referenced += 1;
                assert!(
                    ASSETS.iter().any(|asset| asset.path == target),
                    "index.html references {target:?}, which is not served"
                );
            }
        }
        assert!(
            referenced >= 3,
            "index.html references only {referenced} files"
        );
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_has_no_inline_code() {
        for asset in ASSETS {
            // The SVG namespace names the element type (the favicon's `xmlns`, app.js's
            // `createElementNS` for the charts); nothing is fetched from it.
            let text = asset.body.replace("http://www.w3.org/2000/svg", "");
            for scheme in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(scheme), "{} contains {scheme:?}", asset.path);
            }
        }
        let html = ASSETS[0].body;
        assert!(!html.contains("<script>"), "inline script in index.html");
        assert!(!html.contains("<style"), "inline style in index.html");
        assert!(!html.contains(" style=\""), "style attribute in index.html");
        for piece in html.split(" on").skip(1) {
            let name_end = piece
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(piece.len());
            assert!(
                !piece[name_end..].starts_with('='),
                "inline event handler in index.html: on{}",
                &piece[..name_end]
            );
        }
    }
}
