//! Any body under each content type `POST /send` accepts (URL-encoded,
//! multipart with a fixed boundary, JSON) or refuses: read without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const TYPES: [&str; 5] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=XyZ",
    "application/json",
    "text/plain",
    "",
];

fuzz_target!(|input: &[u8]| {
    let Some((&pick, body)) = input.split_first() else {
        return;
    };
    herald::fuzzing::read_send_form(TYPES[pick as usize % TYPES.len()], body);
});
