//! The exporter contract: one harness every exporter passes against its peer (a fake that speaks
//! the vendor's protocol, or a real server), through the real binary.
//!
//! An exporter's row (see `tests/tests/exporter_contract.rs`) says, case by case, whether it
//! runs ([`Plan::Run`]), why the protocol cannot express it ([`Plan::NotApplicable`]), or that
//! it fails on today's code for a reported reason ([`Plan::KnownFailure`]: the case still runs and
//! must still fail, so a fix is noticed). The cases run in order against one siemrelay process:
//!
//! 1. [`Case::Deliver`]: 10,000 events (100 requests of 100) arrive once each.
//! 2. [`Case::PartialFailure`]: a request in which some events fail: only those are resent (or
//!    dead-lettered when the failure is permanent); the others arrive once.
//! 3. [`Case::Throttled`]: a 429 with `Retry-After: 2`: the next request waits at least 2 s.
//! 4. [`Case::Permanent`]: a permanent refusal: the events are in the dead-letter file with the
//!    peer's reason, and not at the peer.
//! 5. [`Case::TooLarge`]: the peer answers 413 above a body size: the batch is split and every
//!    event arrives once. (After the cases that script one request's reply: a sender remembers
//!    a 413 and splits later batches into several requests.)
//! 6. [`Case::Status`]: the peer goes away and comes back: the admin API shows the exporter
//!    `active` → `degraded` → `failed` → `active`, and nothing is lost.
//! 7. [`Case::ShutdownFlush`]: events still held by the batcher (fewer than a batch, a long
//!    batch timeout) are delivered when SIGTERM arrives, and the process exits 0.
//!
//! Finally every event that was meant to arrive has arrived exactly once.

use crate::fake::http_sink::{Exchange, FakeServer};
use crate::{Siemrelay, free_port, read_ndjson_files};
use anyhow::{Context, Result, anyhow, bail, ensure};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Events per request and per batch (`send_batch_size` and `send_batch_max_size`).
pub const BATCH: usize = 100;

/// One case of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// 10,000 events delivered once each.
    Deliver,
    /// Only the failed events of a request are resent.
    PartialFailure,
    /// 413 splits the batch.
    TooLarge,
    /// 429 and `Retry-After` are honoured.
    Throttled,
    /// A permanent failure goes to the dead-letter file with its reason.
    Permanent,
    /// Status active → degraded → failed → active.
    Status,
    /// SIGTERM flushes what is held.
    ShutdownFlush,
}

/// What a row says about one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The case runs and must pass.
    Run,
    /// The protocol (or the absence of a peer) cannot express the case: why.
    NotApplicable(&'static str),
    /// The case fails on today's code: the finding (exporter, case, cause). It still runs and
    /// must still fail; when it passes, the entry has to go.
    KnownFailure(&'static str),
}

/// An exporter's row: the plan for each case but [`Case::Deliver`], which every exporter runs.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// The exporter type.
    pub exporter: &'static str,
    /// [`Case::PartialFailure`].
    pub partial_failure: Plan,
    /// [`Case::TooLarge`].
    pub too_large: Plan,
    /// [`Case::Throttled`].
    pub throttled: Plan,
    /// [`Case::Permanent`].
    pub permanent: Plan,
    /// [`Case::Status`].
    pub status: Plan,
    /// [`Case::ShutdownFlush`].
    pub shutdown_flush: Plan,
}

impl Row {
    /// The plan for `case`.
    pub fn plan(&self, case: Case) -> Plan {
        match case {
            Case::Deliver => Plan::Run,
            Case::PartialFailure => self.partial_failure,
            Case::TooLarge => self.too_large,
            Case::Throttled => self.throttled,
            Case::Permanent => self.permanent,
            Case::Status => self.status,
            Case::ShutdownFlush => self.shutdown_flush,
        }
    }
}

/// How a peer fails the events a partial-failure case marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartialFailure {
    /// They fail once, retryably: they must arrive once, later.
    Retryable,
    /// They fail permanently: they must be dead-lettered, the rest arrive once.
    Permanent,
}

/// Which events a permanent refusal hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Exactly the marked events (per-event results).
    Marked,
    /// Every event of the next request (one status per request).
    NextRequest,
}

/// What a line is for, so a peer can shape it (an old timestamp, an oversized message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// An ordinary event.
    Plain,
    /// An event the partial-failure case fails.
    PartialFailure,
    /// An event the permanent case refuses.
    Refused,
}

/// An exporter's peer, as the harness drives it. Methods a row marks not applicable are never
/// called; their defaults panic to say so.
pub trait Peer {
    /// The exporter's id in the config (`type` or `type/name`).
    fn id(&self) -> String;
    /// The exporter's settings, as YAML lines indented by four spaces (without `retry`).
    fn settings(&self) -> String;
    /// Environment the relay needs (credentials).
    fn env(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Extra lines under `service:` (indented by two spaces).
    fn service(&self) -> String {
        String::new()
    }
    /// Told where the relay runs, before the first case (for outputs inside its directory).
    fn attach(&self, relay_dir: &std::path::Path) {
        let _ = relay_dir;
    }
    /// Deliveries per event id the peer accepted so far.
    fn counts(&self) -> HashMap<String, u32>;
    /// The fake HTTP server behind the peer, if it is one: its exchanges are what
    /// [`Peer::exchanges`] reports, and it goes down and comes up for the status case.
    fn server(&self) -> Option<&FakeServer> {
        None
    }
    /// The HTTP exchanges the peer answered (empty for other protocols).
    fn exchanges(&self) -> Vec<Exchange> {
        self.server().map(FakeServer::exchanges).unwrap_or_default()
    }
    /// One NDJSON event line for the webhook receiver.
    fn event_line(&self, id: &str, n: usize, mark: Mark) -> String {
        let _ = mark;
        crate::events::event_line(id, 0, n)
    }
    /// Makes the marked events of the next request fail; says how.
    fn fail_some(&self, ids: &[String]) -> PartialFailure {
        let _ = ids;
        unimplemented!("{}: partial failure", self.id())
    }
    /// Answers 413 to bodies larger than `bytes` (`None`: the normal limit again).
    fn limit_body(&self, bytes: Option<usize>) {
        let _ = bytes;
        unimplemented!("{}: 413", self.id())
    }
    /// Answers the next request 429 with `Retry-After: <seconds>`.
    fn throttle(&self, seconds: u64) {
        let _ = seconds;
        unimplemented!("{}: 429", self.id())
    }
    /// Refuses the marked events permanently from now on; says which events that hits.
    fn refuse(&self, ids: &[String]) -> Refusal {
        let _ = ids;
        unimplemented!("{}: permanent refusal", self.id())
    }
    /// Text the dead-letter reason of a refused event contains (the peer's own words).
    fn refusal_reason(&self) -> &'static str {
        ""
    }
    /// Stops answering (connections refused, or the server stopped).
    fn go_down(&self) {
        match self.server() {
            Some(server) => server.go_down(),
            None => unimplemented!("{}: go down", self.id()),
        }
    }
    /// Answers again.
    fn come_up(&self) {
        match self.server() {
            Some(server) => server.come_up(),
            None => unimplemented!("{}: come up", self.id()),
        }
    }
}

/// Runs every case of `row` against `peer` through one siemrelay process; panics with every
/// failing case (and the relay's logs) at the end.
pub async fn run(row: &Row, peer: &dyn Peer) {
    let started = Instant::now();
    let mut contract = Contract::start(peer);
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for case in [
        Case::Deliver,
        Case::PartialFailure,
        Case::Throttled,
        Case::Permanent,
        Case::TooLarge,
        Case::Status,
        Case::ShutdownFlush,
    ] {
        let plan = row.plan(case);
        if let Plan::NotApplicable(why) = plan {
            report.push(format!("{case:?}: not applicable: {why}"));
            continue;
        }
        let case_started = Instant::now();
        let result = contract.run_case(case).await;
        let took = case_started.elapsed();
        match (plan, result) {
            (Plan::Run, Ok(())) => report.push(format!("{case:?}: ok ({took:.1?})")),
            (Plan::Run, Err(e)) => failures.push(format!("{case:?}: {e:#}")),
            (Plan::KnownFailure(finding), Err(e)) => report.push(format!(
                "{case:?}: known failure ({finding}): {e:#} ({took:.1?})"
            )),
            (Plan::KnownFailure(finding), Ok(())) => failures.push(format!(
                "{case:?} passes now: remove its known_failure entry ({finding})"
            )),
            (Plan::NotApplicable(_), _) => unreachable!("skipped above"),
        }
    }
    if let Err(e) = contract.all_arrived_once() {
        failures.push(format!("at the end: {e:#}"));
    }
    eprintln!(
        "exporter contract {} ({:.1?}):\n  {}",
        row.exporter,
        started.elapsed(),
        report.join("\n  ")
    );
    if !failures.is_empty() {
        panic!(
            "exporter contract {} failed:\n  {}\n---- relay logs ----\n{}",
            row.exporter,
            failures.join("\n  "),
            contract.relay.logs()
        );
    }
}

/// One relay in front of one peer, and what the cases expect of it.
struct Contract<'a> {
    peer: &'a dyn Peer,
    relay: Siemrelay,
    port: u16,
    admin: String,
    client: reqwest::Client,
    /// Every event that must arrive exactly once by the end.
    expected: HashSet<String>,
    /// Events that may arrive once or be dead-lettered, but never be lost or duplicated.
    either: HashSet<String>,
    /// Events that must not arrive.
    refused: HashSet<String>,
    next: usize,
}

impl<'a> Contract<'a> {
    fn start(peer: &'a dyn Peer) -> Contract<'a> {
        let (port, admin) = (free_port(), free_port());
        let id = peer.id();
        let config = format!(
            r#"
receivers:
  webhook: {{ endpoint: "127.0.0.1:{port}" }}
processors:
  batch: {{ send_batch_size: {BATCH}, send_batch_max_size: {BATCH}, timeout: 60s }}
exporters:
  {id}:
{settings}
    retry: {{ initial_interval: 50ms, max_interval: 500ms, max_elapsed_time: 4s }}
service:
  shutdown_timeout: 30s
  admin: {{ endpoint: "127.0.0.1:{admin}" }}
{service}
  pipelines:
    contract: {{ receivers: [webhook], processors: [batch], exporters: ["{id}"] }}
"#,
            settings = peer.settings(),
            service = peer.service(),
        );
        let env = peer.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut relay = Siemrelay::start_with(&config, &[], &env);
        relay.wait_ready(([127, 0, 0, 1], port).into());
        relay.wait_ready(([127, 0, 0, 1], admin).into());
        peer.attach(relay.dir());
        Contract {
            peer,
            relay,
            port,
            admin: format!("http://127.0.0.1:{admin}"),
            client: reqwest::Client::new(),
            expected: HashSet::new(),
            either: HashSet::new(),
            refused: HashSet::new(),
            next: 0,
        }
    }

    async fn run_case(&mut self, case: Case) -> Result<()> {
        match case {
            Case::Deliver => self.deliver().await,
            Case::PartialFailure => self.partial_failure().await,
            Case::TooLarge => self.too_large().await,
            Case::Throttled => self.throttled().await,
            Case::Permanent => self.permanent().await,
            Case::Status => self.status().await,
            Case::ShutdownFlush => self.shutdown_flush().await,
        }
    }

    /// A body of `n` events with fresh ids; `mark(i)` says what event `i` is for.
    fn body(&mut self, n: usize, mark: impl Fn(usize) -> Mark) -> (String, Vec<String>) {
        let start = self.next;
        self.next += n;
        crate::events::ndjson_body_with(n, |id, i| self.peer.event_line(id, start + i, mark(i)))
    }

    async fn post(&self, body: String) -> Result<()> {
        let response = self
            .client
            .post(format!("http://127.0.0.1:{}/v1/events", self.port))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .context("post to the webhook receiver")?;
        let status = response.status();
        ensure!(
            status == 200,
            "the webhook receiver answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
        Ok(())
    }

    /// Posts `n` plain events; they must arrive once each.
    async fn post_plain(&mut self, n: usize) -> Result<Vec<String>> {
        let (body, ids) = self.body(n, |_| Mark::Plain);
        self.post(body).await?;
        self.expected.extend(ids.iter().cloned());
        Ok(ids)
    }

    /// Waits until every id in `ids` was accepted by the peer at least once.
    async fn wait_arrived(&self, ids: &[String], timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = self.peer.counts();
            let missing = ids.iter().filter(|id| !counts.contains_key(*id)).count();
            if missing == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{missing} of {} events did not arrive within {timeout:?}",
                    ids.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every id in `ids` arrived exactly once.
    fn arrived_once(&self, ids: &[String]) -> Result<()> {
        let counts = self.peer.counts();
        let wrong: Vec<(&String, u32)> = ids
            .iter()
            .map(|id| (id, counts.get(id).copied().unwrap_or(0)))
            .filter(|(_, n)| *n != 1)
            .collect();
        ensure!(
            wrong.is_empty(),
            "{} events did not arrive exactly once (id, times): {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        Ok(())
    }

    /// Dead-letter entries of this exporter: event id → reason.
    fn dead_letters(&self) -> HashMap<String, String> {
        let id = self.peer.id();
        read_ndjson_files(&self.relay.dir().join("siemrelay-data/dead_letter"), "")
            .into_iter()
            .filter(|line| line["exporter"] == id.as_str())
            .filter_map(|line| {
                let event = line["event"]["event_id"].as_str()?.to_string();
                Some((
                    event,
                    line["error"].as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect()
    }

    /// Waits until every id in `ids` is in the dead-letter file; returns their reasons.
    async fn wait_dead_lettered(
        &self,
        ids: &[String],
        timeout: Duration,
    ) -> Result<HashMap<String, String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let dead = self.dead_letters();
            if ids.iter().all(|id| dead.contains_key(id)) {
                return Ok(dead);
            }
            if Instant::now() > deadline {
                let missing = ids.iter().filter(|id| !dead.contains_key(*id)).count();
                bail!(
                    "{missing} of {} events were not dead-lettered within {timeout:?}",
                    ids.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The HTTP exchanges answered since `since`.
    fn exchanges_since(&self, since: Instant) -> Vec<Exchange> {
        self.peer
            .exchanges()
            .into_iter()
            .filter(|e| e.at >= since)
            .collect()
    }

    async fn deliver(&mut self) -> Result<()> {
        let port = self.port;
        let start = self.next;
        self.next += 100 * BATCH;
        let peer = self.peer;
        let sent = crate::post_ndjson_requests(port, 100, |request| {
            crate::events::ndjson_body_with(BATCH, |id, i| {
                peer.event_line(id, start + request * BATCH + i, Mark::Plain)
            })
        })
        .await;
        self.expected.extend(sent.iter().cloned());
        self.wait_arrived(&sent, Duration::from_secs(120)).await?;
        self.arrived_once(&sent)
    }

    async fn partial_failure(&mut self) -> Result<()> {
        let (body, ids) = self.body(BATCH, |i| {
            if i % 25 == 7 {
                Mark::PartialFailure
            } else {
                Mark::Plain
            }
        });
        let failing: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 25 == 7)
            .map(|(_, id)| id.clone())
            .collect();
        let others: Vec<String> = ids
            .iter()
            .filter(|id| !failing.contains(id))
            .cloned()
            .collect();
        let kind = self.peer.fail_some(&failing);
        self.post(body).await?;
        match kind {
            PartialFailure::Retryable => {
                self.expected.extend(ids.iter().cloned());
                self.wait_arrived(&ids, Duration::from_secs(30)).await?;
                self.arrived_once(&ids)
            }
            PartialFailure::Permanent => {
                self.expected.extend(others.iter().cloned());
                self.refused.extend(failing.iter().cloned());
                self.wait_arrived(&others, Duration::from_secs(30)).await?;
                self.wait_dead_lettered(&failing, Duration::from_secs(30))
                    .await?;
                self.arrived_once(&others)?;
                let dead = self.dead_letters();
                let wrongly = others.iter().filter(|id| dead.contains_key(*id)).count();
                ensure!(
                    wrongly == 0,
                    "{wrongly} events that did not fail were dead-lettered"
                );
                Ok(())
            }
        }
    }

    async fn too_large(&mut self) -> Result<()> {
        let since = Instant::now();
        self.peer.limit_body(Some(8_000));
        let ids = self.post_plain(BATCH).await?;
        let arrived = self.wait_arrived(&ids, Duration::from_secs(30)).await;
        self.peer.limit_body(None);
        arrived?;
        self.arrived_once(&ids)?;
        let refused = self
            .exchanges_since(since)
            .iter()
            .filter(|e| e.status == 413)
            .count();
        ensure!(
            refused > 0,
            "the peer never answered 413: nothing was split"
        );
        Ok(())
    }

    async fn throttled(&mut self) -> Result<()> {
        let since = Instant::now();
        self.peer.throttle(2);
        let ids = self.post_plain(BATCH).await?;
        self.wait_arrived(&ids, Duration::from_secs(30)).await?;
        self.arrived_once(&ids)?;
        let exchanges = self.exchanges_since(since);
        let throttled = exchanges
            .iter()
            .position(|e| e.status == 429)
            .ok_or_else(|| anyhow!("the peer never answered 429"))?;
        let refused = &exchanges[throttled];
        let next = exchanges[throttled + 1..]
            .iter()
            .find(|e| e.method == refused.method && e.path == refused.path)
            .ok_or_else(|| anyhow!("no request followed the 429"))?;
        let waited = next.at.duration_since(refused.at);
        let timeline: Vec<String> = exchanges
            .iter()
            .map(|e| {
                format!(
                    "{:?} {} {} {}",
                    e.at.duration_since(since),
                    e.method,
                    e.path,
                    e.status
                )
            })
            .collect();
        ensure!(
            waited >= Duration::from_secs(2),
            "the next request came {waited:?} after a 429 with Retry-After: 2 (exchanges: {timeline:?})"
        );
        Ok(())
    }

    async fn permanent(&mut self) -> Result<()> {
        let (body, ids) = self.body(BATCH, |i| {
            if i % 30 == 3 {
                Mark::Refused
            } else {
                Mark::Plain
            }
        });
        let marked: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 30 == 3)
            .map(|(_, id)| id.clone())
            .collect();
        let refused = match self.peer.refuse(&marked) {
            Refusal::Marked => marked,
            Refusal::NextRequest => ids.clone(),
        };
        let delivered: Vec<String> = ids
            .iter()
            .filter(|id| !refused.contains(id))
            .cloned()
            .collect();
        self.expected.extend(delivered.iter().cloned());
        self.refused.extend(refused.iter().cloned());
        self.post(body).await?;
        let dead = self
            .wait_dead_lettered(&refused, Duration::from_secs(30))
            .await?;
        self.wait_arrived(&delivered, Duration::from_secs(30))
            .await?;
        self.arrived_once(&delivered)?;
        let reason = self.peer.refusal_reason();
        for id in &refused {
            let error = &dead[id];
            ensure!(
                error.contains(reason),
                "dead-letter reason {error:?} does not carry the peer's {reason:?}"
            );
        }
        let counts = self.peer.counts();
        let arrived = refused.iter().filter(|id| counts.contains_key(*id)).count();
        ensure!(arrived == 0, "{arrived} refused events reached the peer");
        Ok(())
    }

    async fn exporter_status(&self) -> Result<String> {
        let url = format!(
            "{}/api/v1/exporters/{}",
            self.admin,
            self.peer.id().replace('/', "%2F")
        );
        let body: serde_json::Value = self
            .client
            .get(url)
            .send()
            .await
            .context("admin API")?
            .json()
            .await
            .context("admin API answer")?;
        Ok(body["status"].as_str().unwrap_or_default().to_string())
    }

    /// Polls the status (every 50 ms) until it is `until`, recording each change.
    async fn follow_status(
        &self,
        seen: &mut Vec<String>,
        until: &str,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.exporter_status().await?;
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            if status == until {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("status never became {until} within {timeout:?}: went {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn status(&mut self) -> Result<()> {
        let mut seen = Vec::new();
        self.follow_status(&mut seen, "active", Duration::from_secs(30))
            .await?;
        self.peer.go_down();
        let (body, lost_or_late) = self.body(BATCH, |_| Mark::Plain);
        self.either.extend(lost_or_late.iter().cloned());
        let posted = self.post(body).await;
        let failed = match posted {
            Ok(()) => {
                self.follow_status(&mut seen, "failed", Duration::from_secs(60))
                    .await
            }
            Err(e) => Err(e),
        };
        self.peer.come_up();
        failed?;
        let after = self.post_plain(BATCH).await?;
        self.follow_status(&mut seen, "active", Duration::from_secs(60))
            .await?;
        self.wait_arrived(&after, Duration::from_secs(30)).await?;
        self.arrived_once(&after)?;
        ensure!(
            seen == ["active", "degraded", "failed", "active"],
            "status went {seen:?}"
        );
        // The events posted while the peer was away arrived or were dead-lettered, never lost.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (counts, dead) = (self.peer.counts(), self.dead_letters());
            let lost = lost_or_late
                .iter()
                .filter(|id| !counts.contains_key(*id) && !dead.contains_key(*id))
                .count();
            if lost == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{lost} events posted while the peer was away were neither delivered nor dead-lettered"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn shutdown_flush(&mut self) -> Result<()> {
        let held = self.post_plain(37).await?;
        let counts = self.peer.counts();
        let early = held.iter().filter(|id| counts.contains_key(*id)).count();
        ensure!(
            early == 0,
            "{early} of 37 events left before shutdown: the batcher did not hold them"
        );
        let exit = self.relay.terminate(Duration::from_secs(40));
        ensure!(
            exit.is_some_and(|s| s.success()),
            "exit after SIGTERM: {exit:?}"
        );
        self.wait_arrived(&held, Duration::from_secs(10)).await?;
        self.arrived_once(&held)
    }

    /// At the end: every expected event arrived exactly once, no refused event arrived, and
    /// the events of the status case arrived at most once.
    fn all_arrived_once(&self) -> Result<()> {
        let counts = self.peer.counts();
        let expected: Vec<String> = self.expected.iter().cloned().collect();
        let wrong = expected
            .iter()
            .filter(|id| counts.get(*id).copied() != Some(1))
            .count();
        ensure!(
            wrong == 0,
            "{wrong} of {} events did not arrive exactly once",
            expected.len()
        );
        let refused = self
            .refused
            .iter()
            .filter(|id| counts.contains_key(*id))
            .count();
        ensure!(refused == 0, "{refused} refused events arrived");
        let twice = self
            .either
            .iter()
            .filter(|id| counts.get(*id).copied().unwrap_or(0) > 1)
            .count();
        ensure!(twice == 0, "{twice} events arrived twice");
        Ok(())
    }
}
