//! NTLMv2 for HTTP (MS-NLMP; RFC 4559's `Authorization: NTLM <base64>`):
//! the NEGOTIATE message, reading the server's CHALLENGE, and the
//! AUTHENTICATE message with an NTLMv2 response.
//!
//! Written here from MS-NLMP because the NTLM crates at hand either pull in
//! a whole SSPI stack that does not target wasm32-wasip2 or offer NTLMv1
//! only; the pieces are small (MD4, HMAC-MD5 from RustCrypto) and checked
//! against the specification's own example (MS-NLMP 4.2.4). No signing or
//! sealing: HTTP authentication needs neither, TLS protects the exchange.

use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use md5::Md5;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// Flags we ask for: UNICODE, OEM, REQUEST_TARGET, NTLM, ALWAYS_SIGN,
/// EXTENDED_SESSIONSECURITY, TARGET_INFO, 128, 56.
pub const NEGOTIATE_FLAGS: u32 = 0x0000_0001
    | 0x0000_0002
    | 0x0000_0004
    | 0x0000_0200
    | 0x0000_8000
    | 0x0008_0000
    | 0x0080_0000
    | 0x2000_0000
    | 0x8000_0000;
const NEGOTIATE_UNICODE: u32 = 0x0000_0001;

/// The user's name split as NTLM wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub domain: String,
}

impl Identity {
    /// `DOMAIN\user` gives both; `user@domain` (a UPN) is sent whole as the
    /// user name with an empty domain, as Windows clients do.
    pub fn parse(name: &str, default_domain: Option<&str>) -> Identity {
        match name.split_once('\\') {
            Some((d, u)) => Identity {
                user: u.to_string(),
                domain: d.to_string(),
            },
            None => Identity {
                user: name.to_string(),
                domain: default_domain.unwrap_or("").to_string(),
            },
        }
    }
}

/// The NEGOTIATE message (type 1): no domain or workstation supplied.
pub fn negotiate() -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&NEGOTIATE_FLAGS.to_le_bytes());
    // DomainNameFields and WorkstationFields, empty, offset past the header.
    for _ in 0..2 {
        m.extend_from_slice(&0u16.to_le_bytes());
        m.extend_from_slice(&0u16.to_le_bytes());
        m.extend_from_slice(&32u32.to_le_bytes());
    }
    m
}

/// What the CHALLENGE message (type 2) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub flags: u32,
    pub server_challenge: [u8; 8],
    pub target_info: Vec<u8>,
    /// MsvAvTimestamp from the target info, if the server sent one.
    pub timestamp: Option<u64>,
}

fn field(msg: &[u8], at: usize) -> Option<&[u8]> {
    let len = u16::from_le_bytes(msg.get(at..at + 2)?.try_into().ok()?) as usize;
    let off = u32::from_le_bytes(msg.get(at + 4..at + 8)?.try_into().ok()?) as usize;
    msg.get(off..off.checked_add(len)?)
}

/// Reads a CHALLENGE message.
pub fn parse_challenge(msg: &[u8]) -> Result<Challenge, String> {
    if msg.len() < 32 || &msg[..8] != SIGNATURE {
        return Err("not an NTLM message".into());
    }
    if u32::from_le_bytes(msg[8..12].try_into().unwrap()) != 2 {
        return Err("not an NTLM CHALLENGE message".into());
    }
    let flags = u32::from_le_bytes(msg[20..24].try_into().unwrap());
    let server_challenge: [u8; 8] = msg[24..32].try_into().unwrap();
    let target_info = if msg.len() >= 48 {
        field(msg, 40)
            .ok_or("CHALLENGE target info out of bounds")?
            .to_vec()
    } else {
        Vec::new()
    };
    if target_info.is_empty() {
        return Err("CHALLENGE without target info: the server offers no NTLMv2".into());
    }
    let mut timestamp = None;
    let mut i = 0;
    while i + 4 <= target_info.len() {
        let id = u16::from_le_bytes([target_info[i], target_info[i + 1]]);
        let len = u16::from_le_bytes([target_info[i + 2], target_info[i + 3]]) as usize;
        let value = target_info
            .get(i + 4..i + 4 + len)
            .ok_or("CHALLENGE target info truncated")?;
        match id {
            0 => break,
            7 if len == 8 => timestamp = Some(u64::from_le_bytes(value.try_into().unwrap())),
            _ => {}
        }
        i += 4 + len;
    }
    Ok(Challenge {
        flags,
        server_challenge,
        target_info,
        timestamp,
    })
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = Hmac::<Md5>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// NTOWFv2 (MS-NLMP 3.3.2): HMAC_MD5(MD4(UNICODE(password)),
/// UNICODE(Uppercase(user) + domain)).
pub fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash = Md4::digest(utf16(password));
    let who = format!("{}{}", user.to_uppercase(), domain);
    hmac_md5(&nt_hash, &[&utf16(&who)])
}

/// Windows FILETIME: 100 ns ticks since 1601-01-01.
pub fn filetime(unix_ms: u64) -> u64 {
    (unix_ms + 11_644_473_600_000) * 10_000
}

/// NTProofStr and the whole NTLMv2 response (NTProofStr || temp), and the
/// LMv2 response.
pub fn v2_responses(
    key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
    time: u64,
    target_info: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let mut temp = vec![1u8, 1, 0, 0, 0, 0, 0, 0];
    temp.extend_from_slice(&time.to_le_bytes());
    temp.extend_from_slice(client_challenge);
    temp.extend_from_slice(&[0; 4]);
    temp.extend_from_slice(target_info);
    temp.extend_from_slice(&[0; 4]);
    let proof = hmac_md5(key, &[server_challenge, &temp]);
    let mut nt = proof.to_vec();
    nt.extend_from_slice(&temp);
    let mut lm = hmac_md5(key, &[server_challenge, client_challenge]).to_vec();
    lm.extend_from_slice(client_challenge);
    (nt, lm)
}

/// The AUTHENTICATE message (type 3) answering `challenge`.
/// `client_challenge` is 8 random bytes; `now_ms` is used when the server
/// sent no timestamp.
pub fn authenticate(
    id: &Identity,
    password: &str,
    workstation: &str,
    challenge: &Challenge,
    client_challenge: [u8; 8],
    now_ms: u64,
) -> Vec<u8> {
    let key = ntowf_v2(password, &id.user, &id.domain);
    let time = challenge.timestamp.unwrap_or_else(|| filetime(now_ms));
    let (nt, lm) = v2_responses(
        &key,
        &challenge.server_challenge,
        &client_challenge,
        time,
        &challenge.target_info,
    );
    // With a server timestamp, the LM response is 24 zero bytes (MS-NLMP
    // 3.1.5.1.2).
    let lm = if challenge.timestamp.is_some() {
        vec![0; 24]
    } else {
        lm
    };
    let unicode = challenge.flags & NEGOTIATE_UNICODE != 0;
    let enc = |s: &str| {
        if unicode {
            utf16(s)
        } else {
            s.as_bytes().to_vec()
        }
    };
    let payloads = [
        lm,
        nt,
        enc(&id.domain),
        enc(&id.user),
        enc(workstation),
        Vec::new(),
    ];
    let header = 64usize;
    let mut m = Vec::new();
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&3u32.to_le_bytes());
    let mut offset = header;
    for p in &payloads {
        m.extend_from_slice(&(p.len() as u16).to_le_bytes());
        m.extend_from_slice(&(p.len() as u16).to_le_bytes());
        m.extend_from_slice(&(offset as u32).to_le_bytes());
        offset += p.len();
    }
    let flags = (NEGOTIATE_FLAGS & challenge.flags) | (challenge.flags & NEGOTIATE_UNICODE);
    m.extend_from_slice(&flags.to_le_bytes());
    debug_assert_eq!(m.len(), header);
    for p in &payloads {
        m.extend_from_slice(p);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// MS-NLMP 4.2.4: user "User", domain "Domain", password "Password",
    /// server challenge 0123456789abcdef, client challenge aa×8, time 0,
    /// target info NbDomainName "Domain" and NbComputerName "Server".
    #[test]
    fn specification_example_ntlmv2() {
        let key = ntowf_v2("Password", "User", "Domain");
        assert_eq!(key.to_vec(), hex("0c868a403bfd7a93a3001ef22ef02e3f"));
        let mut info = Vec::new();
        for (id, v) in [(2u16, "Domain"), (1u16, "Server")] {
            let v = utf16(v);
            info.extend_from_slice(&id.to_le_bytes());
            info.extend_from_slice(&(v.len() as u16).to_le_bytes());
            info.extend_from_slice(&v);
        }
        info.extend_from_slice(&[0; 4]);
        let server: [u8; 8] = hex("0123456789abcdef").try_into().unwrap();
        let (nt, lm) = v2_responses(&key, &server, &[0xaa; 8], 0, &info);
        assert_eq!(nt[..16].to_vec(), hex("68cd0ab851e51c96aabc927bebef6a1c"));
        assert_eq!(lm, hex("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn messages_round_trip_through_their_fields() {
        let n = negotiate();
        assert_eq!(&n[..8], SIGNATURE);
        assert_eq!(n.len(), 32);
        // A CHALLENGE as a server writes it, with a timestamp.
        let mut info = Vec::new();
        info.extend_from_slice(&7u16.to_le_bytes());
        info.extend_from_slice(&8u16.to_le_bytes());
        info.extend_from_slice(&42u64.to_le_bytes());
        info.extend_from_slice(&[0; 4]);
        let mut c = Vec::new();
        c.extend_from_slice(SIGNATURE);
        c.extend_from_slice(&2u32.to_le_bytes());
        c.extend_from_slice(&[0, 0, 0, 0, 48, 0, 0, 0]);
        c.extend_from_slice(&(NEGOTIATE_FLAGS).to_le_bytes());
        c.extend_from_slice(&[9; 8]);
        c.extend_from_slice(&[0; 8]);
        c.extend_from_slice(&(info.len() as u16).to_le_bytes());
        c.extend_from_slice(&(info.len() as u16).to_le_bytes());
        c.extend_from_slice(&48u32.to_le_bytes());
        c.extend_from_slice(&info);
        let ch = parse_challenge(&c).unwrap();
        assert_eq!(ch.timestamp, Some(42));
        assert_eq!(ch.server_challenge, [9; 8]);
        let id = Identity::parse("CONTOSO\\svc", None);
        assert_eq!(id.domain, "CONTOSO");
        let a = authenticate(&id, "pw", "HUB", &ch, [1; 8], 0);
        assert_eq!(u32::from_le_bytes(a[8..12].try_into().unwrap()), 3);
        assert_eq!(field(&a, 36).unwrap(), utf16("svc").as_slice());
        assert_eq!(field(&a, 28).unwrap(), utf16("CONTOSO").as_slice());
        assert_eq!(field(&a, 12).unwrap(), &[0u8; 24]);
        let nt = field(&a, 20).unwrap();
        assert_eq!(&nt[16 + 8..16 + 16], &42u64.to_le_bytes());
        assert!(parse_challenge(b"NTLMSSP\0\x01\0\0\0").is_err());
        let upn = Identity::parse("svc@contoso.com", None);
        assert_eq!(
            (upn.user.as_str(), upn.domain.as_str()),
            ("svc@contoso.com", "")
        );
    }
}
