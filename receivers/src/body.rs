//! Request bodies of the network receivers: read under a size limit, a minimum rate and the
//! admission budget, and gzip- or deflate-decoded under the same limits. Shared by the webhook,
//! OTLP/HTTP, Datadog and Elasticsearch receivers.

use axum::body::{Body, Bytes, HttpBody};
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use hyper::body::{Frame, SizeHint};
use siemrelay_core::admission::{OverBudget, Reservation};
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Why a body could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than the listener's limit (as received, or after decoding).
    #[error("{} is larger than {key} ({limit} bytes)", if *.decoded { "the gzip-decoded body" } else { "the body" })]
    TooLarge {
        /// The config key of the limit (`max_body_size`, `max_request_size`).
        key: &'static str,
        /// The limit in bytes.
        limit: usize,
        /// True when the decoded body was too large.
        decoded: bool,
    },
    /// The body arrived slower than the listener's `min_body_rate`.
    #[error(
        "the body arrived slower than min_body_rate ({rate} bytes/s); the connection is closed"
    )]
    TooSlow {
        /// The configured rate in bytes per second.
        rate: u64,
    },
    /// The admission budget has no room for it.
    #[error("{0}")]
    Memory(OverBudget),
    /// Not valid gzip.
    #[error("the body is not valid gzip: {0}")]
    NotGzip(std::io::Error),
    /// The connection failed while reading.
    #[error("could not read the request body: {0}")]
    Broken(String),
}

/// The size limit of one listener's bodies and the config key that sets it.
#[derive(Clone, Copy, Debug)]
pub struct SizeLimit {
    /// The config key (`max_body_size`).
    pub key: &'static str,
    /// The limit in bytes.
    pub bytes: usize,
}

/// Reads `body` whole, stopping as soon as it grows past `limit` (413), arrives too slowly
/// (see [`MinRate`]) or needs more memory than `reservation` can grow to.
pub async fn read(
    mut body: Body,
    limit: SizeLimit,
    reservation: &Reservation,
) -> Result<Vec<u8>, BodyError> {
    let hint = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    let mut raw = Vec::with_capacity(hint.min(limit.bytes).min(reservation.bytes()));
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| match find_too_slow(&e) {
            Some(rate) => BodyError::TooSlow { rate },
            None => BodyError::Broken(e.to_string()),
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if raw.len() + data.len() > limit.bytes {
            return Err(BodyError::TooLarge {
                key: limit.key,
                limit: limit.bytes,
                decoded: false,
            });
        }
        reservation
            .try_grow_to(raw.len() + data.len())
            .map_err(BodyError::Memory)?;
        raw.extend_from_slice(&data);
    }
    Ok(raw)
}

/// Decodes a gzip body of at most `limit` decoded bytes, growing `reservation` before the
/// output grows (on top of `held`, the bytes it already holds for the compressed body). The
/// size the gzip trailer announces (capped at the limit) sizes the buffer once, so a body that
/// tells the truth is never copied while it grows.
pub fn gunzip(
    compressed: &[u8],
    limit: SizeLimit,
    reservation: &Reservation,
    held: usize,
) -> Result<Vec<u8>, BodyError> {
    let announced = compressed
        .len()
        .checked_sub(4)
        .and_then(|at| compressed.get(at..))
        .and_then(|tail| <[u8; 4]>::try_from(tail).ok())
        .map_or(0, |tail| u32::from_le_bytes(tail) as usize);
    decode_limited(
        MultiGzDecoder::new(compressed),
        announced,
        limit,
        reservation,
        held,
    )
}

/// Decodes a `Content-Encoding: deflate` body under the same limits as [`gunzip`]. HTTP's
/// `deflate` is the zlib format (RFC 1950), but some senders send raw deflate (RFC 1951): a body
/// that does not start with a zlib header is read as raw deflate.
pub fn inflate(
    compressed: &[u8],
    limit: SizeLimit,
    reservation: &Reservation,
    held: usize,
) -> Result<Vec<u8>, BodyError> {
    let zlib = match compressed {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    };
    if zlib {
        decode_limited(ZlibDecoder::new(compressed), 0, limit, reservation, held)
    } else {
        decode_limited(DeflateDecoder::new(compressed), 0, limit, reservation, held)
    }
}

/// Reads `decoder` to its end under `limit` and `reservation` (see [`gunzip`]); `announced` is
/// the decoded size the format announces (0 when unknown).
fn decode_limited(
    decoder: impl Read,
    announced: usize,
    limit: SizeLimit,
    reservation: &Reservation,
    held: usize,
) -> Result<Vec<u8>, BodyError> {
    const CHUNK: usize = 64 * 1024;
    let mut decoder = decoder.take(limit.bytes as u64 + 1);
    let mut decoded: Vec<u8> = Vec::new();
    let mut wanted = announced.min(limit.bytes) + 1;
    loop {
        if decoded.capacity() - decoded.len() < CHUNK.min(wanted) {
            let capacity = (decoded.len() + wanted)
                .max(decoded.capacity() * 2)
                .min(limit.bytes + 1);
            reservation
                .try_grow_to(held + capacity)
                .map_err(BodyError::Memory)?;
            decoded.reserve_exact(capacity - decoded.len());
            wanted = CHUNK;
        }
        let start = decoded.len();
        let room = (decoded.capacity() - start).min(CHUNK);
        decoded.resize(start + room, 0);
        let read = match decoder.read(&mut decoded[start..]) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(BodyError::NotGzip(e)),
        };
        decoded.truncate(start + read);
        if decoded.len() > limit.bytes {
            return Err(BodyError::TooLarge {
                key: limit.key,
                limit: limit.bytes,
                decoded: true,
            });
        }
        if read == 0 {
            return Ok(decoded);
        }
    }
}

fn find_too_slow(error: &(dyn std::error::Error + 'static)) -> Option<u64> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(slow) = error.downcast_ref::<TooSlow>() {
            return Some(slow.rate);
        }
        current = error.source();
    }
    None
}

/// The error a [`MinRate`] body fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived slower than {rate} bytes/s")]
pub struct TooSlow {
    /// The minimum rate in bytes per second.
    pub rate: u64,
}

/// A request body that fails when it arrives slower than `rate` bytes per second on average,
/// counted after a grace period: byte `n` must have arrived by `start + grace + n / rate`.
/// What closes a slow-loris sender that trickles its body.
pub struct MinRate<B> {
    inner: B,
    rate: u64,
    started: Instant,
    grace: Duration,
    received: u64,
    timer: Pin<Box<Sleep>>,
}

impl<B> MinRate<B> {
    /// Wraps `inner`; `rate` 0 disables the check.
    pub fn new(inner: B, rate: u64, grace: Duration) -> MinRate<B> {
        let started = Instant::now();
        MinRate {
            inner,
            rate,
            started,
            grace,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(started + grace)),
        }
    }

    fn deadline(&self) -> Instant {
        let allowed = Duration::from_secs_f64(self.received as f64 / self.rate.max(1) as f64);
        self.started + self.grace + allowed
    }
}

impl<B> HttpBody for MinRate<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.rate == 0 => Poll::Pending,
            Poll::Pending => {
                let deadline = this.deadline();
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(Box::new(TooSlow { rate: this.rate }))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use siemrelay_core::admission::MemoryBudget;
    use std::io::Write;

    const LIMIT: SizeLimit = SizeLimit {
        key: "max_body_size",
        bytes: 1 << 20,
    };

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gunzip_holds_the_size_limit_and_the_budget() {
        let budget = MemoryBudget::unlimited();
        let reservation = budget.empty_reservation();
        let bomb = gzip(&vec![b' '; 2 << 20]);
        let error = gunzip(&bomb, LIMIT, &reservation, 0).unwrap_err();
        assert!(
            matches!(error, BodyError::TooLarge { decoded: true, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("max_body_size"));
        let fine = gunzip(&gzip(b"{}"), LIMIT, &reservation, 0).unwrap();
        assert_eq!(fine, b"{}");
        assert!(matches!(
            gunzip(b"not gzip", LIMIT, &reservation, 0),
            Err(BodyError::NotGzip(_))
        ));

        let small = MemoryBudget::new(256 * 1024);
        let reservation = small.empty_reservation();
        let error = gunzip(&bomb, LIMIT, &reservation, 0).unwrap_err();
        assert!(matches!(error, BodyError::Memory(_)), "{error}");
        assert!(small.used() <= 256 * 1024);
    }

    /// A body whose chunks come from a channel, as a trickling sender's would.
    struct Trickle(tokio::sync::mpsc::Receiver<Bytes>);

    impl HttpBody for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_fails_after_the_grace_period() {
        let (sender, chunks) = tokio::sync::mpsc::channel(1);
        let body = Body::new(MinRate::new(Trickle(chunks), 100, Duration::from_secs(5)));
        let budget = MemoryBudget::unlimited();
        let reader = tokio::spawn(async move {
            let reservation = budget.empty_reservation();
            read(body, LIMIT, &reservation).await
        });
        for _ in 0..20 {
            if sender.send(Bytes::from_static(b"x")).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let error = reader.await.unwrap().unwrap_err();
        assert!(matches!(error, BodyError::TooSlow { rate: 100 }), "{error}");
    }
}
