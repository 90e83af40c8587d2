//! Fuzzes the relay frame decoder: any byte string fed to the one-shot and
//! the incremental decoder, as client and as server messages, must yield a
//! message or an error, never a panic, and a decoded message must re-encode
//! to a frame that decodes to the same message.
//!
//! Run: `cargo +nightly fuzz run frame_decode` (from the repo root).

#![no_main]

use kith_protocol::{ClientMsg, FRAME_BYTES_MAX, FrameDecoder, ServerMsg, decode_frame, encode_frame};
use libfuzzer_sys::fuzz_target;

fn check<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(Some((msg, used))) = decode_frame::<T>(data, FRAME_BYTES_MAX) {
        assert!(used <= data.len());
        let again = encode_frame(&msg, FRAME_BYTES_MAX).expect("re-encode");
        let (back, _) = decode_frame::<T>(&again, FRAME_BYTES_MAX)
            .expect("decode re-encoded")
            .expect("complete");
        assert_eq!(back, msg);
    }
    // The incremental decoder, fed in two uneven chunks.
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut d = FrameDecoder::new(FRAME_BYTES_MAX);
    d.extend(&data[..cut]);
    while let Ok(Some(_)) = d.next_msg::<T>() {}
    d.extend(&data[cut..]);
    while let Ok(Some(_)) = d.next_msg::<T>() {}
    let _ = d.finish();
}

fuzz_target!(|data: &[u8]| {
    check::<ClientMsg>(data);
    check::<ServerMsg>(data);
});
