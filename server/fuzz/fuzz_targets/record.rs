//! Any bytes as a Kafka record value: the consumer's decoder either turns
//! them into a notification that keeps every rule or rejects them; it never
//! panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    herald::fuzzing::decode_record(payload);
});
