//! Feeds arbitrary bytes to the frame decoders, as a worker's frame file
//! or a verifier's clean crop reaches them: the declared size, the PNG and
//! the EXR decoder must return an error or an image, never panic, hang or
//! allocate for more pixels than the decoders accept; and an image that
//! decodes has the size its header declares.
//!
//! ```sh
//! cargo install cargo-fuzz --locked
//! cd inferix-codec
//! RUSTC_BOOTSTRAP=1 cargo fuzz run frame_file -O -- -max_total_time=300 -rss_limit_mb=2048
//! ```
//!
//! The same property runs on stable, on seeded random and mutated files,
//! in `tests::seeded_random_and_mutated_files_never_panic`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let declared = inferix_codec::declared_size(data).ok();
    if let Ok(img) = inferix_codec::decode_png(data) {
        assert_eq!(declared, Some((img.width, img.height)));
    }
    if let Ok(img) = inferix_codec::decode_exr(data) {
        assert_eq!(declared, Some((img.width, img.height)));
    }
});
