//! `exchange-ews`: each colleague's day from on-premises Exchange (2007 SP1
//! and later) through Exchange Web Services.
//!
//! On every refresh it reads today's and the next working day's calendar
//! items of the watched mailboxes (`GetUserAvailability`, up to 100
//! mailboxes per request) and their out-of-office replies
//! (`GetUserOofSettings`), and reports them on the calendar channel. It
//! signs in with Basic, NTLMv2 or an OAuth bearer token, trusts the
//! instance's private CA through the host, honours `ErrorServerBusy` and
//! 503, and never hammers a server that refuses its credentials.
//!
//! [`core::Core`] holds the protocol and never calls the host;
//! `component.rs` carries its actions out.

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod component;
pub mod core;
pub mod ntlm;
pub mod settings;
pub mod soap;
pub mod tz;
pub mod xml;
