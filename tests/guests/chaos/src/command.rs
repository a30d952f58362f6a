//! What an endpoint name asks the chaos connector to do.

use presence_connector_sdk::SocketAddress;

/// The behaviour an endpoint name selects.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `loop`: spin forever.
    Loop,
    /// `bomb`: allocate memory until the host stops it.
    Bomb,
    /// `panic`: panic.
    Panic,
    /// `connect:HOST:PORT`: open a plain TCP stream.
    Connect(SocketAddress),
    /// `tls:HOST:PORT`: open a TLS stream (certificate checked by the host).
    Tls(SocketAddress),
    /// `ws:URL` (ws:// or wss://): open a WebSocket offering subprotocol
    /// `chaos.v1` with pings, send "hello", report what comes back.
    WebSocket(String),
    /// `udp:HOST:PORT`: bind a UDP socket toward the address and send "ping".
    Udp(SocketAddress),
    /// `http:URL`: send a GET request.
    Http(String),
    /// `kv:KEY=VALUE`: store a value and report it read back.
    KvSet { key: String, value: String },
    /// `kvget:KEY`: report a stored value.
    KvGet(String),
    /// `info`: report what `instance::info` says.
    Info,
    /// `random`: report 16 bytes from `instance::random-bytes`, in hex.
    Random,
    /// Anything else: report the endpoint available.
    Echo,
}

impl Command {
    /// Reads an endpoint name. A recognised prefix with an unusable argument
    /// is an error, so that a typo in a test shows up as such.
    pub fn parse(endpoint: &str) -> Result<Self, String> {
        let command = match endpoint {
            "loop" => Command::Loop,
            "bomb" => Command::Bomb,
            "panic" => Command::Panic,
            "info" => Command::Info,
            "random" => Command::Random,
            _ => match endpoint.split_once(':') {
                Some(("connect", address)) => Command::Connect(socket_address(address)?),
                Some(("udp", address)) => Command::Udp(socket_address(address)?),
                Some(("tls", address)) => Command::Tls(socket_address(address)?),
                Some(("ws", url)) => Command::WebSocket(url.to_owned()),
                Some(("http", url)) => Command::Http(url.to_owned()),
                Some(("kv", assignment)) => {
                    let (key, value) = assignment
                        .split_once('=')
                        .ok_or_else(|| format!("expected kv:KEY=VALUE, got {endpoint:?}"))?;
                    Command::KvSet {
                        key: key.to_owned(),
                        value: value.to_owned(),
                    }
                }
                Some(("kvget", key)) => Command::KvGet(key.to_owned()),
                _ => Command::Echo,
            },
        };
        Ok(command)
    }
}

/// `HOST:PORT`, split at the last colon so IPv6 literals keep theirs.
fn socket_address(address: &str) -> Result<SocketAddress, String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT, got {address:?}"))?;
    let port = port
        .parse()
        .map_err(|_| format!("bad port in {address:?}"))?;
    Ok(SocketAddress {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(host: &str, port: u16) -> SocketAddress {
        SocketAddress {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_every_command() {
        let cases = [
            ("loop", Command::Loop),
            ("bomb", Command::Bomb),
            ("panic", Command::Panic),
            (
                "connect:10.9.9.9:5060",
                Command::Connect(address("10.9.9.9", 5060)),
            ),
            (
                "udp:127.0.0.1:5060",
                Command::Udp(address("127.0.0.1", 5060)),
            ),
            ("connect:[::1]:80", Command::Connect(address("::1", 80))),
            (
                "http:http://127.0.0.1:8080/x",
                Command::Http("http://127.0.0.1:8080/x".into()),
            ),
            (
                "kv:token=a=b",
                Command::KvSet {
                    key: "token".into(),
                    value: "a=b".into(),
                },
            ),
            ("kvget:token", Command::KvGet("token".into())),
            ("info", Command::Info),
            ("random", Command::Random),
            ("tls:localhost:443", Command::Tls(address("localhost", 443))),
            ("ws:wss://h/x", Command::WebSocket("wss://h/x".into())),
            ("alice@example.com", Command::Echo),
            ("sip:alice@example.com", Command::Echo),
        ];
        for (name, command) in cases {
            assert_eq!(Command::parse(name), Ok(command), "{name}");
        }
    }

    #[test]
    fn refuses_malformed_arguments() {
        for name in ["connect:host", "udp:host:port", "kv:novalue"] {
            assert!(Command::parse(name).is_err(), "{name}");
        }
    }
}
