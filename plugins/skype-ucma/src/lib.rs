//! `skype-ucma`: Skype for Business / Lync presence through a UCMA bridge.
pub mod mapping;
pub mod settings;
