//! Fetching only while records wait: the consumer pauses its partitions
//! once it has consumed everything on them, and resumes them when records
//! are known to wait.
//!
//! Why: tansu 0.6 holds every fetch for the whole `fetch.wait.max.ms`,
//! records or not, and its storage serves one request at a time, so a fetch
//! that returns many records holds up every produce request queued behind
//! it. With a long wait the fetches are big and the acknowledgement's tail
//! long (send p99 95 ms with a 250 ms wait); with a short one an idle
//! consumer keeps the broker busy (39 % of a core with 10 ms; see
//! docs/bench/cost.md). So Herald fetches with a short wait, and only while
//! there is something to fetch:
//! - after two fetch waits without a record (at least [`QUIET_MIN`]), the
//!   consumer asks the broker for its partitions' end offsets (one
//!   `ListOffsets` request) and pauses them if it has consumed up to every
//!   end, and up to every record this instance left to it there;
//! - records early delivery stored do not count as waiting: the consumer
//!   commits past a run of them that starts exactly at its position
//!   ([`Pacer::advance`]) and never fetches them, so the broker does not
//!   hand this instance's own records back (about half of what tansu spent
//!   per send). Records early delivery still holds count as stored unless
//!   it gives up on them (then they wake the consumer); a look that finds
//!   records to fetch is followed by a second one 20 ms later that counts
//!   only the records the first one saw, and, while paused, by a third and
//!   a fourth 40 and 80 ms apart ([`RECHECK_MAX`]);
//! - a paused consumer resumes at once when this instance leaves a record
//!   to it ([`Demand::produced`]: early delivery did not take it) or the
//!   group assigns it partitions, and looks at the end offsets every
//!   `HERALD_IDLE_PROBE_MS` for records other producers (other instances,
//!   other services) wrote.
//!
//! Brokers that answer a fetch as soon as records arrive (Apache Kafka)
//! gain nothing from pausing: `HERALD_IDLE_PROBE_MS=0` never pauses (and
//! the consumer then reads this instance's records back too).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::consumer::GroupConsumer;
use crate::delivery::{run_end, Ledger};
use crate::store::Source;

/// Shortest time the consumer goes on fetching after its last record before
/// it asks whether anything is left. It is two fetch waits otherwise: tansu
/// answers every fetch only when its wait ends, so records that flow come
/// about one wait apart.
pub const QUIET_MIN: Duration = Duration::from_millis(50);

/// How soon a consumer whose look found records to fetch looks again
/// before it fetches them: records the broker acknowledged a moment ago
/// are in early delivery's hands by then.
const SECOND_LOOK_AFTER: Duration = Duration::from_millis(20);

/// Longest wait between two looks at the same records before a paused
/// consumer fetches them: each look that still finds one of them missing
/// waits twice as long (20, 40, 80 ms). Under load a send's
/// acknowledgement can reach early delivery tens of ms after the broker
/// counts the record, and a fetch resumed for such a record reads every
/// record after it as well, holding up tansu's produce requests behind it
/// (a 0.3-1.4 s p99 in one round in two, docs/bench/cost.md). A record of another producer
/// waits this much longer to be fetched.
const RECHECK_MAX: Duration = Duration::from_millis(80);

/// A look found records to fetch: look again at `at`, counting only the
/// records that look saw (`ends`); `after` is how long this wait was.
struct Recheck {
    at: Instant,
    ends: HashMap<i32, i64>,
    after: Duration,
}

/// Bound on each broker request of a look, and on the look as a whole.
const LOOK_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const LOOK_TIMEOUT: Duration = Duration::from_secs(4);

/// What the producer tells the consumer: where this instance's records on
/// each partition end, and a wake-up while the consumer is paused. Cheap to
/// clone.
#[derive(Clone, Default)]
pub struct Demand(Arc<DemandShared>);

#[derive(Default)]
struct DemandShared {
    /// One lock for all, so a record produced while the consumer pauses is
    /// either seen by its last check or wakes it (never neither).
    state: Mutex<DemandState>,
    /// Resume now: records wait that only fetching will store.
    wake: Notify,
    /// Early delivery stored records: commit past them.
    advanced: Notify,
    /// The consumer read past everything left to it on a partition.
    cleared: Notify,
}

#[derive(Default)]
struct DemandState {
    /// Partition → the offset after the last record this instance produced
    /// there and left to the consumer (at most one entry per partition of
    /// the topic).
    ends: HashMap<i32, i64>,
    /// Records handed to early delivery and not yet stored or given up:
    /// the consumer need not fetch them (bounded by early delivery's queue
    /// and batch).
    pending: HashMap<i32, BTreeSet<i64>>,
    paused: bool,
    /// The group assigned partitions: what was known of the old ones is
    /// stale.
    reassigned: bool,
}

impl Demand {
    /// The broker acknowledged this instance's record at `offset` of
    /// `partition` of the notifications topic, and only the consumer will
    /// store it (early delivery did not take it): a paused consumer
    /// resumes.
    pub fn produced(&self, partition: i32, offset: i64) {
        let paused = {
            let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
            let end = s.ends.entry(partition).or_insert(0);
            *end = (*end).max(offset.saturating_add(1));
            s.paused
        };
        if paused {
            self.0.wake.notify_one();
        }
    }

    /// Early delivery takes this instance's record at `source` (it will
    /// say with [`Self::settled`] whether it stored it). Whether it must
    /// hold it until the consumer has read the records of that partition
    /// this instance left to it ([`Self::left_unread`]): when `in_order`,
    /// a later record must not overtake them, so a user's notifications are
    /// stored in order.
    ///
    /// Held, not left to the consumer too: leaving it would extend what the
    /// consumer has to read first, and under a steady flow of sends the
    /// consumer, one fetch behind, would never read past the end. Early
    /// delivery then stayed off for that partition until the sends paused
    /// (e2e p50 95 ms instead of 4.5 at 2,000 sends/s).
    pub fn offered(&self, source: Source, in_order: bool) -> bool {
        let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        s.pending
            .entry(source.partition)
            .or_default()
            .insert(source.offset);
        in_order && s.ends.contains_key(&source.partition)
    }

    /// Whether records of `partition` this instance left to the consumer
    /// are not read yet.
    pub fn left_unread(&self, partition: i32) -> bool {
        let s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        s.ends.contains_key(&partition)
    }

    /// Completes when the consumer has read everything left to it on some
    /// partition. `enable` it before checking [`Self::left_unread`], so a
    /// clearing in between is not missed.
    pub fn cleared(&self) -> Notified<'_> {
        self.0.cleared.notified()
    }

    /// Early delivery stored these records (or gave up on them: then the
    /// consumer must fetch them).
    pub fn settled(&self, sources: &[Source], stored: bool) {
        let paused = {
            let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
            for source in sources {
                if let Some(p) = s.pending.get_mut(&source.partition) {
                    p.remove(&source.offset);
                }
                if !stored {
                    let end = s.ends.entry(source.partition).or_insert(0);
                    *end = (*end).max(source.offset.saturating_add(1));
                }
            }
            s.paused
        };
        if !paused {
            return;
        }
        if stored {
            self.0.advanced.notify_one();
        } else {
            self.0.wake.notify_one();
        }
    }

    /// The consumer has read (or committed past) everything before `next`.
    pub(crate) fn caught_up_to(&self, next: &HashMap<i32, i64>) {
        let cleared = {
            let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
            let before = s.ends.len();
            s.ends
                .retain(|p, end| next.get(p).is_none_or(|n| *n < *end));
            s.ends.len() < before
        };
        if cleared {
            self.0.cleared.notify_waiters();
        }
    }

    /// Resume fetching now (the group assigned partitions).
    pub fn reassigned(&self) {
        self.0
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reassigned = true;
        self.0.wake.notify_one();
    }

    fn take_reassigned(&self) -> bool {
        std::mem::take(
            &mut self
                .0
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reassigned,
        )
    }

    /// Mark the consumer paused or not; when pausing, whether this
    /// instance produced past `next` on a partition meanwhile (then the
    /// consumer must not stay paused).
    fn set_paused(&self, paused: bool, next: &HashMap<i32, i64>) -> bool {
        let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        s.paused = paused;
        // Only partitions this consumer reads (all of them have a position
        // once a look found it caught up); the others' owners read theirs.
        paused
            && s.ends
                .iter()
                .any(|(p, end)| next.get(p).is_some_and(|n| *n < *end))
    }

    /// This instance's record ends and what early delivery is storing, for
    /// a look.
    fn snapshot(&self) -> (HashMap<i32, i64>, HashMap<i32, BTreeSet<i64>>) {
        let s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        (s.ends.clone(), s.pending.clone())
    }
}

/// Whether a partition the consumer has read up to `next` (None: nothing
/// read yet) has records before `end`.
fn behind(next: Option<&i64>, end: i64) -> bool {
    next.is_none_or(|n| *n < end)
}

/// The consumer's pace: fetching, or paused until records are known to
/// wait.
pub struct Pacer {
    demand: Demand,
    /// What early delivery stored, to commit past without fetching.
    ledger: Ledger,
    topic: String,
    /// Partitions committed past what the consumer read: on resume it
    /// starts there.
    seek: HashSet<i32>,
    last_look: Instant,
    /// A look found records to fetch: the next ones, soon, decide, counting
    /// only records the first one saw (see [`SECOND_LOOK_AFTER`]).
    recheck: Option<Recheck>,
    /// None: never pause.
    probe_every: Option<Duration>,
    /// Time without a record before a look.
    quiet_after: Duration,
    /// Partition → the offset after the last record consumed there (or
    /// where the consumer starts, for a partition it has read nothing
    /// from).
    next: HashMap<i32, i64>,
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// Fetching; `since` is the last record (or wake-up).
    Fetching { since: Instant },
    /// Paused; look again at `look_at`.
    Paused { look_at: Instant },
}

/// What a look found.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Everything on every assigned partition was consumed; the start
    /// offsets learnt for partitions nothing was read from yet.
    CaughtUp(Vec<(i32, i64)>),
    /// Records wait (or the look could not tell).
    Behind,
}

impl Pacer {
    /// A pacer for a consumer fetching with `fetch_wait`, that pauses when
    /// idle and looks every `probe_every` (zero: never pauses).
    pub fn new(
        demand: Demand,
        ledger: Ledger,
        topic: &str,
        probe_every: Duration,
        fetch_wait: Duration,
    ) -> Self {
        Self {
            demand,
            ledger,
            topic: topic.to_owned(),
            seek: HashSet::new(),
            last_look: Instant::now(),
            recheck: None,
            probe_every: (!probe_every.is_zero()).then_some(probe_every),
            quiet_after: (fetch_wait * 2).max(QUIET_MIN),
            next: HashMap::new(),
            state: State::Fetching {
                since: Instant::now(),
            },
        }
    }

    /// When [`Self::due`] needs to run next; None: never.
    pub fn due_at(&self) -> Option<Instant> {
        self.probe_every?;
        if let Some(r) = &self.recheck {
            return Some(r.at);
        }
        Some(match self.state {
            // Also every look interval while records flow: they may all be
            // stored by early delivery already.
            State::Fetching { since } => {
                (since + self.quiet_after).min(self.last_look + self.probe_every?)
            }
            State::Paused { look_at } => look_at,
        })
    }

    /// Whether the partitions are paused (a wake-up then resumes them).
    pub fn is_paused(&self) -> bool {
        matches!(self.state, State::Paused { .. })
    }

    /// The consumer stored (or dead-lettered) a batch: records early
    /// delivery held back behind it may go early again.
    pub fn batch_done(&self) {
        self.demand.caught_up_to(&self.next);
    }

    /// The consumer handed over the record at `offset` of `partition`.
    pub fn consumed(&mut self, partition: i32, offset: i64) {
        let next = self.next.entry(partition).or_insert(0);
        *next = (*next).max(offset.saturating_add(1));
        if let State::Fetching { since } = &mut self.state {
            *since = Instant::now();
        }
    }

    /// A wake-up (this instance produced, or partitions were assigned):
    /// resume if paused.
    pub async fn woken(&mut self, consumer: &Arc<GroupConsumer>) {
        self.forget_if_reassigned();
        self.recheck = None;
        if self.is_paused() {
            self.resume(consumer).await;
        }
        self.state = State::Fetching {
            since: Instant::now(),
        };
    }

    /// After a rebalance, positions learnt on partitions owned before are
    /// stale: forget them.
    fn forget_if_reassigned(&mut self) {
        if self.demand.take_reassigned() {
            self.next.clear();
            self.seek.clear();
        }
    }

    /// The time [`Self::due_at`] named has come: ask the broker whether
    /// records wait, then pause or resume accordingly.
    pub async fn due(&mut self, consumer: &Arc<GroupConsumer>) {
        self.forget_if_reassigned();
        self.advance(consumer);
        self.last_look = Instant::now();
        let (ends, pending) = self.demand.snapshot();
        let (c, topic, next) = (consumer.clone(), self.topic.clone(), self.next.clone());
        let recheck = self.recheck.take();
        let first = recheck.as_ref().map(|r| r.ends.clone());
        let look = crate::kafka::detached("consumer-look", move || {
            look(&c, &topic, &next, &ends, &pending, first.as_ref())
        });
        let (verdict, seen) = match tokio::time::timeout(LOOK_TIMEOUT, look).await {
            Ok(Ok(Ok(v))) => v,
            Ok(Ok(Err(e))) => {
                tracing::debug!(error = %e, "could not look at the end offsets");
                (Verdict::Behind, None)
            }
            _ => (Verdict::Behind, None),
        };
        let now = Instant::now();
        tracing::debug!(?verdict, ?seen, rechecked = recheck.is_some(), "looked");
        match verdict {
            Verdict::CaughtUp(starts) => {
                self.next.extend(starts);
                let owned = self.ledger.owned();
                self.next.retain(|p, _| owned.contains(p));
                // Pause the whole assignment each time: partitions assigned
                // since the last pause are included.
                self.control(consumer, true).await;
                if self.demand.set_paused(true, &self.next) {
                    // This instance produced meanwhile.
                    return Box::pin(self.woken(consumer)).await;
                }
                self.state = State::Paused {
                    look_at: now + self.probe_every.unwrap_or(QUIET_MIN),
                };
            }
            Verdict::Behind if seen.is_some() && recheck.is_none() => {
                // Records the broker acknowledged a moment ago may not be
                // handed to early delivery yet: look again, soon, at these
                // records only (under load the end always moves on).
                self.recheck = seen.map(|ends| Recheck {
                    at: now + SECOND_LOOK_AFTER,
                    ends,
                    after: SECOND_LOOK_AFTER,
                });
            }
            // Only a paused consumer waits longer: one that fetches goes on
            // fetching either way, and each look is a request the broker
            // serves between produce requests.
            Verdict::Behind
                if seen.is_some()
                    && self.is_paused()
                    && recheck.as_ref().is_some_and(|r| r.after * 2 <= RECHECK_MAX) =>
            {
                self.recheck = recheck.map(|r| Recheck {
                    at: now + r.after * 2,
                    ends: r.ends,
                    after: r.after * 2,
                });
            }
            Verdict::Behind => {
                // Resumed either way: a partition kept paused (say, from
                // before a rebalance) would otherwise never be read.
                self.resume(consumer).await;
                self.state = State::Fetching { since: now };
            }
        }
    }

    /// Commit past the records early delivery stored right where the
    /// consumer is: it never fetches them. Only a run that starts at the
    /// consumer's position counts (everything before it is stored), so a
    /// record it did not store stops the run.
    pub fn advance(&mut self, consumer: &GroupConsumer) {
        for (p, next) in self.next.iter_mut() {
            let end = self.ledger.take_run(*p, *next);
            if end == *next {
                continue;
            }
            // librdkafka commits the stored offset plus one.
            match consumer.store_offset(&self.topic, *p, end - 1) {
                Ok(()) => {
                    *next = end;
                    self.seek.insert(*p);
                }
                // Not ours any more; the records are fetched (and found
                // stored) by whoever owns it.
                Err(e) => {
                    tracing::debug!(error = %e, partition = *p, "could not commit past stored records")
                }
            }
        }
        self.demand.caught_up_to(&self.next);
    }

    /// Wait for early delivery to store records (commit past them then).
    pub async fn advanced(&self) {
        self.demand.0.advanced.notified().await
    }

    async fn resume(&mut self, consumer: &Arc<GroupConsumer>) {
        self.demand.set_paused(false, &self.next);
        self.control(consumer, false).await;
    }

    /// Pause or resume the assigned partitions (resuming, start after what
    /// was committed without reading it: without that seek the consumer
    /// would read those records again and find them stored, slower but
    /// never wrong). librdkafka waits for its own threads to apply a pause
    /// or a resume and to name the assignment, so this runs off the
    /// runtime (a blocked worker holds up HTTP too), bounded.
    async fn control(&mut self, consumer: &Arc<GroupConsumer>, pause: bool) {
        let seeks: Vec<(i32, i64)> = if pause {
            Vec::new()
        } else {
            std::mem::take(&mut self.seek)
                .into_iter()
                .filter_map(|p| self.next.get(&p).map(|n| (p, *n)))
                .collect()
        };
        let (c, topic) = (consumer.clone(), self.topic.clone());
        let done = crate::kafka::detached("consumer-pace", move || {
            let Ok(assigned) = c.assignment() else {
                return;
            };
            let outcome = if pause {
                c.pause(&assigned)
            } else {
                c.resume(&assigned)
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, pause, "could not pause or resume the partitions");
            }
            for (p, next) in seeks {
                if let Err(e) = c.seek(&topic, p, Offset::Offset(next), Duration::ZERO) {
                    tracing::debug!(error = %e, partition = p, "could not seek past stored records");
                }
            }
        });
        if tokio::time::timeout(LOOK_TIMEOUT, done).await.is_err() {
            tracing::warn!(pause, "pausing or resuming the partitions timed out");
        }
    }

    /// Wait for a wake-up from [`Demand`].
    pub async fn notified(&self) {
        self.demand.0.wake.notified().await
    }
}

/// Ask the broker where the assigned partitions end (and, for partitions
/// nothing was read from yet, where the consumer starts on them: the
/// committed offset, or the earliest one), and compare with what was
/// consumed and what this instance produced. Blocks on the broker.
fn look(
    consumer: &GroupConsumer,
    topic: &str,
    next: &HashMap<i32, i64>,
    produced: &HashMap<i32, i64>,
    pending: &HashMap<i32, BTreeSet<i64>>,
    first: Option<&HashMap<i32, i64>>,
) -> Result<(Verdict, Option<HashMap<i32, i64>>), KafkaError> {
    let assigned: Vec<i32> = consumer
        .assignment()?
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect();
    if assigned.is_empty() {
        return Ok((Verdict::CaughtUp(Vec::new()), None));
    }
    let mut ends = offsets(consumer, topic, &assigned, Offset::End)?;
    if let Some(first) = first {
        for (p, end) in ends.iter_mut() {
            if let Some(f) = first.get(p) {
                *end = (*end).min(*f);
            }
        }
    }
    // Where the consumer starts on partitions it read nothing from: the
    // committed offset, else (auto.offset.reset=earliest) the first one.
    let unread: Vec<i32> = assigned
        .iter()
        .copied()
        .filter(|p| !next.contains_key(p))
        .collect();
    let mut starts = HashMap::new();
    if !unread.is_empty() {
        let mut tpl = TopicPartitionList::new();
        for p in &unread {
            tpl.add_partition(topic, *p);
        }
        for e in consumer
            .committed_offsets(tpl, LOOK_REQUEST_TIMEOUT)?
            .elements()
        {
            if let Offset::Offset(o) = e.offset() {
                starts.insert(e.partition(), o);
            }
        }
        let uncommitted: Vec<i32> = unread
            .iter()
            .copied()
            .filter(|p| !starts.contains_key(p))
            .collect();
        if !uncommitted.is_empty() {
            starts.extend(offsets(consumer, topic, &uncommitted, Offset::Beginning)?);
        }
    }
    let v = verdict(&assigned, next, &starts, &ends, produced, pending);
    Ok((v, Some(ends)))
}

/// The end (or first) offsets of `partitions`, in one request.
fn offsets(
    consumer: &GroupConsumer,
    topic: &str,
    partitions: &[i32],
    at: Offset,
) -> Result<HashMap<i32, i64>, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, at)?;
    }
    Ok(consumer
        .offsets_for_times(tpl, LOOK_REQUEST_TIMEOUT)?
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// Caught up when, on every assigned partition, what was consumed (or the
/// start, if nothing was), followed by what early delivery is storing,
/// reaches both the broker's end and the end of what this instance left to
/// the consumer. A partition whose end is unknown counts as behind.
///
/// Offsets with no record the consumer is handed (a transactional
/// producer's commit markers) keep a partition behind for good: its
/// consumer goes on fetching, which costs the broker and loses nothing.
fn verdict(
    assigned: &[i32],
    next: &HashMap<i32, i64>,
    starts: &HashMap<i32, i64>,
    ends: &HashMap<i32, i64>,
    produced: &HashMap<i32, i64>,
    pending: &HashMap<i32, BTreeSet<i64>>,
) -> Verdict {
    let mut learnt = Vec::new();
    for p in assigned {
        let Some(end) = ends.get(p) else {
            return Verdict::Behind;
        };
        // Records early delivery is storing right after the position are
        // committed past once stored (given up, they wake the consumer).
        let mut ahead = next.get(p).or_else(|| starts.get(p)).copied();
        if let (Some(a), Some(storing)) = (ahead.as_mut(), pending.get(p)) {
            *a = run_end(storing, *a);
        }
        let at = ahead.as_ref();
        if behind(at, *end) || produced.get(p).is_some_and(|e| behind(at, *e)) {
            return Verdict::Behind;
        }
        if !next.contains_key(p) {
            if let Some(start) = starts.get(p) {
                learnt.push((*p, *start));
            }
        }
    }
    Verdict::CaughtUp(learnt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(i32, i64)]) -> HashMap<i32, i64> {
        pairs.iter().copied().collect()
    }

    /// The verdict with nothing pending in early delivery.
    fn check(
        assigned: &[i32],
        next: &HashMap<i32, i64>,
        starts: &HashMap<i32, i64>,
        ends: &HashMap<i32, i64>,
        produced: &HashMap<i32, i64>,
    ) -> Verdict {
        verdict(assigned, next, starts, ends, produced, &HashMap::new())
    }

    #[test]
    fn records_early_delivery_is_storing_do_not_need_fetching_but_a_gap_does() {
        let ends = map(&[(0, 13)]);
        let none = HashMap::new();
        let storing =
            |o: &[i64]| HashMap::from([(0, o.iter().copied().collect::<BTreeSet<i64>>())]);
        // 10, 11, 12 are being stored early: nothing to fetch.
        assert_eq!(
            verdict(
                &[0],
                &map(&[(0, 10)]),
                &none,
                &ends,
                &none,
                &storing(&[10, 11, 12])
            ),
            Verdict::CaughtUp(vec![])
        );
        // 11 is someone else's (not pending here): it must be fetched.
        assert_eq!(
            verdict(
                &[0],
                &map(&[(0, 10)]),
                &none,
                &ends,
                &none,
                &storing(&[10, 12])
            ),
            Verdict::Behind
        );
    }

    #[test]
    fn caught_up_only_when_every_partition_is_read_to_its_end() {
        let ends = map(&[(0, 10), (1, 5)]);
        let none = HashMap::new();
        assert_eq!(
            check(&[0, 1], &map(&[(0, 10), (1, 5)]), &none, &ends, &none),
            Verdict::CaughtUp(vec![])
        );
        // One record left on partition 1.
        assert_eq!(
            check(&[0, 1], &map(&[(0, 10), (1, 4)]), &none, &ends, &none),
            Verdict::Behind
        );
        // The broker did not say where partition 1 ends.
        assert_eq!(
            check(
                &[0, 1],
                &map(&[(0, 10), (1, 5)]),
                &none,
                &map(&[(0, 10)]),
                &none
            ),
            Verdict::Behind
        );
    }

    #[test]
    fn a_partition_nothing_was_read_from_counts_from_where_the_consumer_starts() {
        let ends = map(&[(0, 7)]);
        let none = HashMap::new();
        // Committed at the end: nothing to read, and the start is learnt.
        assert_eq!(
            check(&[0], &none, &map(&[(0, 7)]), &ends, &none),
            Verdict::CaughtUp(vec![(0, 7)])
        );
        // Committed before the end: records wait.
        assert_eq!(
            check(&[0], &none, &map(&[(0, 3)]), &ends, &none),
            Verdict::Behind
        );
        // No start known at all: behind, never paused blind.
        assert_eq!(check(&[0], &none, &none, &ends, &none), Verdict::Behind);
    }

    #[test]
    fn a_record_this_instance_produced_keeps_the_consumer_fetching() {
        // The broker's end offset may not show it yet (another broker
        // answered), but the acknowledgement said where it is.
        let ends = map(&[(0, 10)]);
        let none = HashMap::new();
        assert_eq!(
            check(&[0], &map(&[(0, 10)]), &none, &ends, &map(&[(0, 11)])),
            Verdict::Behind
        );
    }

    #[test]
    fn a_send_while_pausing_is_never_missed() {
        let demand = Demand::default();
        let next = map(&[(2, 5)]);
        // Produced before the consumer marked itself paused: its last check
        // sees the record.
        demand.produced(2, 5);
        assert!(demand.set_paused(true, &next));
        // Produced after: the record wakes it.
        let demand = Demand::default();
        assert!(!demand.set_paused(true, &next));
        demand.produced(2, 5);
        let woke = demand.0.wake.notified();
        futures::pin_mut!(woke);
        assert!(futures::FutureExt::now_or_never(woke.as_mut()).is_some());
    }
}
