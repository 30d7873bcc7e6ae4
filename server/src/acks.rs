//! The producer's acknowledgements: librdkafka's delivery reports, served
//! on the tokio runtime instead of on a polling thread of their own.
//!
//! rdkafka's `FutureProducer` serves its reports on a thread that waits on
//! librdkafka's main queue. Every acknowledgement then went from
//! librdkafka's broker thread to that thread, and from there to a tokio
//! worker: two wake-ups, and one more thread to be scheduled on cores that
//! Herald shares with the broker. Here librdkafka calls back when its main
//! queue turns non-empty (`rd_kafka_queue_cb_event_enable`, which rdkafka
//! wraps for consumers only), the callback wakes a task on the runtime, and
//! that task serves the queue: a report reaches the send awaiting it with
//! one wake-up, on the worker that will run the send's task.
//!
//! The main queue also carries librdkafka's statistics, logs and errors;
//! the same task serves them.
//!
//! The events topic's producer (`kafka_bus`) is built the same way, though
//! nobody awaits its reports: an idle rdkafka polling thread still woke
//! ten times a second.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer as _};
use tokio::sync::{oneshot, Notify};

use crate::kafka::RequestCounter;
use crate::store::Source;

/// What a send is told: where the broker put its record, or why not.
pub type Ack = Result<Source, KafkaError>;

/// Where a send's [`Ack`] goes (the record's delivery opaque).
pub type AckTo = Box<oneshot::Sender<Ack>>;

/// The producer's librdkafka context: counts its requests (from the
/// statistics) and hands each delivery report to the send awaiting it.
pub struct AckContext(pub RequestCounter);

impl rdkafka::ClientContext for AckContext {
    fn stats(&self, stats: rdkafka::Statistics) {
        self.0.record(&stats);
    }
}

impl rdkafka::producer::ProducerContext for AckContext {
    type DeliveryOpaque = AckTo;

    fn delivery(&self, result: &DeliveryResult<'_>, to: AckTo) {
        let ack = match result {
            Ok(m) => Ok(Source {
                partition: m.partition(),
                offset: m.offset(),
            }),
            Err((e, _)) => Err(e.clone()),
        };
        // Nobody waits any more when the send gave up (its bound ran out).
        let _ = to.send(ack);
    }
}

/// Most queue events served in one turn before the task lets others run.
const TURN: usize = 64;

/// How long the task sleeps at most without being woken. librdkafka calls
/// back only when its queue turns non-empty, so a wake-up that went
/// missing would leave every later report waiting too; this bounds that
/// to a second (the statistics wake the task as often anyway).
const SAFETY_POLL: Duration = Duration::from_secs(1);

/// A librdkafka producer whose reports a task on the runtime serves.
/// Dropping it ends that task; the drop itself purges what is still queued
/// and serves the reports that makes, which can take up to 500 ms (rdkafka's
/// `BaseProducer`): drop the last handle off the runtime.
pub struct AckedProducer {
    /// Dropped before `wake` (fields drop in order): librdkafka's threads,
    /// which call [`wake_up`] with a pointer to it, are gone by then.
    producer: BaseProducer<AckContext>,
    /// This handle's reference to librdkafka's main queue.
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    wake: Arc<Notify>,
}

// SAFETY: `queue` is only passed to librdkafka's queue functions, which are
// thread-safe (librdkafka's documentation: "the library is completely
// thread safe"); the rest is `Send + Sync` already.
unsafe impl Send for AckedProducer {}
// SAFETY: as above.
unsafe impl Sync for AckedProducer {}

/// Called by librdkafka (on one of its threads) when the main queue turns
/// non-empty. It must not call librdkafka, and does not.
unsafe extern "C" fn wake_up(_client: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Notify` of an `AckedProducer`, which outlives
    // the client that calls this (see the field order there).
    let wake = unsafe { &*(opaque as *const Notify) };
    wake.notify_one();
}

impl AckedProducer {
    /// Create the producer and start serving its reports on the current
    /// tokio runtime (an error outside one).
    pub fn start(config: &ClientConfig, context: AckContext) -> KafkaResult<Arc<Self>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            KafkaError::ClientCreation("the producer needs a tokio runtime".to_owned())
        })?;
        let producer: BaseProducer<AckContext> = config.create_with_context(context)?;
        // SAFETY: a live client; the handle is released in `drop`.
        let queue =
            NonNull::new(unsafe { rdsys::rd_kafka_queue_get_main(producer.client().native_ptr()) })
                .ok_or_else(|| {
                    KafkaError::ClientCreation("librdkafka gave no main queue".to_owned())
                })?;
        let wake = Arc::new(Notify::new());
        // SAFETY: `queue` is live; the `Notify` outlives the client (field
        // order), and `drop` turns the callback off before anything goes.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(
                queue.as_ptr(),
                Some(wake_up),
                Arc::as_ptr(&wake) as *mut c_void,
            );
        }
        let this = Arc::new(Self {
            producer,
            queue,
            wake: wake.clone(),
        });
        runtime.spawn(serve(Arc::downgrade(&this), wake));
        Ok(this)
    }

    /// The librdkafka producer (to send, flush, purge, read metadata).
    pub fn producer(&self) -> &BaseProducer<AckContext> {
        &self.producer
    }

    /// Events waiting in the main queue.
    fn waiting(&self) -> usize {
        // SAFETY: `queue` is live while `self` is.
        unsafe { rdsys::rd_kafka_queue_length(self.queue.as_ptr()) }
    }
}

impl Drop for AckedProducer {
    fn drop(&mut self) {
        // SAFETY: `queue` is live until destroyed here; turning the callback
        // off first means the purge below wakes nobody.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
        // The task finds the producer gone and ends.
        self.wake.notify_one();
    }
}

/// Serve the producer's main queue whenever librdkafka says it has
/// something, until the producer is dropped.
async fn serve(producer: Weak<AckedProducer>, wake: Arc<Notify>) {
    loop {
        let more = {
            let Some(p) = producer.upgrade() else { return };
            let mut served = 0;
            while served < TURN && p.waiting() > 0 {
                // One event per call: a delivery report carries a whole
                // request's messages.
                p.producer.poll(Duration::ZERO);
                served += 1;
            }
            p.waiting() > 0
        };
        if more {
            tokio::task::yield_now().await;
        } else {
            // A report that came after the check above left a permit, so
            // no wake-up should go missing; `SAFETY_POLL` bounds the harm
            // if one did.
            let _ = tokio::time::timeout(SAFETY_POLL, wake.notified()).await;
        }
    }
}
