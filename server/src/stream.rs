//! The state of one SSE stream: replay from the store, then live events
//! from the hub, catching up from the store when it lags or is told to
//! resync, with no gap and no duplicate.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::broadcast::{error::RecvError, error::TryRecvError, Receiver};

use app::model::{Counts, StateEvent};

use crate::hub::InboxEvent;
use crate::store::{Store, Stored};

/// Rows read per page while replaying missed events to a stream.
const REPLAY_PAGE: i64 = 200;

/// An event for one SSE stream: only what a client is sent (a resync is
/// handled inside the stream, by catching up from the store).
#[derive(Clone, Debug)]
pub enum StreamEvent {
    /// A new notification.
    Notification(Arc<Stored>),
    /// A change of existing notifications, with the counts after it.
    State(Arc<StateEvent>),
    /// The inbox's counts.
    Counts(Counts),
}

/// Events of `user_id`'s inbox as they happen (the caller checked access).
///
/// With `after` (a notification id, or `"0"` for the very beginning) the
/// stream first replays every notification stored after it, then goes
/// live, with no gap and no duplicate: `rx`, the hub subscription, is taken
/// *before* the store is read, and live notifications already replayed are
/// dropped
/// (each user's `seq` grows in write order on both backends). An unknown
/// `after` starts from now. A stream that lags behind the hub catches up
/// from the store. Counts come first and whenever the stream would
/// otherwise wait, so a burst of notifications costs one counts event.
pub async fn open(
    store: &Store,
    rx: Receiver<InboxEvent>,
    user_id: i64,
    after: Option<&str>,
) -> Result<impl Stream<Item = StreamEvent> + Send + 'static, sqlx::Error> {
    let store = store.clone();
    let id = after.filter(|a| *a != "0");
    let (found, newest, counts) = store.stream_start(user_id, id).await?;
    let resume = match after {
        Some("0") => Some(0),
        Some(_) => found,
        None => None,
    };
    let (last_seq, replay) = match resume {
        Some(seq) => (seq, true),
        None => (newest, false),
    };
    metrics::gauge!("herald_sse_connections").increment(1.0);
    let sub = Subscription {
        rx,
        store,
        user_id,
        last_seq,
        replay,
        backlog: VecDeque::new(),
        counts: Some(counts),
        sent_version: -1,
    };
    Ok(futures::stream::unfold(sub, |mut sub| async move {
        sub.next().await.map(|item| (item, sub))
    }))
}

/// State of one SSE stream: the hub receiver plus what is left to replay.
struct Subscription {
    rx: Receiver<InboxEvent>,
    store: Store,
    user_id: i64,
    /// `seq` of the last notification handed out; nothing at or below it is
    /// sent again.
    last_seq: i64,
    /// Whether the store may hold notifications after `last_seq` that the
    /// hub will not deliver (resume, or lag).
    replay: bool,
    backlog: VecDeque<Arc<Stored>>,
    /// Newest counts not yet sent.
    counts: Option<Counts>,
    /// Version of the last counts sent (in a counts or a state event).
    sent_version: i64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!("herald_sse_connections").decrement(1.0);
    }
}

impl Subscription {
    /// Keep `c` to send later if it is newer than what is pending and sent.
    fn offer_counts(&mut self, c: Counts) {
        let pending = self.counts.map_or(self.sent_version, |p| p.version);
        if c.version > pending {
            self.counts = Some(c);
        }
    }

    /// What one event from the hub asks of the stream.
    fn take(&mut self, event: InboxEvent) -> Step {
        match event {
            InboxEvent::Stored(s) if s.seq <= self.last_seq => Step::Skip,
            InboxEvent::Stored(s) => {
                self.last_seq = s.seq;
                Step::Send(StreamEvent::Notification(s))
            }
            InboxEvent::State(st) => {
                self.sent_version = self.sent_version.max(st.counts.version);
                if self.counts.is_some_and(|c| c.version <= self.sent_version) {
                    self.counts = None;
                }
                Step::Send(StreamEvent::State(st))
            }
            InboxEvent::Counts(c) => {
                self.offer_counts(*c);
                Step::Skip
            }
            InboxEvent::Resync => Step::CatchUp,
        }
    }

    fn pending_counts(&mut self) -> Option<StreamEvent> {
        let c = self.counts.take()?;
        self.sent_version = c.version;
        Some(StreamEvent::Counts(c))
    }

    async fn next(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(stored) = self.backlog.pop_front() {
                self.last_seq = stored.seq;
                return Some(StreamEvent::Notification(stored));
            }
            if self.replay {
                // Boxed: the store's future is large and rarely needed; kept
                // inline it would make every idle stream's state that large.
                let page =
                    Box::pin(
                        self.store
                            .after(self.user_id, self.last_seq, None, REPLAY_PAGE),
                    );
                match page.await {
                    Ok(page) => {
                        self.replay = page.len() as i64 == REPLAY_PAGE;
                        self.backlog.extend(page.into_iter().map(Arc::new));
                        continue;
                    }
                    Err(e) => {
                        // End the stream; the client reconnects with
                        // Last-Event-ID and resumes where it was.
                        tracing::error!(error = %e, "replay from store failed");
                        return None;
                    }
                }
            }
            // Whatever is already waiting goes first; counts are sent only
            // when the stream would otherwise wait.
            let received = match self.rx.try_recv() {
                Ok(event) => Ok(event),
                Err(TryRecvError::Empty) => {
                    if let Some(counts) = self.pending_counts() {
                        return Some(counts);
                    }
                    self.rx.recv().await
                }
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
            let missed = match received {
                Ok(event) => match self.take(event) {
                    Step::Send(out) => return Some(out),
                    Step::Skip => continue,
                    Step::CatchUp => 0,
                },
                Err(RecvError::Lagged(missed)) => missed,
                Err(RecvError::Closed) => return None,
            };
            if !self.catch_up(missed).await {
                return None;
            }
        }
    }

    /// Read from the store what the hub did not deliver: the stream lagged
    /// `missed` events behind it, or (0) was told to resync. False when the
    /// store fails; the stream then ends and the client resumes.
    async fn catch_up(&mut self, missed: u64) -> bool {
        if missed > 0 {
            metrics::counter!("herald_sse_lagged_events_total").increment(missed);
            tracing::warn!(
                user = self.user_id,
                missed,
                "slow stream, catching up from the store"
            );
        }
        self.replay = true;
        // Counts and state events were lost too: send fresh counts. (A
        // missed read-state change shows after the next page load; the
        // counts are right at once.)
        match Box::pin(self.store.counts(self.user_id)).await {
            Ok(c) => {
                self.offer_counts(c);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "reading counts failed");
                false
            }
        }
    }
}

/// What [`Subscription::take`] decided.
enum Step {
    /// Send this now.
    Send(StreamEvent),
    /// Nothing to send for it.
    Skip,
    /// Catch up from the store.
    CatchUp,
}
