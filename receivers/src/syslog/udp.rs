//! Syslog over UDP (RFC 5426): one message per datagram, and no acknowledgement of any kind, so
//! UDP cannot slow a sender down. One task reads datagrams as fast as they come and passes them
//! on in batches through a short bounded channel; another hands the batches to the pipeline,
//! waiting while its queues are full. When the channel is full too, the newest batch is
//! dropped, and every datagram lost is counted in `siemrelay_receiver_events_dropped_total`:
//! `backpressure` (the pipeline was full), `socket_buffer` (the kernel's receive buffer
//! overflowed before siemrelay read it; read from the socket's own drop counter, Linux
//! `SO_MEMINFO`) and `address` (a sender outside `allowed_cidrs`). Nothing is lost silently.

use super::intake::{Intake, NotQueued, Pending, Received};
use super::telemetry::Reason;
use bytes::Bytes;
use siemrelay_core::cidr::CidrAllowList;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Largest datagram read (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;
/// Batches waiting between the reading task and the pipeline.
const CHANNEL_BATCHES: usize = 64;
/// How often the kernel's drop counter is read.
const DROP_POLL: Duration = Duration::from_millis(500);

/// A bound UDP socket of the syslog receiver.
pub struct UdpListen {
    /// The socket.
    pub socket: UdpSocket,
    /// Senders served; empty = all.
    pub allowed: CidrAllowList,
    /// `receiver/udp`, for logs.
    pub name: String,
}

/// Binds `addr` with a receive buffer of `receive_buffer` bytes asked of the kernel.
pub fn bind(addr: SocketAddr, receive_buffer: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(receive_buffer) {
        tracing::warn!(%addr, error = %e, "cannot set the UDP receive buffer size");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Datagrams the kernel dropped on this socket since it was opened (`SK_MEMINFO_DROPS`), or
/// `None` where the system does not say.
#[cfg(target_os = "linux")]
fn kernel_drops(socket: &UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is a writable buffer of `len` bytes that outlives the call, and the file
    // descriptor belongs to `socket`, which is open for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let index = libc::SK_MEMINFO_DROPS as usize;
    (rc == 0 && (len as usize) > index * 4).then(|| u64::from(info[index]))
}

#[cfg(not(target_os = "linux"))]
fn kernel_drops(_socket: &UdpSocket) -> Option<u64> {
    None
}

/// Serves the socket until `shutdown`, then hands over what was read.
pub async fn serve(listen: UdpListen, intake: Arc<Intake>, shutdown: CancellationToken) {
    let (sender, receiver) = mpsc::channel::<Pending>(CHANNEL_BATCHES);
    let handing = tokio::spawn(hand_over_all(receiver, intake.clone(), shutdown.clone()));
    read_all(&listen, &intake, &sender, &shutdown).await;
    drop(sender);
    let _ = handing.await;
}

async fn read_all(
    listen: &UdpListen,
    intake: &Intake,
    sender: &mpsc::Sender<Pending>,
    shutdown: &CancellationToken,
) {
    let telemetry = &intake.telemetry;
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    let mut counted_drops = kernel_drops(&listen.socket).unwrap_or(0);
    let mut poll = tokio::time::interval(DROP_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut count_kernel_drops = |socket: &UdpSocket| {
        if let Some(drops) = kernel_drops(socket)
            && drops > counted_drops
        {
            let new = drops - counted_drops;
            counted_drops = drops;
            telemetry.dropped(Reason::SocketBuffer, new as usize);
            tracing::warn!(listener = %listen.name, datagrams = new, "the kernel dropped syslog datagrams: the socket's receive buffer was full (raise protocols.udp.receive_buffer_size and net.core.rmem_max)");
        }
    };
    // Datagrams read but not yet passed on: they wait here while the channel is full, and are
    // dropped (and counted) only when a whole batch waits and there is still no room.
    let mut pending = Pending::default();
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = sender.reserve(), if !pending.is_empty() => {
                match permit {
                    Ok(permit) => permit.send(std::mem::take(&mut pending)),
                    Err(_) => break,
                }
                continue;
            }
            _ = poll.tick() => {
                count_kernel_drops(&listen.socket);
                continue;
            }
            received = listen.socket.recv_from(&mut buffer) => received,
        };
        let mut next = Some(first);
        // Take every datagram already waiting, up to one batch.
        while let Some(received) = next.take() {
            match received {
                Ok((size, peer)) => {
                    if listen.allowed.allows(peer.ip()) {
                        pending.push(Received {
                            bytes: Bytes::copy_from_slice(&buffer[..size]),
                            peer: peer.ip(),
                        });
                    } else {
                        telemetry.dropped(Reason::Address, 1);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors and the like: nothing was received.
                    tracing::debug!(listener = %listen.name, error = %e, "UDP receive error");
                    break;
                }
            }
            if !pending.is_full() {
                next = Some(listen.socket.try_recv_from(&mut buffer));
            }
        }
        if pending.is_empty() {
            continue;
        }
        match sender.try_send(std::mem::take(&mut pending)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(batch)) if !batch.is_full() => pending = batch,
            Err(mpsc::error::TrySendError::Full(batch)) => {
                telemetry.dropped(Reason::Backpressure, batch.len());
            }
            Err(mpsc::error::TrySendError::Closed(batch)) => {
                telemetry.dropped(Reason::ShuttingDown, batch.len());
                break;
            }
        }
    }
    telemetry.dropped(Reason::ShuttingDown, pending.len());
    count_kernel_drops(&listen.socket);
}

async fn hand_over_all(
    mut receiver: mpsc::Receiver<Pending>,
    intake: Arc<Intake>,
    shutdown: CancellationToken,
) {
    while let Some(mut pending) = receiver.recv().await {
        if let Err(NotQueued(events)) = intake.hand_over(&mut pending, &shutdown).await {
            intake.telemetry.dropped(Reason::ShuttingDown, events);
        }
    }
}
