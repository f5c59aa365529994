//! Feeds arbitrary bytes to the frame decoder: whatever a stranger sends,
//! decoding must return an error or an envelope, never panic, hang or
//! allocate beyond the frame limit; and what decodes re-encodes to a
//! canonical frame that is stable under another round trip (bytes are
//! compared, not envelopes, since a NaN is unequal to itself).
//!
//! ```sh
//! cargo install cargo-fuzz --locked
//! cd inferix-transport
//! RUSTC_BOOTSTRAP=1 cargo fuzz run frame_decoder -O -- -max_total_time=300
//! ```
//!
//! (`RUSTC_BOOTSTRAP=1` lets a stable toolchain use the sanitizer flags
//! cargo-fuzz needs.) The same property runs on stable, on seeded random and
//! mutated frames, in `frame::tests::seeded_random_and_mutated_frames_never_panic`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = inferix_transport::decode_frame(data) {
        let frame =
            inferix_transport::encode_frame(&envelope).expect("a decoded envelope re-encodes");
        let again = inferix_transport::decode_frame(&frame).expect("a re-encoded frame decodes");
        let frame_again = inferix_transport::encode_frame(&again).expect("and re-encodes again");
        assert_eq!(frame, frame_again);
    }
});
