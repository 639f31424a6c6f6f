//! Events: kernel records decoded, attributed to the policy rule that decided them, and
//! written as JSON lines.
pub mod record;
pub mod time;
pub mod writer;

use enforcer_common::Event;

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < size_of::<Event>() {
        return None;
    }
    // SAFETY: the length is checked and Event is plain data valid for any bytes.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// A NUL-terminated byte array as a string.
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
