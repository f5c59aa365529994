//! Feeds arbitrary bytes to the frame decoder: whatever a stranger sends,
//! decoding must return an error or an envelope, never panic, hang or
//! allocate beyond the frame limit; and what decodes re-encodes to a
//! canonical frame that is stable under another round trip (bytes are
//! compared, not envelopes, since a NaN is unequal to itself).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = inferix_transport::decode_frame(data) {
        let frame = inferix_transport::encode_frame(&envelope).expect("a decoded envelope re-encodes");
        let again = inferix_transport::decode_frame(&frame).expect("a re-encoded frame decodes");
        let frame_again = inferix_transport::encode_frame(&again).expect("and re-encodes again");
        assert_eq!(frame, frame_again);
    }
});
